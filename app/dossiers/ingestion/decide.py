"""Decide: what a round's arrivals do to one dossier — a pure function, the same for every way in.

``decide`` takes the dossier as stored (its state, and its stored events when they were loaded),
the arrivals, and the round's ``Context`` (the catalogue, who may act where, the calendar), and
gives a ``DossierDecision``: the dossier's new state, each arrival's verdict and answer, the stored
events whose verdict changed, and the counters' difference (the old contribution taken back, the
new one added). Nothing here touches the database; ``app.dossiers.ingestion.pipeline`` loads what a
decision reads and writes what it says.

The rules, each once:

- **before the history** (``_refused_before``): who may act on the dossier's unit, a reception of a
  dossier already received (SPEC §4), a new event that arrives cancelled;
- **the fast path** (``_in_order``): arrivals that come after everything the dossier has advance
  the stored state (no history needed);
- **the replay** (``_replayed``): anything else replays the dossier's whole stored history with the
  arrivals (app.dossiers.history.replay), refusing what cannot take its place; a strict group (a
  DVCQG record) applies whole or not at all;
- **the counters**: the dossier's marks (app.dossiers.facts.facts_marks) old minus new.
"""

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from itertools import count

from app.calendar.working_time import TimeUnit, WorkingCalendar
from app.core.errors import Conflict, DomainError, Forbidden
from app.core.timezone import local_day
from app.dossiers import counters, lifecycle
from app.dossiers.facts import Pause, facts_marks
from app.dossiers.history import (
    PAUSE_EVENTS,
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
from app.dossiers.ingestion.work import Answer, Arrival, Stored
from app.dossiers.lifecycle import DossierState, EventType, Mark, OutOfSequence, Reception
from app.dossiers.models import Outcome
from app.dossiers.schemas import ResultStatus

# Events arriving now sort after every stored one of the same instant ("then by arrival").
_ARRIVING = 1 << 53


def arriving_positions() -> Iterator[int]:
    """Positions for the events of a round that arrive now: after every stored event's id."""
    return count(_ARRIVING + 1)


@dataclass(frozen=True)
class Reach:
    """Who may act where (SPEC §4): the sender's units, and those of the clients whose stored events
    a replay meets (None: unbound, every unit)."""

    client_id: int
    units: frozenset[str] | None
    bindings: Mapping[int, frozenset[str] | None] = field(default_factory=dict)

    def may_act(self, event: HistoryEvent, unit_code: str) -> DomainError | None:
        reach = self.units if event.client_id == self.client_id else self.bindings.get(event.client_id)
        if reach is None or unit_code in reach:
            return None
        # The unit is not named: a bound client must not learn where another unit's dossier lies.
        return Forbidden("The sending client is bound to another unit and cannot act on this dossier")


@dataclass(frozen=True)
class Context:
    """What a round's decisions read beyond each dossier."""

    catalogue: Catalogue
    reach: Reach
    calendar: WorkingCalendar
    keeps_due_dates: bool = True
    """A stored reception met again keeps its due date; False when the calendar changed (SPEC §3)."""
    rated: frozenset[str] = frozenset()
    """Dossiers with a citizen's rating: their reception stays."""
    strict_groups: frozenset[int] = frozenset()
    """Groups whose arrivals apply all or none (a DVCQG record)."""


@dataclass(frozen=True)
class Dossier:
    """One dossier as a round meets it."""

    code: str
    state: DossierState | None
    arrivals: tuple[Arrival, ...]
    stored: tuple[Stored, ...] | None = None
    """Its stored events in arrival order, when loaded (None: not loaded yet)."""
    waiting: bool = False
    """Some of its stored events are pending: only the replay may decide it."""
    replayed: bool = False
    """Replay the history even without arrivals (a changed calendar or rule)."""


@dataclass(frozen=True)
class DossierDecision:
    code: str
    old: DossierState | None
    new: DossierState | None
    stored: tuple[tuple[Arrival, Verdict], ...]
    """The arrivals kept, each with its verdict (new rows, or corrections of their target)."""
    answers: Mapping[int, Answer]
    """Each group's answer (errors first: a group with a refused arrival is refused whole)."""
    verdicts_changed: tuple[tuple[Stored, Verdict], ...]
    """Stored events the arrivals did not touch whose verdict changed."""
    marks: tuple[counters.MarkOf, ...]


class HistoryNeeded(Exception):
    """The dossier cannot be decided without its stored events."""


def decide(dossier: Dossier, context: Context) -> DossierDecision:
    """What the arrivals do to the dossier; raises HistoryNeeded when it must be replayed and its
    stored events are not loaded."""
    answers: dict[int, Answer] = {}
    kept: list[tuple[Arrival, Verdict]] = []
    arrivals: list[Arrival] = []
    releasing = _releasing(dossier.arrivals)
    for arrival in dossier.arrivals:
        refused = _refused_before(dossier, arrival, context, releasing)
        if refused is not None:
            answers.setdefault(arrival.group, Answer(ResultStatus.error, refused))
    refused_groups = set(answers)
    for arrival in dossier.arrivals:
        if arrival.group in refused_groups:
            # A group with a refused arrival is refused whole: none of its arrivals is kept (a
            # record's other parts would otherwise act on a dossier another client received).
            continue
        if arrival.cancelled and arrival.target is None:
            # Revisions arrive out of order too: kept as cancelled, the event that arrives later
            # is an older revision, and changes nothing.
            kept.append((arrival, Verdict(Outcome.cancelled)))
            answers[arrival.group] = Answer(ResultStatus.updated)
        else:
            arrivals.append(arrival)
    if not arrivals and not dossier.replayed:
        return DossierDecision(dossier.code, dossier.state, dossier.state, tuple(kept), answers, (), ())
    if not dossier.replayed:
        fast = _in_order(dossier, arrivals, context)
        if fast is not None:
            state, marks, refusals = fast
            for arrival, problem in refusals:
                if problem is not None:
                    answers[arrival.group] = Answer(ResultStatus.error, problem)
                else:
                    answers[arrival.group] = Answer(ResultStatus.created)
                    kept.append((arrival, Verdict(Outcome.applied)))
            return DossierDecision(dossier.code, dossier.state, state, tuple(kept), answers, (), marks)
    if dossier.stored is None:
        raise HistoryNeeded(dossier.code)
    return _replayed(dossier, dossier.stored, arrivals, context, answers, kept)


def _refused_before(
    dossier: Dossier, arrival: Arrival, context: Context, releasing: frozenset[int]
) -> DomainError | None:
    """A new event of a dossier already received: refused when its sender may not act on the
    dossier's unit, or when it is another reception (SPEC §4) — unless its group withdraws the
    reception the dossier was made from (``releasing``): the replay then puts it in its place."""
    if arrival.target is not None or dossier.state is None:
        return None
    refused = context.reach.may_act(arrival.event, dossier.state.unit_code)
    if refused is not None:
        return refused
    if arrival.event.type in RECEPTIONS and not arrival.cancelled and arrival.group not in releasing:
        return already_received(dossier.code)
    return None


def _releasing(arrivals: tuple[Arrival, ...]) -> frozenset[int]:
    """The groups that withdraw the applied reception (or refusal) a dossier was made from, by
    cancelling it or correcting it into another type: a DVCQG record sent again whose dossier went
    from refused to received, or back (SPEC §4: a record replaces the state it described before)."""
    return frozenset(
        a.group
        for a in arrivals
        if a.target is not None
        and a.target.status == Outcome.applied
        and a.target.payload.get("type") in RECEPTIONS
        and (a.cancelled or a.event.type not in RECEPTIONS)
    )


def already_received(code: str) -> Conflict:
    return Conflict(f"Dossier {code!r} was already received")


# --- the fast path ---

_Refusals = list[tuple[Arrival, DomainError | None]]
"""Each arrival of the fast path, in order, with the problem that refused it (None: applied)."""


def _in_order(
    dossier: Dossier, arrivals: list[Arrival], context: Context
) -> tuple[DossierState | None, tuple[counters.MarkOf, ...], _Refusals] | None:
    """The arrivals applied after the stored state; None when the history must be replayed (also
    when an arrival refused here has others in its group: the replay refuses a group whole)."""
    if dossier.waiting or any(a.target is not None for a in arrivals):
        return None
    times = [a.event.occurred_at for a in arrivals]
    if times != sorted(times):
        return None
    start = dossier.state
    if start is None:
        if arrivals[0].event.type not in RECEPTIONS:
            return None
    elif start.last_event_at is not None and times[0] < start.last_event_at:
        return None
    state = start
    marks: list[Mark] = []
    refusals: _Refusals = []
    for arrival in arrivals:
        event = arrival.event
        try:
            if event.type in RECEPTIONS:
                if state is not None:
                    raise already_received(dossier.code)
                assert event.unit_code is not None and event.procedure_code is not None
                refused = context.reach.may_act(event, event.unit_code)
                if refused is not None:
                    raise refused
                reception = context.catalogue.reception(
                    event.procedure_code, event.unit_code, event.occurred_at
                )
                state, new_marks = receive(dossier.code, event, reception, context.calendar)
            else:
                if state is None:
                    return None
                refused = context.reach.may_act(event, state.unit_code)
                if refused is not None:
                    raise refused
                state, new_marks = lifecycle.advance(
                    state,
                    event_type=event.type,
                    occurred_at=event.occurred_at,
                    new_return_at=event.new_return_at,
                    calendar=context.calendar,
                    flags=event.flags,
                )
        except OutOfSequence:
            return None
        except DomainError as exc:
            # Counted only here: a refusal is rare, and the fast path runs for every dossier.
            if sum(a.group == arrival.group for a in arrivals) > 1:
                return None
            refusals.append((arrival, exc))
            continue
        marks.extend(new_marks)
        refusals.append((arrival, None))
    if state is None:
        return None, (), refusals
    of_state = (state.unit_code, state.sector_code, state.procedure_code)
    return state, tuple((*of_state, mark) for mark in marks), refusals


# --- the replay ---


def _replayed(
    dossier: Dossier,
    stored: tuple[Stored, ...],
    arrivals: list[Arrival],
    context: Context,
    answers: dict[int, Answer],
    kept: list[tuple[Arrival, Verdict]],
) -> DossierDecision:
    """Replay the history with the arrivals; an arrival that cannot take its place is refused (with
    every arrival of its group), and the history replayed again without it. In a strict group every
    arrival must apply, or none does."""
    active = arrivals
    while True:
        replayed = _replay_with(dossier, stored, active, context)
        failed: dict[int, DomainError] = {}
        for arrival in active:
            if arrival.cancelled:
                continue
            verdict = replayed.verdicts[arrival.position]
            strict = arrival.group in context.strict_groups
            if verdict.outcome is Outcome.rejected or (strict and verdict.outcome is not Outcome.applied):
                assert verdict.problem is not None
                failed.setdefault(arrival.group, verdict.problem)
        gone = replayed.state is None and dossier.state is not None
        if gone and not failed and dossier.code in context.rated:
            for arrival in active:
                failed.setdefault(
                    arrival.group,
                    Conflict(f"Dossier {dossier.code!r} has a citizen's rating: its reception stays"),
                )
        if not failed:
            break
        for group, problem in failed.items():
            answers[group] = Answer(ResultStatus.error, problem)
        active = [a for a in active if a.group not in failed]
    for arrival in active:
        verdict = replayed.verdicts.get(arrival.position, Verdict(Outcome.cancelled))
        kept.append((arrival, verdict))
        if arrival.target is not None:
            answers.setdefault(arrival.group, Answer(ResultStatus.updated))
        elif verdict.outcome is Outcome.applied:
            answers.setdefault(arrival.group, Answer(ResultStatus.created))
        else:
            answers.setdefault(arrival.group, Answer(ResultStatus.pending))
    touched = {a.position for a in active}
    untouched = (s for s in stored if s.id not in touched and s.status != Outcome.cancelled)
    changed = tuple(
        (event, verdict)
        for event, verdict in ((s, replayed.verdicts[s.id]) for s in untouched)
        if (verdict.outcome.value, verdict.reason) != (event.status, event.reason)
    )
    old = _contribution(dossier.state, _stored_pauses(dossier.state, stored), -1, context.calendar)
    new = _contribution(replayed.state, replayed.pauses, 1, context.calendar)
    return DossierDecision(
        dossier.code, dossier.state, replayed.state, tuple(kept), answers, changed, (*old, *new)
    )


def _replay_with(
    dossier: Dossier, stored: tuple[Stored, ...], arrivals: list[Arrival], context: Context
) -> Replayed:
    events = {s.id: s.history_event() for s in stored if s.status != Outcome.cancelled}
    for arrival in arrivals:
        if arrival.cancelled:
            events.pop(arrival.position, None)
        else:
            events[arrival.position] = arrival.event
    made_by = _made_by(dossier.state, stored)
    # A correction replaces the event whole (SPEC §4): a reception it replaces is not kept.
    replacing = [a for a in arrivals if made_by is not None and a.position == made_by.id]
    kept_at = made_by.id if made_by is not None and not replacing else None
    # Its client owns the dossier, unless this round cancels it or corrects it into another type.
    released = any(a.cancelled or a.event.type not in RECEPTIONS for a in replacing)
    owner = made_by.client_id if made_by is not None and not released else None
    return replay(
        dossier.code,
        events.values(),
        reception_of=lambda event: reception_of(dossier.state, event, kept_at, context),
        may_act=context.reach.may_act,
        calendar=context.calendar,
        owner=owner,
    )


def _made_by(state: DossierState | None, stored: tuple[Stored, ...]) -> Stored | None:
    """The stored reception (or refusal) the dossier's state was made from: the one applied."""
    if state is None:
        return None
    made_by = EventType.received if state.received_at is not None else EventType.refused
    return next((s for s in stored if s.status == Outcome.applied and s.payload["type"] == made_by), None)


def reception_of(
    kept: DossierState | None, event: HistoryEvent, kept_at: int | None, context: Context
) -> Reception:
    """The stored reception that made the dossier, met again as it was, keeps the due date and
    sector it had (the catalogue may have changed since); any other asks the catalogue.

    ``kept_at`` is the position of that reception, or None when this round replaces or cancels
    it: a correction replaces the event whole (SPEC §4), so a due date it drops is computed
    again, and a `refused` corrected into `received` gets the procedure's time.
    """
    if kept is None or event.position != kept_at:
        assert event.procedure_code is not None and event.unit_code is not None
        return context.catalogue.reception(event.procedure_code, event.unit_code, event.occurred_at)
    processing_value, processing_unit = 0.0, TimeUnit.working_hours
    known_due_at = kept.original_due_at
    if not context.keeps_due_dates:
        # The calendar changed (SPEC §3): the same processing time, counted on the new one
        # (a version no longer known keeps the due date it gave).
        try:
            version = context.catalogue.in_force(kept.procedure_code, local_day(event.occurred_at))
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


# --- the counters ---


def _stored_pauses(state: DossierState | None, stored: tuple[Stored, ...]) -> list[Pause]:
    """The pauses the stored state was counted with: its applied supplement events in time order."""
    if state is None:
        return []
    applied = sorted(
        (
            s.history_event()
            for s in stored
            if s.status == Outcome.applied and s.payload["type"] in PAUSE_EVENTS
        ),
        key=lambda event: event.order,
    )
    return pauses_of([(e.type, e.occurred_at) for e in applied], state.finished_at or state.withdrawn_at)


def _contribution(
    state: DossierState | None, pauses: list[Pause], sign: int, calendar: WorkingCalendar
) -> list[counters.MarkOf]:
    """The dossier's marks in the counters, times ``sign`` (-1 for the old state, 1 for the new)."""
    if state is None:
        return []
    facts = facts_of(state, pauses)
    return [
        (state.unit_code, state.sector_code, state.procedure_code, (name, at, sign * delta))
        for name, at, delta in facts_marks(facts, calendar)
    ]
