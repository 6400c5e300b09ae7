"""The queries over dossiers and their events (ingestion is app.dossiers.ingestion)."""

import hmac
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import RowMapping, Table, func, literal_column, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from app.clients.models import ApiClient
from app.core.errors import NotFound
from app.core.filters import equal, from_day, given, through_day, where_given
from app.core.pagination import PageParams, SortKey, Window, cursors_for, keyset_rows, keyset_window
from app.core.timezone import utcnow
from app.dossiers.lifecycle import NATIONAL_STATUS_NAMES_VI, STATUS_NAMES_VI, Status
from app.dossiers.models import Dossier, DossierEvent, DossierEventCorrection
from app.dossiers.open_dossiers import is_past_due, past_due
from app.dossiers.schemas import (
    CORRECTIONS_SHOWN,
    TIMELINE_SHOWN,
    Correction,
    DossierQuery,
    DossierRead,
    PendingEvent,
    PublicDossier,
    TimelineEntry,
)

_DOSSIERS: Table = Dossier.__table__  # type: ignore[assignment]


def lookup_hash(secret_key: str, dossier_code: str, secret: str) -> str:
    """A keyed hash of a receipt PIN: short PINs cannot be brute-forced without the server's key."""
    return hmac.digest(secret_key.encode(), f"{dossier_code}\x00{secret}".encode(), "sha256").hex()


# --- queries ---------------------------------------------------------------------------------


def summary(dossier: Dossier, now: datetime | None = None) -> dict[str, Any]:
    now = now or utcnow()
    status = dossier.status
    return {
        **{
            column.name: getattr(dossier, column.name)
            for column in _DOSSIERS.c
            if column.name != "lookup_secret_hash"
        },
        "status_name": status.name,
        "status_name_vi": STATUS_NAMES_VI[status],
        "national_status": int(status),
        "national_status_vi": NATIONAL_STATUS_NAMES_VI[int(status)],
        "overdue": is_past_due(dossier, now),
        "waiting_supplement": status is Status.waiting_supplement,
    }


async def get_dossier(session: AsyncSession, code: str) -> Dossier:
    dossier = await session.get(Dossier, code)
    if dossier is None:
        raise NotFound(f"Dossier {code!r} does not exist")
    return dossier


_TIME_ORDER = SortKey([DossierEvent.occurred_at, DossierEvent.id])


async def timeline(session: AsyncSession, code: str, page: PageParams) -> Window[TimelineEntry]:
    """A page of the dossier's stored events in time order: applied, pending, rejected or
    cancelled, each with its latest corrections."""
    query = (
        select(
            DossierEvent.id,
            DossierEvent.event_id,
            DossierEvent.type,
            DossierEvent.occurred_at,
            DossierEvent.ingested_at,
            DossierEvent.status,
            DossierEvent.reason,
            DossierEvent.revision,
            ApiClient.name.label("client_name"),
        )
        .outerjoin(ApiClient, ApiClient.id == DossierEvent.client_id)
        .where(DossierEvent.dossier_code == code)
    )
    window = await keyset_rows(session, query, _TIME_ORDER, page, lambda row: [row.occurred_at, row.id])
    corrections = await _latest_corrections(session, [row.id for row in window.items])
    return window.map(lambda row: _entry(row._mapping, corrections.get(row.id) or _Corrections([], 0)))


@dataclass
class _Corrections:
    latest: list[Correction]
    total: int


def _entry(event: RowMapping, corrections: _Corrections) -> TimelineEntry:
    return TimelineEntry.model_validate(
        {**event, "corrections": corrections.latest, "corrections_total": corrections.total}
    )


async def _latest_corrections(session: AsyncSession, event_row_ids: list[int]) -> dict[int, _Corrections]:
    """The latest ``CORRECTIONS_SHOWN`` corrections of each of these events, oldest first, and how
    many it has in all, by event row: one statement, whatever the number of events, that returns no
    more rows than are shown."""
    if not event_row_ids:
        return {}
    ranked = (
        select(
            DossierEventCorrection,
            func.row_number()
            .over(partition_by=DossierEventCorrection.event_row_id, order_by=DossierEventCorrection.id.desc())
            .label("newness"),
            func.count().over(partition_by=DossierEventCorrection.event_row_id).label("total"),
        )
        .where(DossierEventCorrection.event_row_id.in_(event_row_ids))
        .subquery()
    )
    correction = aliased(DossierEventCorrection, ranked)
    found = await session.execute(
        select(correction, ranked.c.total, ApiClient.name)
        .outerjoin(ApiClient, ApiClient.id == correction.client_id)
        .where(ranked.c.newness <= CORRECTIONS_SHOWN)
        .order_by(correction.id)
    )
    shown: dict[int, _Corrections] = {}
    for row, total, client_name in found:
        shown.setdefault(row.event_row_id, _Corrections([], total)).latest.append(
            Correction(
                from_revision=row.from_revision,
                to_revision=row.to_revision,
                cancelled=row.cancelled,
                changes=row.changes,
                corrected_at=row.corrected_at,
                client_name=client_name,
            )
        )
    return shown


