"""A dossier's history: its events in time order, whatever order they arrived in (SPEC §4).

Sync pipelines deliver late, out of order and corrected. The dossier is therefore a pure function
of the events stored for it: ``replay`` sorts them by ``occurred_at`` (then by arrival) and runs
the state machine of app.dossiers.lifecycle over them, giving each event a verdict:

- ``applied``: it took its place in the history;
- ``pending``: it is kept and waits — for the dossier's reception, or for an event still missing
  that would explain it (a supplement received before its request has arrived);
- ``rejected``: it can never take its place (before the reception, after the end, a second
  reception); it stays on the dossier with the reason, never silently dropped.

Nothing here touches the database.
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from operator import attrgetter
from typing import Any

import msgspec

from app.calendar.working_time import WorkingCalendar
from app.core.errors import Conflict, DomainError
from app.dossiers import lifecycle
from app.dossiers.facts import FACT_FIELDS, DossierFacts, Pause
from app.dossiers.lifecycle import FLAGS, DossierState, EventType, Mark, OutOfSequence, Reception
from app.dossiers.models import Dossier, Outcome


class _CanonicalFields(msgspec.Struct):
    """What the history reads of an event's canonical payload (app.dossiers.ingestion.decoding
    ``canonical``); its other fields (ids, revision) are the stored row's. Instants are written in
    UTC ISO 8601, which msgspec reads as ``datetime.fromisoformat`` does."""

    type: EventType
    occurred_at: datetime
    new_return_at: datetime | None = None
    procedure_code: str | None = None
    unit_code: str | None = None
    channel: str | None = None
    online_level: str | None = None
    due_at: datetime | None = None
    lookup_secret: str | None = None


# The flags as lifecycle names them, each read from the payload's field of the same name.
_CanonicalPayload: type[_CanonicalFields] = msgspec.defstruct(  # type: ignore[assignment]
    "CanonicalPayload", [(name, bool | None, None) for name in FLAGS], bases=(_CanonicalFields,)
)
_read_canonical = msgspec.json.Decoder(_CanonicalPayload).decode

RECEPTIONS = frozenset({EventType.received, EventType.refused})
PAUSE_EVENTS = frozenset({EventType.supplement_requested, EventType.supplement_received})


@dataclass
class HistoryEvent:
    """One event as the history needs it, whether it arrives now or was stored before."""

    position: int
    """Arrival order: the stored row's id, or beyond every stored id for an event arriving now."""
    client_id: int
    type: EventType
    occurred_at: datetime
    new_return_at: datetime | None = None
    flags: dict[str, bool | None] = field(default_factory=dict)
    procedure_code: str | None = None
    unit_code: str | None = None
    channel: str | None = None
    online_level: str | None = None
    due_at: datetime | None = None
    lookup_secret_hash: str | None = None

    @property
    def order(self) -> tuple[datetime, int]:
        return (self.occurred_at, self.position)

    @classmethod
    def from_payload(cls, position: int, client_id: int, payload: dict[str, Any]) -> "HistoryEvent":
        """A stored event from its canonical payload as a JSON value (instants in ISO 8601, the PIN
        as its hash)."""
        return cls._of(position, client_id, msgspec.convert(payload, _CanonicalPayload))

    @classmethod
    def from_canonical(cls, position: int, client_id: int, payload: str) -> "HistoryEvent":
        """As ``from_payload``, from the canonical payload's text: read straight into the fields
        the history needs (a bulk load's lines, a fifth of the cost of a JSON value first)."""
        return cls._of(position, client_id, _read_canonical(payload))

    @classmethod
    def _of(cls, position: int, client_id: int, payload: "_CanonicalFields") -> "HistoryEvent":
        secret = payload.lookup_secret
        return cls(
            position=position,
            client_id=client_id,
            type=payload.type,
            occurred_at=payload.occurred_at,
            new_return_at=payload.new_return_at,
            flags={name: getattr(payload, name) for name in FLAGS},
            procedure_code=payload.procedure_code,
            unit_code=payload.unit_code,
            channel=payload.channel,
            online_level=payload.online_level,
            due_at=payload.due_at,
            lookup_secret_hash=secret.removeprefix("hmac-sha256:") if secret else None,
        )


@dataclass
class Verdict:
    outcome: Outcome
    problem: DomainError | None = None

    @property
    def reason(self) -> str | None:
        return self.problem.detail if self.problem is not None else None


APPLIED = Verdict(Outcome.applied)


@dataclass
class Replayed:
    state: DossierState | None
    verdicts: dict[int, Verdict]
    """By event position."""
    pauses: list[Pause]


def waiting_for_reception(code: str) -> OutOfSequence:
    return OutOfSequence(f"Dossier {code!r} has not been received yet; the event waits for its reception")


