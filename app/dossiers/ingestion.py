"""Dossier events in: set-based, idempotent, and in time order whatever the order of arrival.

A batch is worked dossier by dossier, under a lock per dossier code taken in code order:

- the common case — events that come after everything the dossier already has, none of them a
  correction, and nothing of the dossier waiting — takes the **fast path**: the state machine
  advances from the stored state, as it always did;
- anything else (an event older than the dossier's last one, a correction, a reception that
  arrives after its dossier's events, events of a dossier not received yet) takes the **replay**:
  the dossier's stored events are loaded and its history replayed from the start
  (app.dossiers.history), so the cost is that dossier's own history, not the data set.

Either way the statistics counters receive exactly the difference between the dossier's old and
new contribution (``facts_marks`` of the old and new facts; the fast path's marks are the same
difference, event by event), in the same transaction.
"""

import hashlib
import json
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from operator import itemgetter
from typing import Any, TypeVar

import asyncpg
from pydantic import TypeAdapter, ValidationError
from sqlalchemy import JSON, Table, bindparam, delete, insert, literal_column, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.calendar.working_time import TimeUnit, WorkingCalendar
from app.clients.models import ApiClient
from app.core.data_version import touch
from app.core.db import plan_with_values, take_write_lock, utcnow
from app.core.errors import (
    Conflict,
    DomainError,
    FieldError,
    Forbidden,
    InvalidInput,
    Problem,
    problem_of,
    request_id_var,
)
from app.core.security import Principal
from app.core.timezone import local
from app.dossiers import lifecycle
from app.dossiers.dvcqg import RECORD_FIELDS, PortalRecord, RecordResult, event_prefix, record_events
from app.dossiers.history import (
    RECEPTIONS,
    HistoryEvent,
    Outcome,
    Replayed,
    Verdict,
    facts_of,
    pauses_of,
    receive,
    replay,
)
from app.dossiers.lifecycle import FLAGS, DossierState, EventType, Mark, OutOfSequence, Reception
from app.dossiers.models import Dossier, DossierEvent, DossierEventCorrection
from app.dossiers.schemas import DossierEventIn, EventResult
from app.dossiers.service import lookup_hash
from app.feedback.models import DossierRating
from app.procedures.models import ProcedureVersion
from app.stats import service as stats
from app.stats.reference import facts_marks
from app.units.access import provinces_of, subtree_codes
from app.units.models import Unit
from app.units.service import TWO_TIERS_SINCE

logger = logging.getLogger("tthc.dossiers")

_EVENT = TypeAdapter(DossierEventIn)
_DOSSIERS: Table = Dossier.__table__  # type: ignore[assignment]
_EVENTS: Table = DossierEvent.__table__  # type: ignore[assignment]
_CORRECTIONS: Table = DossierEventCorrection.__table__  # type: ignore[assignment]
_STATE_FIELDS = list(DossierState.__dataclass_fields__)
_STATE_COLUMNS = [_DOSSIERS.c[name] for name in _STATE_FIELDS]
ATTEMPTS = 3
_T = TypeVar("_T")
_Item = TypeVar("_Item")
# Events arriving now sort after every stored one of the same instant ("then by arrival").
_ARRIVING = 1 << 53


def canonical(event: DossierEventIn, secret_key: str) -> tuple[str, str]:
    """The event as stored and compared on resends (JSON text, SHA-256): instants in UTC, PIN hashed."""
    payload = event.model_dump_json(exclude_none=True, exclude={"lookup_secret"})
    if event.lookup_secret is not None:
        secret = lookup_hash(secret_key, event.dossier_code, event.lookup_secret)
        payload = f'{payload[:-1]},"lookup_secret":"hmac-sha256:{secret}"}}'
    return payload, hashlib.sha256(payload.encode()).hexdigest()


# --- the catalogue a batch refers to ---------------------------------------------------------