async def dossier_with_timeline(session: AsyncSession, dossier: Dossier, timeline_path: str) -> DossierRead:
    """The dossier and the first page of its timeline, whose next cursor is one of the timeline's
    own list at ``timeline_path``."""
    with cursors_for(timeline_path):
        first = await timeline(session, dossier.code, PageParams(limit=TIMELINE_SHOWN, after=None))
    return DossierRead.model_validate(
        {**summary(dossier), "timeline": first.items, "timeline_next_cursor": first.next_cursor}
    )


_BY_ID = SortKey([DossierEvent.id])


def _pending(event: DossierEvent, client_name: str | None, now: datetime) -> PendingEvent:
    return PendingEvent(
        event_id=event.event_id,
        dossier_code=event.dossier_code,
        type=event.type,
        occurred_at=event.occurred_at,
        ingested_at=event.ingested_at,
        age_seconds=max(0, int((now - event.ingested_at).total_seconds())),
        status=event.status,
        reason=event.reason,
        client_name=client_name,
    )


async def waiting_events(
    session: AsyncSession, units: set[str] | None, page: PageParams, now: datetime | None = None
) -> Window[PendingEvent]:
    """Events kept but not applied, oldest arrival first. A bound reader sees those of dossiers in
    its units, and those not yet placed in a unit that clients bound inside its units sent."""
    now = now or utcnow()
    query = where_given(
        select(DossierEvent, ApiClient.name)
        .join(ApiClient, ApiClient.id == DossierEvent.client_id)
        .outerjoin(Dossier, Dossier.code == DossierEvent.dossier_code)
        .where(DossierEvent.status == literal_column("'pending'")),
        given(units, lambda codes: or_(Dossier.unit_code.in_(codes), ApiClient.unit_code.in_(codes))),
    )
    window = await keyset_rows(session, query, _BY_ID, page, lambda row: [row[0].id])
    return window.map(lambda row: _pending(row[0], row[1], now))


_BY_CODE = SortKey([Dossier.code])


async def list_dossiers(
    session: AsyncSession, filters: DossierQuery, units: set[str] | None, page: PageParams
) -> Window[Dossier]:
    deadline = filters.due_before
    if filters.overdue:
        deadline = min(deadline, utcnow()) if deadline else utcnow()
    query = where_given(
        select(Dossier),
        given(units, Dossier.unit_code.in_),
        equal(Dossier.procedure_code, filters.procedure),
        equal(Dossier.status, filters.status),
        from_day(Dossier.received_at, filters.received_from),
        through_day(Dossier.received_at, filters.received_to),
        given(deadline, past_due),
    )
    return await keyset_window(session, query, _BY_CODE, page, lambda dossier: [dossier.code])


async def dossier_by_pin(session: AsyncSession, secret_key: str, code: str, secret: str) -> Dossier:
    """The dossier whose receipt carries the PIN ``secret`` (a citizen's look-up or rating)."""
    dossier = await session.get(Dossier, code)
    expected = lookup_hash(secret_key, code, secret)
    # One answer for "no such dossier", "no PIN on it" and "wrong PIN": the code's existence stays secret.
    if (
        dossier is None
        or dossier.lookup_secret_hash is None
        or not hmac.compare_digest(dossier.lookup_secret_hash, expected)
    ):
        raise NotFound("No dossier matches this code and PIN")
    return dossier


async def public_lookup(session: AsyncSession, secret_key: str, code: str, secret: str) -> PublicDossier:
    dossier = await dossier_by_pin(session, secret_key, code, secret)
    status = dossier.status
    return PublicDossier(
        code=dossier.code,
        status=status,
        status_name_vi=STATUS_NAMES_VI[status],
        due_at=dossier.due_at,
        new_return_at=dossier.new_return_at,
        result_ready=status in (Status.resolved, Status.returned),
    )
