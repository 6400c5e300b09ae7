"""Dossier events in, dossiers out: set-based ingestion and the queries over dossiers."""

import hashlib
import hmac
import json
import logging
from collections import defaultdict
from dataclasses import dataclass, fields
from datetime import date, datetime, time, timedelta
from operator import itemgetter
from typing import Any

import asyncpg
from pydantic import TypeAdapter, ValidationError
from sqlalchemy import JSON, Table, bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.calendar.working_time import TimeUnit, WorkingCalendar
from app.core.db import plan_with_values, utcnow
from app.core.errors import (
    Conflict,
    DomainError,
    FieldError,
    Forbidden,
    InvalidInput,
    NotFound,
    problem_of,
    request_id_var,
)
from app.core.pagination import PageParams, encode_cursor
from app.core.security import Principal
from app.core.timezone import VIETNAM, local
from app.dossiers import lifecycle
from app.dossiers.lifecycle import FLAGS, STATUS_NAMES_VI, DossierState, EventType, Mark, Reception, Status
from app.dossiers.models import Dossier, DossierEvent
from app.dossiers.schemas import (
    DossierEventIn,
    DossierRead,
    DossierSummary,
    EventResult,
    PublicDossier,
    TimelineEntry,
)
from app.procedures.models import ProcedureVersion
from app.stats import service as stats
from app.units.access import subtree_codes
from app.units.models import Unit

logger = logging.getLogger("tthc.dossiers")

_EVENT = TypeAdapter(DossierEventIn)
_STATE_FIELDS = [field.name for field in fields(DossierState)]
_DOSSIERS: Table = Dossier.__table__  # type: ignore[assignment]
_EVENTS: Table = DossierEvent.__table__  # type: ignore[assignment]
_STATE_COLUMNS = [_DOSSIERS.c[name] for name in _STATE_FIELDS]
OPEN_STATUSES = (Status.received, Status.processing)
ATTEMPTS = 3


def lookup_hash(secret_key: str, dossier_code: str, secret: str) -> str:
    """A keyed hash of a receipt PIN: short PINs cannot be brute-forced without the server's key."""
    return hmac.new(secret_key.encode(), f"{dossier_code}\x00{secret}".encode(), hashlib.sha256).hexdigest()


def _canonical(event: DossierEventIn, secret_key: str) -> tuple[str, str]:
    """The event as stored and compared on resends (JSON text, SHA-256): instants in UTC, PIN hashed."""
    payload = event.model_dump_json(exclude_none=True, exclude={"lookup_secret"})
    if event.lookup_secret is not None:
        secret = lookup_hash(secret_key, event.dossier_code, event.lookup_secret)
        payload = f'{payload[:-1]},"lookup_secret":"hmac-sha256:{secret}"}}'
    return payload, hashlib.sha256(payload.encode()).hexdigest()


def _error(event_id: str | None, exc: DomainError) -> EventResult:
    return EventResult(event_id=event_id, status="error", problem=problem_of(exc))


def _validation_errors(exc: ValidationError) -> list[FieldError]:
    return [
        FieldError(
            field=".".join(str(part) for part in err["loc"]) or "event",
            message=str(err["msg"]),
            type=err["type"],
        )
        for err in exc.errors()
    ]


@dataclass
class _Parsed:
    index: int
    event: DossierEventIn
    payload: str
    digest: str


class _Catalogue:
    """The procedure versions and units a batch refers to, loaded once per batch."""

    def __init__(self, versions: dict[str, list[tuple[date | None, dict[str, Any]]]], units: dict[str, Any]):
        self.versions = versions
        self.units = units

    def reception(self, event: DossierEventIn) -> Reception:
        assert event.unit_code is not None and event.procedure_code is not None
        day = local(event.occurred_at).date()
        unit = self.units.get(event.unit_code)
        if unit is None:
            raise InvalidInput.for_field(
                "unit_code", f"Unit {event.unit_code!r} does not exist", "unknown_reference"
            )
        if (unit.valid_from and day < unit.valid_from) or (unit.valid_to and day > unit.valid_to):
            raise InvalidInput.for_field(
                "unit_code", f"Unit {event.unit_code!r} did not exist on {day}", "unit_not_valid"
            )
        history = self.versions.get(event.procedure_code)
        if not history:
            raise InvalidInput.for_field(
                "procedure_code", f"Procedure {event.procedure_code!r} does not exist", "unknown_reference"
            )
        # Versions are in order, so the last one in force by the reception day applies.
        in_force = [data for since, data in history if since is None or since <= day]
        if not in_force:
            raise InvalidInput.for_field(
                "procedure_code",
                f"Procedure {event.procedure_code!r} was not in force on {day}",
                "not_in_force",
            )
        data = in_force[-1]
        return Reception(
            unit_level=unit.level,
            sector_code=data["sector_code"],
            procedure_levels=tuple(data["levels"]),
            processing_value=float(data["processing_time"]["value"]),
            processing_unit=TimeUnit(data["processing_time"]["unit"]),
            procedure_abolished=data["status"] == "abolished",
        )