def replay(
    code: str,
    events: Iterable[HistoryEvent],
    *,
    reception_of: Callable[[HistoryEvent], Reception],
    may_act: Callable[[HistoryEvent, str], DomainError | None],
    calendar: WorkingCalendar,
    owner: int | None = None,
) -> Replayed:
    """The dossier its events make, taken in time order (then arrival), and each event's verdict.

    ``reception_of`` gives what the reception needs from the catalogue (it may raise: the
    reception is then rejected and everything else waits); ``may_act`` says whether an event's
    sender may act on the dossier's unit (an event may arrive before the reception tells it).
    ``owner`` is the client whose stored reception made the dossier: another client's reception
    never displaces it, whatever its time (SPEC §4); None while no reception is stored.
    """
    ordered = sorted(events, key=lambda event: event.order)
    verdicts: dict[int, Verdict] = {}
    receptions = [event for event in ordered if event.type in RECEPTIONS]
    state: DossierState | None = None
    for event in receptions:
        if state is not None:
            verdicts[event.position] = Verdict(
                Outcome.rejected, Conflict(f"Dossier {code!r} was already received")
            )
            continue
        if owner is not None and event.client_id != owner:
            verdicts[event.position] = Verdict(
                Outcome.rejected, Conflict(f"Dossier {code!r} was received by another client")
            )
            continue
        try:
            refused = may_act(event, event.unit_code or "")
            if refused is not None:
                raise refused
            state, _marks = receive(code, event, reception_of(event), calendar)
        except DomainError as exc:
            verdicts[event.position] = Verdict(Outcome.rejected, exc)
            continue
        verdicts[event.position] = APPLIED
    if state is None:
        for event in ordered:
            verdicts.setdefault(event.position, Verdict(Outcome.pending, waiting_for_reception(code)))
        return Replayed(None, verdicts, [])

    applied_pauses: list[tuple[EventType, datetime]] = []
    for event in ordered:
        if event.type in RECEPTIONS:
            continue
        refused = may_act(event, state.unit_code)
        if refused is not None:
            verdicts[event.position] = Verdict(Outcome.rejected, refused)
            continue
        try:
            state, _marks = lifecycle.advance(
                state,
                event_type=event.type,
                occurred_at=event.occurred_at,
                new_return_at=event.new_return_at,
                calendar=calendar,
                flags=event.flags,
            )
        except OutOfSequence as exc:
            verdicts[event.position] = Verdict(Outcome.pending, exc)
            continue
        except DomainError as exc:
            verdicts[event.position] = Verdict(Outcome.rejected, exc)
            continue
        verdicts[event.position] = APPLIED
        if event.type in PAUSE_EVENTS:
            applied_pauses.append((event.type, event.occurred_at))
    return Replayed(state, verdicts, pauses_of(applied_pauses, state.finished_at or state.withdrawn_at))


def receive(
    code: str, event: HistoryEvent, reception: Reception, calendar: WorkingCalendar
) -> tuple[DossierState, list[Mark]]:
    """The dossier its reception (or refusal) starts, and that event's statistics marks."""
    assert event.procedure_code is not None and event.unit_code is not None
    return lifecycle.receive(
        code=code,
        event_type=event.type,
        occurred_at=event.occurred_at,
        procedure_code=event.procedure_code,
        unit_code=event.unit_code,
        channel=event.channel,
        online_level=event.online_level,
        due_at=event.due_at,
        reception=reception,
        calendar=calendar,
        lookup_secret_hash=event.lookup_secret_hash,
        flags=event.flags,
    )


def pauses_of(events: Iterable[tuple[str, datetime]], ended_at: datetime | None) -> list[Pause]:
    """Supplement pauses from the applied supplement events in time order; a pause still open when
    the dossier ended stops there (SPEC §3)."""
    spans: list[Pause] = []
    for kind, at in events:
        if kind == EventType.supplement_requested:
            if spans and spans[-1].end is None:
                continue  # a further request while waiting: the pause runs on from the first
            spans.append(Pause(start=at, end=None, resumed=False))
        else:
            spans[-1].end, spans[-1].resumed = at, True
    if spans and spans[-1].end is None and ended_at is not None:
        spans[-1].end = ended_at
    return spans


def facts_of(state: "DossierState | Dossier", pauses: list[Pause]) -> DossierFacts:
    """What the statistics need of a dossier (see app.dossiers.facts.facts_marks)."""
    facts = DossierFacts(*_facts_fields(state))
    facts.pauses = pauses
    return facts


_facts_fields = attrgetter(*FACT_FIELDS)
"""A state's (or row's) values of ``FACT_FIELDS``, in their order."""