class Catalogue:
    """The procedure versions and units a batch refers to, loaded once per batch."""

    def __init__(self, versions: dict[str, list[tuple[date | None, dict[str, Any]]]], units: dict[str, Any]):
        self.versions = versions
        self.units = units

    def in_force(self, procedure_code: str, day: date) -> dict[str, Any]:
        history = self.versions.get(procedure_code)
        if not history:
            raise InvalidInput.for_field(
                "procedure_code", f"Procedure {procedure_code!r} does not exist", "unknown_reference"
            )
        # Versions are in order, so the last one in force by the day applies.
        in_force = [data for since, data in history if since is None or since <= day]
        if not in_force:
            raise InvalidInput.for_field(
                "procedure_code", f"Procedure {procedure_code!r} was not in force on {day}", "not_in_force"
            )
        return in_force[-1]

    def reception(self, procedure_code: str, unit_code: str, occurred_at: datetime) -> Reception:
        day = local(occurred_at).date()
        unit = self.units.get(unit_code)
        if unit is None:
            raise InvalidInput.for_field(
                "unit_code", f"Unit {unit_code!r} does not exist", "unknown_reference"
            )
        if unit.level == "district" and day >= TWO_TIERS_SINCE:
            raise InvalidInput.for_field(
                "unit_code",
                f"Unit {unit_code!r} is at district level, which no longer exists on {day} (two tiers since "
                f"{TWO_TIERS_SINCE})",
                "no_district_level",
            )
        if (unit.valid_from and day < unit.valid_from) or (unit.valid_to and day > unit.valid_to):
            raise InvalidInput.for_field(
                "unit_code", f"Unit {unit_code!r} did not exist on {day}", "unit_not_valid"
            )
        data = self.in_force(procedure_code, day)
        return Reception(
            unit_level=unit.level,
            sector_code=data["sector_code"],
            procedure_levels=tuple(data["levels"]),
            processing_value=float(data["processing_time"]["value"]),
            processing_unit=TimeUnit(data["processing_time"]["unit"]),
            procedure_abolished=data["status"] == "abolished",
        )


async def load_catalogue(session: AsyncSession, procedure_codes: set[str], unit_codes: set[str]) -> Catalogue:
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
                data["online_service"],
            )
            .where(ProcedureVersion.procedure_code.in_(procedure_codes))
            .order_by(ProcedureVersion.procedure_code, ProcedureVersion.version)
        )
        for code, since, levels, processing_time, status, sector_code, online_service in rows:
            wanted = {
                "levels": levels,
                "processing_time": processing_time,
                "status": status,
                "sector_code": sector_code,
                "online_service": online_service,
            }
            versions[code].append((since, wanted))
    units: dict[str, Any] = {}
    if unit_codes:
        rows = await session.execute(
            select(Unit.code, Unit.level, Unit.valid_from, Unit.valid_to).where(Unit.code.in_(unit_codes))
        )
        units = {row.code: row for row in rows}
    return Catalogue(versions, units)


# --- what arrives, what is stored --------------------------------------------------------------


@dataclass
class Stored:
    """An event row of a dossier whose history is replayed."""

    id: int
    client_id: int
    event_id: str
    dossier_code: str
    payload: dict[str, Any]
    payload_hash: str
    revision: int
    status: str
    reason: str | None

    def history_event(self) -> HistoryEvent:
        return HistoryEvent.from_payload(self.id, self.client_id, self.payload)

    @classmethod
    def of(cls, row: Any) -> "Stored":
        payload = row.payload if isinstance(row.payload, dict) else json.loads(row.payload)
        return cls(**{**row._mapping, "payload": payload})


_STORED_COLUMNS = [DossierEvent.__table__.c[name] for name in Stored.__dataclass_fields__]


@dataclass
class Arrival:
    """A change to a dossier's history arriving now: a new event, a correction or a cancellation."""

    group: int
    """The answer it belongs to: its position in the batch (a record's events share one)."""
    event_id: str
    dossier_code: str
    event: HistoryEvent
    payload: str
    digest: str
    revision: int
    target: Stored | None = None
    """The stored event it replaces (a correction or cancellation)."""
    cancelled: bool = False

    @property
    def position(self) -> int:
        return self.target.id if self.target is not None else self.event.position


@dataclass
class DossierWork:
    """What a batch does to one dossier."""

    code: str
    state: DossierState | None
    arrivals: list[Arrival] = field(default_factory=list)
    replay: bool = False
    stored: list[Stored] = field(default_factory=list)
    loaded: bool = False


@dataclass
class Answer:
    """How a group of arrivals ended: its verdict, or the problem that refused it."""

    outcome: str
    problem: DomainError | None = None


def history_event(event: DossierEventIn, position: int, client_id: int, secret_key: str) -> HistoryEvent:
    return HistoryEvent(
        position=position,
        client_id=client_id,
        type=event.type,
        occurred_at=event.occurred_at,
        new_return_at=event.new_return_at,
        flags={name: getattr(event, name) for name in FLAGS},
        procedure_code=event.procedure_code,
        unit_code=event.unit_code,
        channel=event.channel.value if event.channel else None,
        online_level=event.online_level.value if event.online_level else None,
        due_at=event.due_at,
        lookup_secret_hash=lookup_hash(secret_key, event.dossier_code, event.lookup_secret)
        if event.lookup_secret
        else None,
    )


# --- the batch ---------------------------------------------------------------------------------