async def _load_catalogue(session: AsyncSession, first_events: list[DossierEventIn]) -> _Catalogue:
    procedure_codes = {e.procedure_code for e in first_events if e.procedure_code}
    unit_codes = {e.unit_code for e in first_events if e.unit_code}
    versions: dict[str, list[tuple[date | None, dict[str, Any]]]] = defaultdict(list)
    if procedure_codes:
        # Only the parts a due date needs: decoding whole versions would dominate a batch.
        data = ProcedureVersion.data
        rows = await session.execute(
            select(
                ProcedureVersion.procedure_code,
                ProcedureVersion.in_force_from,
                data["levels"],
                data["processing_time"],
                data["status"],
                data["sector_code"],
            )
            .where(ProcedureVersion.procedure_code.in_(procedure_codes))
            .order_by(ProcedureVersion.procedure_code, ProcedureVersion.version)
        )
        for code, since, levels, processing_time, status, sector_code in rows:
            wanted = {
                "levels": levels,
                "processing_time": processing_time,
                "status": status,
                "sector_code": sector_code,
            }
            versions[code].append((since, wanted))
    units: dict[str, Any] = {}
    if unit_codes:
        rows = await session.execute(
            select(Unit.code, Unit.level, Unit.valid_from, Unit.valid_to).where(Unit.code.in_(unit_codes))
        )
        units = {row.code: row for row in rows}
    return _Catalogue(versions, units)


async def ingest(
    session: AsyncSession,
    principal: Principal,
    calendar: WorkingCalendar,
    secret_key: str,
    items: list[Any],
) -> list[EventResult]:
    """Apply events in order; each is answered created, duplicate or error, and errors store nothing.

    Dossiers are locked (in code order) before their events are checked for resends, so two
    workers given the same events apply them once. When two requests create the same dossier or
    event at the same moment, the loser's transaction fails on a unique key and is replayed.
    """
    for attempt in range(1, ATTEMPTS + 1):
        try:
            return await _ingest_once(session, principal, calendar, secret_key, items)
        except IntegrityError:
            await session.rollback()
            logger.warning("concurrent ingestion of the same dossiers; replaying (attempt %d)", attempt)
    raise Conflict("The same events are being ingested concurrently; retry the request")


