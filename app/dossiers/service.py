"""The queries over dossiers and their events (ingestion is app.dossiers.ingestion)."""

import hashlib
import hmac
from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Table, literal_column, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.clients.models import ApiClient
from app.core.errors import NotFound
from app.core.pagination import PageParams, SortKey, Window, keyset_rows, keyset_window
from app.core.timezone import start_of_day, utcnow
from app.dossiers.lifecycle import NATIONAL_STATUS_NAMES_VI, STATUS_NAMES_VI, Status
from app.dossiers.models import Dossier, DossierEvent, DossierEventCorrection
from app.dossiers.schemas import (
    Correction,
    DossierQuery,
    DossierRead,
    PendingEvent,
    PublicDossier,
    TimelineEntry,
)

_DOSSIERS: Table = Dossier.__table__  # type: ignore[assignment]
OPEN_STATUSES = (Status.received, Status.processing)


def lookup_hash(secret_key: str, dossier_code: str, secret: str) -> str:
    """A keyed hash of a receipt PIN: short PINs cannot be brute-forced without the server's key."""
    return hmac.new(secret_key.encode(), f"{dossier_code}\x00{secret}".encode(), hashlib.sha256).hexdigest()


# --- queries ---------------------------------------------------------------------------------


def summary(dossier: Dossier, now: datetime | None = None) -> dict[str, Any]:
    now = now or utcnow()
    status = dossier.status
    overdue = status in OPEN_STATUSES and dossier.due_at is not None and dossier.due_at < now
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
        "overdue": overdue,
        "waiting_supplement": status is Status.waiting_supplement,
    }


async def get_dossier(session: AsyncSession, code: str) -> Dossier:
    dossier = await session.get(Dossier, code)
    if dossier is None:
        raise NotFound(f"Dossier {code!r} does not exist")
    return dossier


async def dossier_with_timeline(session: AsyncSession, dossier: Dossier) -> DossierRead:
    """The dossier and every stored event in time order: applied, pending, rejected or cancelled,
    each with the corrections it went through."""
    corrections: dict[int, list[Correction]] = defaultdict(list)
    found = await session.execute(
        select(DossierEventCorrection, ApiClient.name)
        .outerjoin(ApiClient, ApiClient.id == DossierEventCorrection.client_id)
        .where(DossierEventCorrection.dossier_code == dossier.code)
        .order_by(DossierEventCorrection.id)
    )
    for correction, client_name in found:
        corrections[correction.event_row_id].append(
            Correction(
                from_revision=correction.from_revision,
                to_revision=correction.to_revision,
                cancelled=correction.cancelled,
                changes=correction.changes,
                corrected_at=correction.corrected_at,
                client_name=client_name,
            )
        )
    events = await session.execute(
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
        .where(DossierEvent.dossier_code == dossier.code)
        .order_by(DossierEvent.occurred_at, DossierEvent.id)
    )
    timeline = [
        TimelineEntry.model_validate({**row._mapping, "corrections": corrections.get(row.id, [])})
        for row in events
    ]
    return DossierRead.model_validate({**summary(dossier), "timeline": timeline})


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
    query = (
        select(DossierEvent, ApiClient.name)
        .join(ApiClient, ApiClient.id == DossierEvent.client_id)
        .outerjoin(Dossier, Dossier.code == DossierEvent.dossier_code)
        .where(DossierEvent.status == literal_column("'pending'"))
    )
    if units is not None:
        query = query.where(or_(Dossier.unit_code.in_(units), ApiClient.unit_code.in_(units)))
    window = await keyset_rows(session, query, _BY_ID, page, lambda row: [row[0].id])
    return window.map(lambda row: _pending(row[0], row[1], now))


_BY_CODE = SortKey([Dossier.code])


async def list_dossiers(
    session: AsyncSession, filters: DossierQuery, units: set[str] | None, page: PageParams
) -> Window[Dossier]:
    query = select(Dossier)
    if units is not None:
        query = query.where(Dossier.unit_code.in_(units))
    if filters.procedure is not None:
        query = query.where(Dossier.procedure_code == filters.procedure)
    if filters.status is not None:
        query = query.where(Dossier.status == int(filters.status))
    if filters.received_from is not None:
        query = query.where(Dossier.received_at >= start_of_day(filters.received_from))
    if filters.received_to is not None:
        query = query.where(Dossier.received_at < start_of_day(filters.received_to + timedelta(days=1)))
    deadline = filters.due_before
    if filters.overdue:
        deadline = min(deadline, utcnow()) if deadline else utcnow()
    if deadline is not None:
        query = query.where(Dossier.status.in_([int(s) for s in OPEN_STATUSES]), Dossier.due_at < deadline)
    return await keyset_window(session, query, _BY_CODE, page, lambda dossier: [dossier.code])


async def public_lookup(session: AsyncSession, secret_key: str, code: str, secret: str) -> PublicDossier:
    dossier = await session.get(Dossier, code)
    expected = lookup_hash(secret_key, code, secret)
    # One answer for "no such dossier", "no PIN on it" and "wrong PIN": the code's existence stays secret.
    if (
        dossier is None
        or dossier.lookup_secret_hash is None
        or not hmac.compare_digest(dossier.lookup_secret_hash, expected)
    ):
        raise NotFound("No dossier matches this code and PIN")
    status = dossier.status
    return PublicDossier(
        code=dossier.code,
        status=status,
        status_name_vi=STATUS_NAMES_VI[status],
        due_at=dossier.due_at,
        new_return_at=dossier.new_return_at,
        result_ready=status in (Status.resolved, Status.returned),
    )