class Batch:
    """One transaction's worth of arrivals, grouped by dossier, and the writes they lead to."""

    def __init__(self, session: AsyncSession, principal: Principal, calendar: WorkingCalendar) -> None:
        self.session = session
        self.principal = principal
        self.calendar = calendar
        self.now = utcnow()
        self.request_id = request_id_var.get()
        self.work: dict[str, DossierWork] = {}
        self.answers: dict[int, Answer] = {}
        self.reachable: set[str] | None = None
        self.bindings: dict[int, set[str] | None] = {}
        self.catalogue = Catalogue({}, {})
        self.sequence = 0
        # writes
        self.marks: list[stats.MarkOf] = []
        self.new_dossiers: list[DossierState] = []
        self.changed_dossiers: list[DossierState] = []
        self.gone_dossiers: list[str] = []
        self.event_rows: list[dict[str, Any]] = []
        self.event_updates: list[dict[str, Any]] = []
        self.correction_rows: list[dict[str, Any]] = []

    def next_position(self) -> int:
        self.sequence += 1
        return _ARRIVING + self.sequence

    async def open(self, codes: Sequence[str]) -> None:
        """Lock the dossiers (in code order), load their states and what waits on them."""
        await plan_with_values(self.session)
        await lock_dossiers(self.session, codes)
        states: dict[str, DossierState] = {}
        if codes:
            rows = await self.session.execute(select(*_STATE_COLUMNS).where(_DOSSIERS.c.code.in_(codes)))
            states = {row.code: DossierState(**row._mapping) for row in rows}
            waiting = await self.session.scalars(
                select(DossierEvent.dossier_code)
                # A literal, so that the partial index of pending events serves it on both backends.
                .where(
                    DossierEvent.dossier_code.in_(codes), DossierEvent.status == literal_column("'pending'")
                )
                .distinct()
            )
            pending = set(waiting)
        else:
            pending = set()
        self.work = {code: DossierWork(code, states.get(code), replay=code in pending) for code in codes}
        if self.principal.unit_code:
            self.reachable = await subtree_codes(self.session, self.principal.unit_code)

    def answer(self, group: int, outcome: str, problem: DomainError | None = None) -> None:
        self.answers[group] = Answer(outcome, problem)

    # --- unit binding ---

    def may_act(self, event: HistoryEvent, unit_code: str) -> DomainError | None:
        reach = (
            self.reachable
            if event.client_id == self.principal.client_id
            else self.bindings.get(event.client_id)
        )
        if reach is None or unit_code in reach:
            return None
        return Forbidden(f"The sending client is bound to another unit and cannot act on unit {unit_code!r}")

    async def _load_bindings(self, client_ids: set[int]) -> None:
        others = client_ids - {self.principal.client_id} - set(self.bindings)
        if not others:
            return
        rows = await self.session.execute(
            select(ApiClient.id, ApiClient.unit_code).where(ApiClient.id.in_(others))
        )
        for client_id, unit_code in rows:
            self.bindings[client_id] = await subtree_codes(self.session, unit_code) if unit_code else None

    # --- the fast path ---

    def _advance_in_order(self, work: DossierWork) -> bool:
        """Apply arrivals after the stored state; False (nothing done) when the history must be replayed."""
        if work.replay or any(a.target is not None for a in work.arrivals):
            return False
        times = [a.event.occurred_at for a in work.arrivals]
        if times != sorted(times):
            return False
        if work.state is None:
            if work.arrivals[0].event.type not in RECEPTIONS:
                return False
        elif work.state.last_event_at is not None and times[0] < work.state.last_event_at:
            return False
        state = work.state
        marks: list[Mark] = []
        outcomes: list[tuple[Arrival, DomainError | None]] = []
        for arrival in work.arrivals:
            event = arrival.event
            try:
                if event.type in RECEPTIONS:
                    if state is not None:
                        raise Conflict(f"Dossier {work.code!r} was already received")
                    assert event.unit_code is not None and event.procedure_code is not None
                    refused = self.may_act(event, event.unit_code)
                    if refused is not None:
                        raise refused
                    reception = self.catalogue.reception(
                        event.procedure_code, event.unit_code, event.occurred_at
                    )
                    state, new_marks = receive(work.code, event, reception, self.calendar)
                else:
                    if state is None:
                        return False
                    refused = self.may_act(event, state.unit_code)
                    if refused is not None:
                        raise refused
                    state, new_marks = lifecycle.advance(
                        state,
                        event_type=event.type,
                        occurred_at=event.occurred_at,
                        new_return_at=event.new_return_at,
                        calendar=self.calendar,
                        flags=event.flags,
                    )
            except OutOfSequence:
                return False
            except DomainError as exc:
                outcomes.append((arrival, exc))
                continue
            marks.extend(new_marks)
            outcomes.append((arrival, None))
        for arrival, problem in outcomes:
            if problem is not None:
                self.answer(arrival.group, "error", problem)
            else:
                self.answer(arrival.group, "created")
                self.store_new(arrival, Verdict(Outcome.applied))
        if state is not None and state is not work.state:
            self.marks.extend((state.unit_code, state.sector_code, state.procedure_code, m) for m in marks)
            (self.new_dossiers if work.state is None else self.changed_dossiers).append(state)
        return True

    # --- the replay ---

    async def load_histories(self) -> None:
        """The stored events of every dossier that is replayed, in one query."""
        codes = [code for code, work in self.work.items() if work.replay and not work.loaded]
        if not codes:
            return
        for code in codes:
            self.work[code].loaded = True
        rows = await self.session.execute(
            select(*_STORED_COLUMNS).where(DossierEvent.dossier_code.in_(codes)).order_by(DossierEvent.id)
        )
        client_ids: set[int] = set()
        for row in rows:
            self.work[row.dossier_code].stored.append(Stored.of(row))
            client_ids.add(row.client_id)
        await self._load_bindings(client_ids)

    def reception_of(self, work: DossierWork, event: HistoryEvent) -> Reception:
        """A stored reception met again keeps the due date and sector it had; others ask the catalogue."""
        kept = work.state
        if (
            kept is not None
            and event.position < _ARRIVING
            and event.unit_code == kept.unit_code
            and event.procedure_code == kept.procedure_code
            and event.occurred_at == (kept.received_at or kept.refused_at)
        ):
            return Reception(
                unit_level="kept",
                sector_code=kept.sector_code,
                procedure_levels=("kept",),
                processing_value=0,
                processing_unit=TimeUnit.working_hours,
                procedure_abolished=False,
                known_due_at=kept.original_due_at,
            )
        assert event.procedure_code is not None and event.unit_code is not None
        return self.catalogue.reception(event.procedure_code, event.unit_code, event.occurred_at)

    def _replay_with(self, work: DossierWork, arrivals: list[Arrival]) -> Replayed:
        events = {s.id: s.history_event() for s in work.stored if s.status != Outcome.cancelled}
        for arrival in arrivals:
            if arrival.cancelled:
                events.pop(arrival.position, None)
            else:
                events[arrival.position] = arrival.event
        return replay(
            work.code,
            events.values(),
            reception_of=lambda event: self.reception_of(work, event),
            may_act=self.may_act,
            calendar=self.calendar,
        )

    async def rework(self, work: DossierWork, *, strict_groups: frozenset[int] = frozenset()) -> None:
        """Replay the dossier's history with the arrivals; an arrival that cannot take its place is
        refused (with every arrival of its group), and the history replayed again without it.

        In a strict group (a DVCQG record) every arrival must apply, or none does.
        """
        active = list(work.arrivals)
        while True:
            replayed = self._replay_with(work, active)
            failed: dict[int, DomainError] = {}
            for arrival in active:
                if arrival.cancelled:
                    continue
                verdict = replayed.verdicts[arrival.position]
                strict = arrival.group in strict_groups
                if verdict.outcome is Outcome.rejected or (strict and verdict.outcome is not Outcome.applied):
                    assert verdict.problem is not None
                    failed.setdefault(arrival.group, verdict.problem)
            gone = replayed.state is None and work.state is not None
            if gone and not failed and await self._rated(work.code):
                for arrival in active:
                    failed.setdefault(
                        arrival.group,
                        Conflict(f"Dossier {work.code!r} has a citizen's rating: its reception stays"),
                    )
            if not failed:
                break
            for group, problem in failed.items():
                self.answer(group, "error", problem)
            active = [a for a in active if a.group not in failed]
        self._record_replay(work, active, replayed)

    async def _rated(self, code: str) -> bool:
        found = await self.session.scalar(
            select(DossierRating.dossier_code).where(DossierRating.dossier_code == code)
        )
        return found is not None

    def _record_replay(self, work: DossierWork, arrivals: list[Arrival], replayed: Replayed) -> None:
        for arrival in arrivals:
            verdict = replayed.verdicts.get(arrival.position, Verdict(Outcome.cancelled))
            if arrival.target is not None:
                self._store_correction(arrival, verdict)
                self.answers.setdefault(arrival.group, Answer("updated"))
            else:
                self.store_new(arrival, verdict)
                self.answers.setdefault(
                    arrival.group, Answer("created" if verdict.outcome is Outcome.applied else "pending")
                )
        touched = {a.position for a in arrivals}
        for stored in work.stored:
            if stored.id in touched or stored.status == Outcome.cancelled:
                continue
            verdict = replayed.verdicts[stored.id]
            if (verdict.outcome.value, verdict.reason) != (stored.status, stored.reason):
                self.event_updates.append(
                    {"row_id": stored.id, "status": verdict.outcome.value, "reason": _reason(verdict)}
                )
        old = self._contribution(work.state, work.stored, replayed=None)
        new = self._contribution(replayed.state, work.stored, replayed=replayed)
        self.marks.extend(old)
        self.marks.extend(new)
        if replayed.state is None:
            if work.state is not None:
                self.gone_dossiers.append(work.code)
        elif work.state is None:
            self.new_dossiers.append(replayed.state)
        elif replayed.state != work.state:
            self.changed_dossiers.append(replayed.state)

    def _contribution(
        self, state: DossierState | None, stored: list[Stored], replayed: Replayed | None
    ) -> list[stats.MarkOf]:
        """The dossier's marks in the counters: negative for the old state, positive for the new."""
        if state is None:
            return []
        if replayed is None:
            applied = sorted(
                (
                    s.history_event()
                    for s in stored
                    if s.status == Outcome.applied and s.payload["type"] in _PAUSE_TYPES
                ),
                key=lambda event: event.order,
            )
            pauses = pauses_of(
                [(e.type, e.occurred_at) for e in applied], state.finished_at or state.withdrawn_at
            )
            sign = -1
        else:
            pauses, sign = replayed.pauses, 1
        facts = facts_of(state, pauses)
        return [
            (state.unit_code, state.sector_code, state.procedure_code, (name, at, sign * delta))
            for name, at, delta in facts_marks(facts, self.calendar)
        ]

    # --- rows ---

    def store_new(self, arrival: Arrival, verdict: Verdict) -> None:
        self.event_rows.append(
            {
                "client_id": self.principal.client_id,
                "event_id": arrival.event_id,
                "dossier_code": arrival.dossier_code,
                "type": arrival.event.type.value,
                "occurred_at": arrival.event.occurred_at,
                "payload": arrival.payload,
                "payload_hash": arrival.digest,
                "request_id": self.request_id,
                "ingested_at": self.now,
                "revision": arrival.revision,
                "status": verdict.outcome.value,
                "reason": _reason(verdict),
            }
        )

    def _store_correction(self, arrival: Arrival, verdict: Verdict) -> None:
        target = arrival.target
        assert target is not None
        after = json.loads(arrival.payload)
        changes = {
            name: [target.payload.get(name), after.get(name)]
            for name in sorted(set(target.payload) | set(after))
            if target.payload.get(name) != after.get(name)
        }
        self.event_updates.append(
            {
                "row_id": target.id,
                "status": Outcome.cancelled.value if arrival.cancelled else verdict.outcome.value,
                "reason": None if arrival.cancelled else _reason(verdict),
                "type": arrival.event.type.value,
                "occurred_at": arrival.event.occurred_at,
                "payload": after,
                "payload_hash": arrival.digest,
                "revision": arrival.revision,
            }
        )
        self.correction_rows.append(
            {
                "event_row_id": target.id,
                "dossier_code": target.dossier_code,
                "client_id": self.principal.client_id,
                "from_revision": target.revision,
                "to_revision": arrival.revision,
                "cancelled": arrival.cancelled,
                "changes": changes,
                "request_id": self.request_id,
                "corrected_at": self.now,
            }
        )

    async def run(self, strict_groups: frozenset[int] = frozenset()) -> None:
        """Work every dossier (fast path or replay), then write."""
        for work in self.work.values():
            if work.arrivals and not self._advance_in_order(work):
                work.replay = True
        await self.load_histories()
        for work in self.work.values():
            if work.replay and work.arrivals:
                await self.rework(work, strict_groups=strict_groups)
        await self.write()

    async def write(self) -> None:
        session = self.session
        now = self.now
        # The statistics of these provinces change; nothing of the others (data_version).
        changed_units = {s.unit_code for s in (*self.new_dossiers, *self.changed_dossiers)}
        changed_units |= {unit for unit, *_rest in self.marks}
        touch(session, await provinces_of(session, changed_units))
        if self.new_dossiers:
            await bulk_insert(
                session,
                _DOSSIERS,
                [{**state.as_row(), "created_at": now, "updated_at": now} for state in self.new_dossiers],
            )
        if self.changed_dossiers:
            values: dict[str, Any] = {name: bindparam(name) for name in _STATE_FIELDS if name != "code"}
            await session.execute(
                update(_DOSSIERS).where(_DOSSIERS.c.code == bindparam("dossier_code")).values(values),
                [{**state.as_row(), "dossier_code": state.code} for state in self.changed_dossiers],
            )
        if self.gone_dossiers:
            await session.execute(delete(_DOSSIERS).where(_DOSSIERS.c.code.in_(self.gone_dossiers)))
        if self.event_rows:
            await bulk_insert(session, _EVENTS, self.event_rows)
        for row in self.event_updates:
            values = {name: value for name, value in row.items() if name != "row_id"}
            await session.execute(update(_EVENTS).where(_EVENTS.c.id == row["row_id"]).values(values))
        if self.correction_rows:
            await session.execute(insert(_CORRECTIONS), self.correction_rows)
        # Last, so that the rows every batch of a unit shares stay locked for the shortest time.
        rows = [row for row in stats.counter_rows(self.marks) if any(row[1])]
        await stats.add_counters(session, rows)


