"""Write: what a round decided, stored set-based (COPY on PostgreSQL), the data versions moved, and
the counters' difference handed to a sink — added to the counters as a request goes, or summed by
day for a bulk load's merge."""

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import Table, bindparam, delete, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.data_version import touch
from app.core.db import bulk_insert, bulk_update, plan_generically
from app.dossiers import counters
from app.dossiers.history import Verdict
from app.dossiers.ingestion.decide import DossierDecision
from app.dossiers.ingestion.work import Arrival
from app.dossiers.lifecycle import DossierState
from app.dossiers.models import Dossier, DossierEvent, DossierEventCorrection, Outcome
from app.units.access import provinces_of

_DOSSIERS: Table = Dossier.__table__  # type: ignore[assignment]
_EVENTS: Table = DossierEvent.__table__  # type: ignore[assignment]
_CORRECTIONS: Table = DossierEventCorrection.__table__  # type: ignore[assignment]
STATE_FIELDS = list(DossierState.__dataclass_fields__)


class CounterSink(Protocol):
    """Where a round's counter increments go."""

    async def add(self, session: AsyncSession, marks: Sequence[counters.MarkOf]) -> None: ...


class LiveCounters:
    """Added to the counters in the round's transaction (a request)."""

    async def add(self, session: AsyncSession, marks: Sequence[counters.MarkOf]) -> None:
        sums: dict[counters.DayKey, list[int]] = {}
        counters.add_day_marks(sums, marks)
        await counters.add_day_sums(session, sums)


@dataclass
class DaySums:
    """Summed by unit, sector, procedure and day in memory, and dropped: a replay whose counters are
    rebuilt afterwards."""

    sums: dict[counters.DayKey, list[int]] = field(default_factory=dict)

    async def add(self, session: AsyncSession, marks: Sequence[counters.MarkOf]) -> None:
        counters.add_day_marks(self.sums, marks)


@dataclass(frozen=True)
class StagedCounters:
    """Summed by day and staged, in the round's transaction, for the merge that ends a bulk load
    (app.dossiers.counters.merge_staged_counters): a round rolled back and replayed (a lost race, a
    deadlock) takes its sums back with it."""

    identity: str
    """The load's file, whose staged counters its end merges."""

    async def add(self, session: AsyncSession, marks: Sequence[counters.MarkOf]) -> None:
        sums: dict[counters.DayKey, list[int]] = {}
        counters.add_day_marks(sums, marks)
        await counters.stage_counters(session, self.identity, sums)


@dataclass(frozen=True)
class Stamp:
    """Who wrote a round's rows, in which request, when."""

    client_id: int
    request_id: str | None
    now: datetime


async def write(
    session: AsyncSession, decisions: Sequence[DossierDecision], stamp: Stamp, sink: CounterSink
) -> None:
    """Store the decisions: dossiers, events and corrections set-based, then the counters (last, so
    that the counter rows every round of a unit shares stay locked for the shortest time)."""
    new: list[DossierState] = []
    changed: list[DossierState] = []
    gone: list[str] = []
    event_rows: list[dict[str, Any]] = []
    corrected: list[dict[str, Any]] = []
    correction_rows: list[dict[str, Any]] = []
    verdicts: list[dict[str, Any]] = []
    marks: list[counters.MarkOf] = []
    units: set[str] = set()
    for decision in decisions:
        old, state = decision.old, decision.new
        if state is not None and old is None:
            new.append(state)
        elif state is None and old is not None:
            gone.append(decision.code)
        elif state is not None and old is not None and state != old:
            changed.append(state)
        if state != old:
            units |= {s.unit_code for s in (old, state) if s is not None}
        for arrival, verdict in decision.stored:
            if arrival.target is None:
                event_rows.append(_event_row(arrival, verdict, stamp))
            else:
                corrected.append(_corrected_row(arrival, verdict))
                correction_rows.append(_correction_row(arrival, stamp))
        for event, verdict in decision.verdicts_changed:
            verdicts.append({"id": event.id, "status": verdict.outcome.value, "reason": _reason(verdict)})
        marks.extend(decision.marks)
    # The statistics of these provinces change; nothing of the others (data_version).
    units |= {unit for unit, *_rest in marks}
    await plan_generically(session)
    touch(session, await provinces_of(session, units))
    if new:
        rows = [{**state.as_row(), "created_at": stamp.now, "updated_at": stamp.now} for state in new]
        await bulk_insert(session, _DOSSIERS, rows)
    if changed:
        values: dict[str, Any] = {name: bindparam(name) for name in STATE_FIELDS if name != "code"}
        await session.execute(
            update(_DOSSIERS).where(_DOSSIERS.c.code == bindparam("dossier_code")).values(values),
            [{**state.as_row(), "dossier_code": state.code} for state in changed],
        )
    if gone:
        await session.execute(delete(_DOSSIERS).where(_DOSSIERS.c.code.in_(gone)))
    if event_rows:
        await bulk_insert(session, _EVENTS, event_rows)
    # One statement per shape of update, for all its rows (a request of records that changes many
    # dossiers changes the verdicts of many of their events).
    for rows in (verdicts, corrected):
        if rows:
            await bulk_update(session, _EVENTS, "id", rows)
    if correction_rows:
        await bulk_insert(session, _CORRECTIONS, correction_rows)
    await sink.add(session, marks)


def _event_row(arrival: Arrival, verdict: Verdict, stamp: Stamp) -> dict[str, Any]:
    return {
        "client_id": stamp.client_id,
        "event_id": arrival.event_id,
        "dossier_code": arrival.dossier_code,
        "type": arrival.event.type.value,
        "occurred_at": arrival.event.occurred_at,
        "payload": arrival.payload,
        "payload_hash": arrival.digest,
        "request_id": stamp.request_id,
        "ingested_at": stamp.now,
        "revision": arrival.revision,
        "status": verdict.outcome.value,
        "reason": _reason(verdict),
    }


def _corrected_row(arrival: Arrival, verdict: Verdict) -> dict[str, Any]:
    assert arrival.target is not None
    return {
        "id": arrival.target.id,
        "status": Outcome.cancelled.value if arrival.cancelled else verdict.outcome.value,
        "reason": None if arrival.cancelled else _reason(verdict),
        "type": arrival.event.type.value,
        "occurred_at": arrival.event.occurred_at,
        "payload": json.loads(arrival.payload),
        "payload_hash": arrival.digest,
        "revision": arrival.revision,
    }


def _correction_row(arrival: Arrival, stamp: Stamp) -> dict[str, Any]:
    target = arrival.target
    assert target is not None
    after = json.loads(arrival.payload)
    changes = {
        name: [target.payload.get(name), after.get(name)]
        for name in sorted(set(target.payload) | set(after))
        if target.payload.get(name) != after.get(name)
    }
    return {
        "event_row_id": target.id,
        "dossier_code": target.dossier_code,
        "client_id": stamp.client_id,
        "from_revision": target.revision,
        "to_revision": arrival.revision,
        "cancelled": arrival.cancelled,
        "changes": changes,
        "request_id": stamp.request_id,
        "corrected_at": stamp.now,
    }


def _reason(verdict: Verdict) -> str | None:
    reason = verdict.reason
    return reason[:500] if reason else None