async def _ingest_once(
    session: AsyncSession,
    principal: Principal,
    calendar: WorkingCalendar,
    secret_key: str,
    items: list[Any],
) -> list[EventResult]:
    # Batches differ in size, and a generic plan of a long `IN (…)` list can fall back to a
    # sequential scan of all events: plan each batch for its own values.
    await plan_with_values(session)
    now = utcnow()
    results: list[EventResult | None] = [None] * len(items)
    parsed: list[_Parsed] = []
    for index, raw in enumerate(items):
        raw_id = raw.get("event_id") if isinstance(raw, dict) else getattr(raw, "event_id", None)
        event_id = raw_id if isinstance(raw_id, str) else None
        try:
            event = _EVENT.validate_python(raw)
        except ValidationError as exc:
            results[index] = _error(
                event_id, InvalidInput("The event is invalid", errors=_validation_errors(exc))
            )
            continue
        problems = event.problems(now)
        if problems:
            results[index] = _error(event_id, InvalidInput("The event is invalid", errors=problems))
            continue
        parsed.append(_Parsed(index, event, *_canonical(event, secret_key)))

    codes = sorted({p.event.dossier_code for p in parsed})
    states: dict[str, DossierState] = {}
    if codes:
        # Locked before resends are looked up: a concurrent worker with the same events waits here.
        locked = await session.execute(
            select(*_STATE_COLUMNS)
            .where(_DOSSIERS.c.code.in_(codes))
            .order_by(_DOSSIERS.c.code)
            .with_for_update()
        )
        states = {row.code: DossierState(**row._mapping) for row in locked}
    sent_before: dict[str, str] = {}
    if parsed:
        rows = await session.execute(
            select(DossierEvent.event_id, DossierEvent.payload_hash).where(
                DossierEvent.client_id == principal.client_id,
                DossierEvent.event_id.in_({p.event.event_id for p in parsed}),
            )
        )
        sent_before = {event_id: digest for event_id, digest in rows}
    catalogue = await _load_catalogue(
        session, [p.event for p in parsed if p.event.type in (EventType.received, EventType.refused)]
    )
    reachable = await subtree_codes(session, principal.unit_code) if principal.unit_code else None

    new_codes: set[str] = set()
    changed: set[str] = set()
    marks: list[stats.MarkOf] = []
    event_rows: list[dict[str, Any]] = []
    request_id = request_id_var.get()
    for item in parsed:
        event = item.event
        known = sent_before.get(event.event_id)
        if known is not None:
            if known == item.digest:
                results[item.index] = EventResult(event_id=event.event_id, status="duplicate")
            else:
                results[item.index] = _error(
                    event.event_id,
                    InvalidInput.for_field(
                        "event_id", "This event_id was already used for a different event", "event_id_reused"
                    ),
                )
            continue
        try:
            state, new_marks = _apply(
                states.get(event.dossier_code), event, catalogue, reachable, principal, calendar, secret_key
            )
        except DomainError as exc:
            results[item.index] = _error(event.event_id, exc)
            continue
        states[event.dossier_code] = state
        marks.extend((state.unit_code, state.sector_code, state.procedure_code, mark) for mark in new_marks)
        if event.type in (EventType.received, EventType.refused):
            new_codes.add(event.dossier_code)
        changed.add(event.dossier_code)
        sent_before[event.event_id] = item.digest
        results[item.index] = EventResult(event_id=event.event_id, status="created")
        event_rows.append(
            {
                "client_id": principal.client_id,
                "event_id": event.event_id,
                "dossier_code": event.dossier_code,
                "type": event.type.value,
                "occurred_at": event.occurred_at,
                "payload": item.payload,
                "payload_hash": item.digest,
                "request_id": request_id,
                "ingested_at": now,
            }
        )

    if new_codes:
        await _bulk_insert(
            session,
            _DOSSIERS,
            [{**states[code].as_row(), "created_at": now, "updated_at": now} for code in sorted(new_codes)],
        )
    updated = sorted(changed - new_codes)
    if updated:
        values: dict[str, Any] = {name: bindparam(name) for name in _STATE_FIELDS if name != "code"}
        await session.execute(
            update(_DOSSIERS).where(_DOSSIERS.c.code == bindparam("dossier_code")).values(values),
            [{**states[code].as_row(), "dossier_code": code} for code in updated],
        )
    if event_rows:
        await _bulk_insert(session, _EVENTS, event_rows)
    # Last, so that the rows every batch of a unit shares stay locked for the shortest time.
    await stats.add_counters(session, stats.counter_rows(marks))
    assert all(result is not None for result in results)
    return [result for result in results if result is not None]


async def _bulk_insert(session: AsyncSession, table: Table, rows: list[dict[str, Any]]) -> None:
    """Insert many rows: with COPY on PostgreSQL (several times faster than INSERT), else executemany.

    Rows must carry every column that has a Python-side default, since COPY bypasses them, and
    JSON columns as JSON text.
    """
    if session.get_bind().dialect.name != "postgresql":
        json_columns = [c.name for c in table.c if isinstance(c.type, JSON)]
        await session.execute(
            insert(table),
            [
                {**row, **{c: json.loads(row[c]) for c in json_columns if isinstance(row[c], str)}}
                for row in rows
            ],
        )
        return
    columns = list(rows[0])
    # itemgetter builds each record in C: per-value Python was 8 % of an ingestion batch.
    records: list[tuple[Any, ...]] = list(map(itemgetter(*columns), rows))
    json_positions = [n for n, name in enumerate(columns) if isinstance(table.c[name].type, JSON)]
    if any(not isinstance(record[n], str | None) for record in records for n in json_positions):
        records = [
            tuple(json.dumps(value) if n in json_positions else value for n, value in enumerate(record))
            for record in records
        ]
    connection = await session.connection()
    driver = (await connection.get_raw_connection()).driver_connection
    assert driver is not None
    try:
        await driver.copy_records_to_table(table.name, records=records, columns=columns)
    except asyncpg.UniqueViolationError as exc:
        # Raised by the driver itself here: make it the error every caller already handles.
        raise IntegrityError(f"COPY INTO {table.name}", None, exc) from exc