_PAUSE_TYPES = frozenset({EventType.supplement_requested.value, EventType.supplement_received.value})


def _reason(verdict: Verdict) -> str | None:
    reason = verdict.reason
    return reason[:500] if reason else None


async def lock_dossiers(session: AsyncSession, codes: Sequence[str]) -> None:
    """Serialise the writers of these dossiers until the transaction ends, known or not yet received.

    PostgreSQL: transaction-level advisory locks on the codes' hashes, taken in one order so two
    batches cannot deadlock. SQLite has one writer at a time: taking the write lock first makes
    everything the transaction reads afterwards current.
    """
    if not codes:
        return
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(_ADVISORY_LOCKS, {"codes": sorted(codes)})
    else:
        await take_write_lock(session)


_ADVISORY_LOCKS = text(
    "SELECT pg_advisory_xact_lock(k) FROM "
    "(SELECT DISTINCT hashtextextended(c, 7) AS k FROM unnest(CAST(:codes AS text[])) AS c "
    "ORDER BY 1 OFFSET 0) AS keys"
)


async def bulk_insert(session: AsyncSession, table: Table, rows: list[dict[str, Any]]) -> None:
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


# --- the events endpoint -----------------------------------------------------------------------


_Parsed = tuple[int, DossierEventIn, str, str]
"""(position in the batch, event, canonical payload, its digest)."""


