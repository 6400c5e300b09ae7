"""Apply: one transaction's worth of arrivals, dossier by dossier: the fast path for events that
come after everything their dossier has, the replay of its history for anything else."""

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Table, literal_column, select

from app.calendar.working_time import TimeUnit
from app.clients.models import ApiClient
from app.core.db import plan_with_values
from app.core.errors import (
    Conflict,
    DomainError,
    Forbidden,
    request_id_var,
)
from app.core.timezone import local, utcnow
from app.dossiers import counters, lifecycle
from app.dossiers.facts import facts_marks
from app.dossiers.history import (
    RECEPTIONS,
    HistoryEvent,
    Replayed,
    Verdict,
    facts_of,
    pauses_of,
    receive,
    replay,
)
from app.dossiers.ingestion.catalogue import Catalogue
from app.dossiers.ingestion.locks import lock_dossiers
from app.dossiers.ingestion.work import STORED_COLUMNS, Answer, Arrival, DossierWork, Sender, Stored
from app.dossiers.lifecycle import DossierState, EventType, Mark, OutOfSequence, Reception
from app.dossiers.models import Dossier, DossierEvent, DossierRating, Outcome
from app.units.access import subtree_codes

_DOSSIERS: Table = Dossier.__table__  # type: ignore[assignment]
STATE_FIELDS = list(DossierState.__dataclass_fields__)
_STATE_COLUMNS = [_DOSSIERS.c[name] for name in STATE_FIELDS]
# Events arriving now sort after every stored one of the same instant ("then by arrival").
_ARRIVING = 1 << 53


class Batch:
    """One transaction's worth of arrivals, grouped by dossier, and the writes they lead to."""

    def __init__(self, sender: Sender) -> None:
        self.session = sender.session
        self.principal = sender.principal
        self.calendar = sender.calendar
        self.secret_key = sender.secret_key
        self.now = utcnow()
        self.request_id = request_id_var.get()
        self.work: dict[str, DossierWork] = {}
        self.answers: dict[int, Answer] = {}
        self.reachable: set[str] | None = None
        self.bindings: dict[int, set[str] | None] = {}
        self.catalogue = Catalogue({}, {})
        self.sequence = 0
        self.keeps_due_dates = True
        """A stored reception met again keeps its due date; False when the calendar changed."""
        # writes
        self.marks: list[counters.MarkOf] = []
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
        await lock_dossiers(self.session, codes)
        await self.load(codes)

    async def load(self, codes: Sequence[str]) -> None:
        """Load the dossiers' states and what waits on them (locked by the caller)."""
        await plan_with_values(self.session)
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
        # The unit is not named: a bound client must not learn where another unit's dossier lies.
        return Forbidden("The sending client is bound to another unit and cannot act on this dossier")

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
            select(*STORED_COLUMNS).where(DossierEvent.dossier_code.in_(codes)).order_by(DossierEvent.id)
        )
        client_ids: set[int] = set()
        for row in rows:
            self.work[row.dossier_code].stored.append(Stored.of(row))
            client_ids.add(row.client_id)
        await self._load_bindings(client_ids)

    def reception_of(self, work: DossierWork, event: HistoryEvent, kept_at: int | None) -> Reception:
        """The stored reception that made the dossier, met again as it was, keeps the due date and
        sector it had (the catalogue may have changed since); any other asks the catalogue.

        ``kept_at`` is the position of that reception, or None when this batch replaces or
        cancels it: a correction replaces the event whole (SPEC §4), so a due date it drops is
        computed again, and a `refused` corrected into `received` gets the procedure's time.
        """
        kept = work.state
        if kept is None or event.position != kept_at:
            assert event.procedure_code is not None and event.unit_code is not None
            return self.catalogue.reception(event.procedure_code, event.unit_code, event.occurred_at)
        processing_value, processing_unit = 0.0, TimeUnit.working_hours
        known_due_at = kept.original_due_at
        if not self.keeps_due_dates:
            # The calendar changed (SPEC §3): the same processing time, counted on the new one
            # (a version no longer known keeps the due date it gave).
            try:
                version = self.catalogue.in_force(kept.procedure_code, local(event.occurred_at).date())
            except DomainError:
                pass
            else:
                processing_value = float(version["processing_time"]["value"])
                processing_unit = TimeUnit(version["processing_time"]["unit"])
                known_due_at = None
        return Reception(
            unit_level="kept",
            sector_code=kept.sector_code,
            procedure_levels=("kept",),
            processing_value=processing_value,
            processing_unit=processing_unit,
            procedure_abolished=False,
            known_due_at=known_due_at,
        )

    @staticmethod
    def _made_by(work: DossierWork) -> Stored | None:
        """The stored reception (or refusal) the dossier's state was made from: the one applied."""
        if work.state is None:
            return None
        made_by = EventType.received if work.state.received_at is not None else EventType.refused
        return next(
            (s for s in work.stored if s.status == Outcome.applied and s.payload["type"] == made_by), None
        )

    def _replay_with(self, work: DossierWork, arrivals: list[Arrival]) -> Replayed:
        events = {s.id: s.history_event() for s in work.stored if s.status != Outcome.cancelled}
        for arrival in arrivals:
            if arrival.cancelled:
                events.pop(arrival.position, None)
            else:
                events[arrival.position] = arrival.event
        made_by = self._made_by(work)
        # A correction replaces the event whole (SPEC §4): a reception it replaces is not kept.
        replacing = [a for a in arrivals if made_by is not None and a.position == made_by.id]
        kept_at = made_by.id if made_by is not None and not replacing else None
        # Its client owns the dossier, unless this batch cancels it or corrects it into another type.
        released = any(a.cancelled or a.event.type not in RECEPTIONS for a in replacing)
        owner = made_by.client_id if made_by is not None and not released else None
        return replay(
            work.code,
            events.values(),
            reception_of=lambda event: self.reception_of(work, event, kept_at),
            may_act=self.may_act,
            calendar=self.calendar,
            owner=owner,
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
    ) -> list[counters.MarkOf]:
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

    async def apply(self, strict_groups: frozenset[int] = frozenset()) -> None:
        """Work every dossier: the fast path where it can, else the replay of its history."""
        for work in self.work.values():
            if work.arrivals and not self._advance_in_order(work):
                work.replay = True
        await self.load_histories()
        for work in self.work.values():
            if work.replay and work.arrivals:
                await self.rework(work, strict_groups=strict_groups)


_PAUSE_TYPES = frozenset({EventType.supplement_requested.value, EventType.supplement_received.value})


def _reason(verdict: Verdict) -> str | None:
    reason = verdict.reason
    return reason[:500] if reason else None