def _apply(
    state: DossierState | None,
    event: DossierEventIn,
    catalogue: _Catalogue,
    reachable: set[str] | None,
    principal: Principal,
    calendar: WorkingCalendar,
    secret_key: str,
) -> tuple[DossierState, list[Mark]]:
    flags = {name: getattr(event, name) for name in FLAGS}
    if event.type in (EventType.received, EventType.refused):
        if state is not None:
            raise Conflict(f"Dossier {event.dossier_code!r} was already received")
        assert event.unit_code is not None and event.procedure_code is not None
        if reachable is not None and event.unit_code not in reachable:
            raise Forbidden(f"This client is bound to unit {principal.unit_code} and cannot act outside it")
        return lifecycle.receive(
            code=event.dossier_code,
            event_type=event.type,
            occurred_at=event.occurred_at,
            procedure_code=event.procedure_code,
            unit_code=event.unit_code,
            channel=event.channel.value if event.channel else None,
            online_level=event.online_level.value if event.online_level else None,
            due_at=event.due_at,
            reception=catalogue.reception(event),
            calendar=calendar,
            lookup_secret_hash=lookup_hash(secret_key, event.dossier_code, event.lookup_secret)
            if event.lookup_secret
            else None,
            flags=flags,
        )
    if state is None:
        raise lifecycle.unknown_dossier(event.dossier_code)
    if reachable is not None and state.unit_code not in reachable:
        raise Forbidden(f"This client is bound to unit {principal.unit_code} and cannot act outside it")
    return lifecycle.advance(
        state,
        event_type=event.type,
        occurred_at=event.occurred_at,
        new_return_at=event.new_return_at,
        calendar=calendar,
        flags=flags,
    )


# --- queries ---------------------------------------------------------------------------------


def summary(dossier: Dossier, now: datetime | None = None) -> dict[str, Any]:
    now = now or utcnow()
    status = Status(dossier.status)
    overdue = status in OPEN_STATUSES and dossier.due_at is not None and dossier.due_at < now
    return {
        **{
            column.name: getattr(dossier, column.name)
            for column in _DOSSIERS.c
            if column.name != "lookup_secret_hash"
        },
        "status_name": status.name,
        "status_name_vi": STATUS_NAMES_VI[status],
        "overdue": overdue,
        "waiting_supplement": status is Status.waiting_supplement,
    }


async def get_dossier(session: AsyncSession, code: str) -> Dossier:
    dossier = await session.get(Dossier, code)
    if dossier is None:
        raise NotFound(f"Dossier {code!r} does not exist")
    return dossier


async def dossier_with_timeline(session: AsyncSession, dossier: Dossier) -> DossierRead:
    events = await session.execute(
        select(DossierEvent.event_id, DossierEvent.type, DossierEvent.occurred_at, DossierEvent.ingested_at)
        .where(DossierEvent.dossier_code == dossier.code)
        .order_by(DossierEvent.occurred_at, DossierEvent.id)
    )
    timeline = [TimelineEntry.model_validate(row._mapping) for row in events]
    return DossierRead.model_validate({**summary(dossier), "timeline": timeline})


@dataclass
class DossierFilters:
    units: set[str] | None = None
    procedure: str | None = None
    status: Status | None = None
    received_from: date | None = None
    received_to: date | None = None
    overdue: bool = False
    due_before: datetime | None = None


def _local_midnight(day: date) -> datetime:
    return datetime.combine(day, time.min, VIETNAM)


async def list_dossiers(
    session: AsyncSession, filters: DossierFilters, page: PageParams
) -> tuple[list[DossierSummary], str | None]:
    query = select(Dossier)
    if filters.units is not None:
        query = query.where(Dossier.unit_code.in_(filters.units))
    if filters.procedure is not None:
        query = query.where(Dossier.procedure_code == filters.procedure)
    if filters.status is not None:
        query = query.where(Dossier.status == int(filters.status))
    if filters.received_from is not None:
        query = query.where(Dossier.received_at >= _local_midnight(filters.received_from))
    if filters.received_to is not None:
        query = query.where(Dossier.received_at < _local_midnight(filters.received_to + timedelta(days=1)))
    deadline = filters.due_before
    if filters.overdue:
        deadline = min(deadline, utcnow()) if deadline else utcnow()
    if deadline is not None:
        query = query.where(Dossier.status.in_([int(s) for s in OPEN_STATUSES]), Dossier.due_at < deadline)
    if page.after:
        query = query.where(Dossier.code > str(page.after[0]))
    rows = (await session.scalars(query.order_by(Dossier.code).limit(page.limit + 1))).all()
    now = utcnow()
    items = [DossierSummary.model_validate(summary(row, now)) for row in rows[: page.limit]]
    return items, encode_cursor([items[-1].code]) if len(rows) > page.limit else None


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
    status = Status(dossier.status)
    return PublicDossier(
        code=dossier.code,
        status=status,
        status_name_vi=STATUS_NAMES_VI[status],
        due_at=dossier.due_at,
        new_return_at=dossier.new_return_at,
        result_ready=status in (Status.resolved, Status.returned),
    )