async def ingest(
    session: AsyncSession,
    principal: Principal,
    calendar: WorkingCalendar,
    secret_key: str,
    items: list[Any],
) -> list[EventResult]:
    """Each event is answered created, updated, pending, duplicate or error; errors store nothing."""
    return await _with_retries(session, lambda: _ingest_once(session, principal, calendar, secret_key, items))


async def _with_retries(session: AsyncSession, attempt: Callable[[], Awaitable[_T]]) -> _T:
    """When two requests store the same event id at the same moment, the loser's transaction fails
    on a unique key: it is rolled back and replayed (it then sees the winner's rows)."""
    for number in range(1, ATTEMPTS + 1):
        try:
            return await attempt()
        except IntegrityError:
            await session.rollback()
            logger.warning("concurrent ingestion of the same events; replaying (attempt %d)", number)
    raise Conflict("The same events are being ingested concurrently; retry the request")


def _rounds(items: list[_Item], key: Callable[[_Item], str]) -> list[list[_Item]]:
    """Items split so that each round holds one item per key, in the order sent: a key sent twice
    in one request is then taken after its first occurrence was stored, like a later request."""
    rounds: list[list[_Item]] = []
    seen: dict[str, int] = defaultdict(int)
    for item in items:
        occurrence = seen[key(item)]
        seen[key(item)] += 1
        if occurrence == len(rounds):
            rounds.append([])
        rounds[occurrence].append(item)
    return rounds


async def _ingest_once(
    session: AsyncSession,
    principal: Principal,
    calendar: WorkingCalendar,
    secret_key: str,
    items: list[Any],
) -> list[EventResult]:
    now = utcnow()
    event_ids: list[str | None] = []
    parsed: list[tuple[int, DossierEventIn, str, str]] = []
    errors: dict[int, DomainError] = {}
    for index, raw in enumerate(items):
        raw_id = raw.get("event_id") if isinstance(raw, dict) else getattr(raw, "event_id", None)
        event_ids.append(raw_id if isinstance(raw_id, str) else None)
        try:
            event = _EVENT.validate_python(raw)
        except ValidationError as exc:
            errors[index] = InvalidInput(
                "The event is invalid", errors=FieldError.from_pydantic(exc.errors(), whole="event")
            )
            continue
        problems = event.problems(now)
        if problems:
            errors[index] = InvalidInput("The event is invalid", errors=problems)
            continue
        parsed.append((index, event, *canonical(event, secret_key)))

    answers: dict[int, Answer] = {}
    for items_of_round in _rounds(parsed, lambda item: item[1].event_id):
        answers |= await _ingest_round(session, principal, calendar, secret_key, items_of_round)

    results: list[EventResult] = []
    for index, event_id in enumerate(event_ids):
        if index in errors:
            results.append(EventResult(event_id=event_id, status="error", problem=problem_of(errors[index])))
            continue
        answer = answers[index]
        results.append(
            EventResult(
                event_id=event_id,
                status=answer.outcome,
                problem=problem_of(answer.problem) if answer.problem else None,
            )
        )
    return results


async def _ingest_round(
    session: AsyncSession,
    principal: Principal,
    calendar: WorkingCalendar,
    secret_key: str,
    parsed: list[_Parsed],
) -> dict[int, Answer]:
    batch = Batch(session, principal, calendar)
    await batch.open(sorted({event.dossier_code for _, event, _, _ in parsed}))
    known = await _sent_before(session, principal, {event.event_id for _, event, _, _ in parsed})
    batch.catalogue = await load_catalogue(
        session,
        {e.procedure_code for _, e, _, _ in parsed if e.procedure_code},
        {e.unit_code for _, e, _, _ in parsed if e.unit_code},
    )
    for index, event, payload, digest in parsed:
        revision = event.revision or 1
        stored = known.get(event.event_id)
        work = batch.work[event.dossier_code]
        if stored is not None:
            if digest == stored.payload_hash or revision < stored.revision:
                batch.answer(index, "duplicate")
            elif revision == stored.revision:
                batch.answer(
                    index,
                    "error",
                    InvalidInput.for_field(
                        "event_id", "This event_id was already used for a different event", "event_id_reused"
                    ),
                )
            elif stored.dossier_code != event.dossier_code:
                batch.answer(
                    index,
                    "error",
                    InvalidInput.for_field(
                        "dossier_code", "A correction cannot move an event to another dossier", "immutable"
                    ),
                )
            else:
                work.arrivals.append(
                    Arrival(
                        index,
                        event.event_id,
                        event.dossier_code,
                        history_event(event, stored.id, principal.client_id, secret_key),
                        payload,
                        digest,
                        revision,
                        target=stored,
                        cancelled=bool(event.cancelled),
                    )
                )
            continue
        if event.cancelled:
            # Revisions arrive out of order too: kept as cancelled, the event that arrives later
            # is an older revision, and changes nothing.
            arriving = history_event(event, batch.next_position(), principal.client_id, secret_key)
            withdrawn = Arrival(
                index, event.event_id, event.dossier_code, arriving, payload, digest, revision
            )
            batch.store_new(withdrawn, Verdict(Outcome.cancelled))
            batch.answer(index, "updated")
            continue
        if event.type in RECEPTIONS and work.state is not None:
            batch.answer(index, "error", Conflict(f"Dossier {event.dossier_code!r} was already received"))
            continue
        arriving = history_event(event, batch.next_position(), principal.client_id, secret_key)
        refused = batch.may_act(arriving, work.state.unit_code) if work.state is not None else None
        if refused is not None:
            batch.answer(index, "error", refused)
            continue
        work.arrivals.append(
            Arrival(index, event.event_id, event.dossier_code, arriving, payload, digest, revision)
        )
    await batch.run()
    return batch.answers


async def _sent_before(session: AsyncSession, principal: Principal, event_ids: set[str]) -> dict[str, Stored]:
    if not event_ids:
        return {}
    rows = await session.execute(
        select(*_STORED_COLUMNS).where(
            DossierEvent.client_id == principal.client_id, DossierEvent.event_id.in_(event_ids)
        )
    )
    known: dict[str, Stored] = {}
    for row in rows:
        known[row.event_id] = Stored.of(row)
    return known


# --- the national portal's DongBoHoSoMC records ------------------------------------------------


async def ingest_records(
    session: AsyncSession,
    principal: Principal,
    calendar: WorkingCalendar,
    secret_key: str,
    items: list[Any],
) -> list[RecordResult]:
    """Each record is answered created, updated, unchanged or error; a record applies whole or not at all."""
    return await _with_retries(
        session, lambda: _records_once(session, principal, calendar, secret_key, items)
    )


async def _records_once(
    session: AsyncSession,
    principal: Principal,
    calendar: WorkingCalendar,
    secret_key: str,
    items: list[Any],
) -> list[RecordResult]:
    codes: list[str | None] = []
    records: list[tuple[int, PortalRecord]] = []
    answers: dict[int, Answer] = {}
    for index, raw in enumerate(items):
        raw_code = raw.get("MaHoSo") if isinstance(raw, dict) else None
        codes.append(raw_code if isinstance(raw_code, str) else None)
        try:
            records.append((index, _RECORD.validate_python(raw)))
        except ValidationError as exc:
            answers[index] = Answer(
                "error",
                InvalidInput(
                    "The record is invalid", errors=FieldError.from_pydantic(exc.errors(), whole="event")
                ),
            )
    for records_of_round in _rounds(records, lambda item: item[1].MaHoSo):
        answers |= await _records_round(session, principal, calendar, secret_key, records_of_round)
    results = []
    for index, code in enumerate(codes):
        answer = answers[index]
        problem = _record_problem(answer.problem) if answer.problem is not None else None
        results.append(RecordResult(MaHoSo=code, status=answer.outcome, problem=problem))
    return results


_RECORD = TypeAdapter(PortalRecord)
# Where the event's fields come from in a record, to name the record's field in a problem.
_OCCURRED_AT = {
    "received": "NgayTiepNhan",
    "refused": "NgayTuChoi",
    "supplement_requested": "DanhSachHoSoBoSung",
    "supplement_received": "DanhSachHoSoBoSung",
    "processing": "NgayTiepNhan",
    "returned": "NgayTra",
}


def _record_problem(exc: DomainError) -> Problem:
    problem = problem_of(exc)
    if problem.errors:
        for error in problem.errors:
            error.field = RECORD_FIELDS.get(error.field, error.field)
    return problem


async def _records_round(
    session: AsyncSession,
    principal: Principal,
    calendar: WorkingCalendar,
    secret_key: str,
    records: list[tuple[int, PortalRecord]],
) -> dict[int, Answer]:
    batch = Batch(session, principal, calendar)
    await batch.open(sorted({record.MaHoSo for _, record in records}))
    batch.catalogue = await load_catalogue(
        session,
        {r.MaTTHC for _, r in records if r.MaTTHC},
        {r.DonViXuLy for _, r in records if r.DonViXuLy},
    )
    for work in batch.work.values():
        work.replay = True
    await batch.load_histories()
    existed: dict[int, bool] = {}
    for index, record in records:
        work = batch.work[record.MaHoSo]
        try:
            events = _record_as_events(batch.catalogue, record)
        except InvalidInput as exc:
            batch.answer(index, "error", exc)
            continue
        arrivals = _record_changes(batch, work, index, events, secret_key)
        if not arrivals:
            batch.answer(index, "unchanged")
            continue
        work.arrivals += arrivals
        existed[index] = work.state is not None
    await batch.run(strict_groups=frozenset(existed))
    for index, was_there in existed.items():
        if batch.answers[index].outcome != "error":
            batch.answer(index, "updated" if was_there else "created")
    return batch.answers


def _record_as_events(catalogue: Catalogue, record: PortalRecord) -> list[DossierEventIn]:
    """The record's parts as validated events; raises InvalidInput naming the record's field."""
    if record.TrangThaiHoSo != 1:
        if record.MaTTHC is not None and record.MaTTHC not in catalogue.versions:
            raise InvalidInput.for_field(
                "MaTTHC", f"Procedure {record.MaTTHC!r} does not exist", "unknown_reference"
            )
        if record.DonViXuLy is not None and record.DonViXuLy not in catalogue.units:
            raise InvalidInput.for_field(
                "DonViXuLy", f"Unit {record.DonViXuLy!r} does not exist", "unknown_reference"
            )

    def online_level_of(record: PortalRecord, at: datetime) -> str:
        assert record.MaTTHC is not None
        offered = catalogue.in_force(record.MaTTHC, local(at).date()).get("online_service")
        if offered not in ("partial", "full"):
            raise InvalidInput.for_field(
                "MucDo",
                f"An online dossier needs MucDo 3 or 4: procedure {record.MaTTHC!r} offers no online service",
                "missing",
            )
        return str(offered)

    now = utcnow()
    events = []
    for part in record_events(record, online_level_of):
        try:
            event = _EVENT.validate_python(part)
        except ValidationError as exc:
            raise InvalidInput(
                "The record is invalid", errors=FieldError.from_pydantic(exc.errors(), whole="event")
            ) from exc
        problems = event.problems(now)
        for problem in problems:
            if problem.field == "occurred_at":
                problem.field = _OCCURRED_AT.get(event.type.value, "NgayKetThucXuLy")
        if problems:
            raise InvalidInput("The record is invalid", errors=problems)
        events.append(event)
    return events


def _record_changes(
    batch: Batch, work: DossierWork, group: int, events: list[DossierEventIn], secret_key: str
) -> list[Arrival]:
    """What differs between the record's parts and those an earlier record of this client stored:
    new parts, parts changed (a higher revision) and parts no longer there (cancelled)."""
    client_id = batch.principal.client_id
    prefix = event_prefix(work.code)
    mine = {s.event_id: s for s in work.stored if s.client_id == client_id and s.event_id.startswith(prefix)}
    arrivals: list[Arrival] = []
    for event in events:
        stored = mine.pop(event.event_id, None)
        if stored is None:
            payload, digest = canonical(event, secret_key)
            arriving = history_event(event, batch.next_position(), client_id, secret_key)
            arrivals.append(Arrival(group, event.event_id, work.code, arriving, payload, digest, 1))
            continue
        same = event.model_copy(update={"revision": stored.revision if stored.revision > 1 else None})
        if canonical(same, secret_key)[1] == stored.payload_hash:
            continue
        revised = event.model_copy(update={"revision": stored.revision + 1})
        payload, digest = canonical(revised, secret_key)
        arriving = history_event(event, stored.id, client_id, secret_key)
        arrivals.append(
            Arrival(
                group,
                event.event_id,
                work.code,
                arriving,
                payload,
                digest,
                stored.revision + 1,
                target=stored,
            )
        )
    for stored in mine.values():
        if stored.status == Outcome.cancelled:
            continue
        withdrawn = {**stored.payload, "revision": stored.revision + 1, "cancelled": True}
        payload = json.dumps(withdrawn, separators=(",", ":"), ensure_ascii=False)
        arrivals.append(
            Arrival(
                group,
                stored.event_id,
                work.code,
                stored.history_event(),
                payload,
                hashlib.sha256(payload.encode()).hexdigest(),
                stored.revision + 1,
                target=stored,
                cancelled=True,
            )
        )
    return arrivals
