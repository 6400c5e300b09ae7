"""``decide``, pure: a strict group (a DVCQG record) on the fast path and on the replay."""

from collections import defaultdict
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from types import SimpleNamespace

import pytest

from app.calendar.working_time import TimeUnit, WorkingCalendar
from app.core.errors import InvalidInput
from app.dossiers.counters import add_day_marks
from app.dossiers.history import HistoryEvent
from app.dossiers.ingestion.catalogue import Catalogue
from app.dossiers.ingestion.decide import (
    Context,
    Dossier,
    DossierDecision,
    HistoryNeeded,
    Reach,
    arriving_positions,
    decide,
)
from app.dossiers.ingestion.work import Arrival
from app.dossiers.lifecycle import EventType
from app.dossiers.models import Outcome
from app.dossiers.schemas import ResultStatus

CODE = "H-0001"
CLIENT = 1
RECEIVED_AT = datetime(2023, 9, 5, 2, 0, tzinfo=UTC)  # a Tuesday, 09:00 in Vietnam
CATALOGUE = Catalogue(
    {
        "P1": [
            (
                None,
                {
                    "levels": ["district"],
                    "processing_time": {"value": 3, "unit": "working_days"},
                    "status": "active",
                    "sector_code": "S1",
                    "online_service": None,
                },
            )
        ]
    },
    {
        "U1": SimpleNamespace(code="U1", level="district", valid_from=None, valid_to=None),
        "U2": SimpleNamespace(code="U2", level="district", valid_from=None, valid_to=None),
    },
)


def _record(group: int, unit: str = "U1", *, supplement: bool = True) -> tuple[Arrival, ...]:
    """A record's parts, in time order, all of one group: received, processing, a supplement asked
    for and answered, resolved, returned."""
    positions = arriving_positions()
    parts = [(EventType.received, timedelta(0)), (EventType.processing, timedelta(0))]
    if supplement:
        parts += [
            (EventType.supplement_requested, timedelta(days=1)),
            (EventType.supplement_received, timedelta(days=3)),
        ]
    parts += [(EventType.resolved, timedelta(days=6)), (EventType.returned, timedelta(days=7))]
    arrivals = []
    for number, (kind, after) in enumerate(parts):
        first = kind is EventType.received
        event = HistoryEvent(
            position=next(positions),
            client_id=CLIENT,
            type=kind,
            occurred_at=RECEIVED_AT + after,
            new_return_at=None,
            flags={},
            procedure_code="P1" if first else None,
            unit_code=unit if first else None,
            channel="direct" if first else None,
            online_level=None,
            due_at=None,
            lookup_secret_hash=None,
        )
        arrivals.append(Arrival(group, f"part-{number}", CODE, event, "{}", f"digest-{number}", 1))
    return tuple(arrivals)


def _context(*, strict: bool, units: frozenset[str] | None = None) -> Context:
    return Context(
        CATALOGUE,
        Reach(CLIENT, units),
        WorkingCalendar(),
        strict_groups=frozenset({7}) if strict else frozenset(),
    )


def _day_sums(decision: DossierDecision) -> dict[tuple[str, str, str, date], list[int]]:
    sums: dict[tuple[str, str, str, date], list[int]] = {}
    add_day_marks(sums, decision.marks)
    return {key: values for key, values in sums.items() if any(values)}


@pytest.mark.parametrize("supplement", [True, False])
def test_a_strict_group_in_order_is_decided_without_the_history_as_the_replay_decides_it(
    supplement: bool,
) -> None:
    arrivals = _record(7, supplement=supplement)
    # stored=None: had it needed the history, decide would raise HistoryNeeded.
    fast = decide(Dossier(CODE, None, arrivals), _context(strict=True))
    replayed = decide(Dossier(CODE, None, arrivals, stored=(), replayed=True), _context(strict=True))

    assert fast.new is not None and fast.new.finished_at == RECEIVED_AT + timedelta(days=6)
    assert fast.new == replayed.new
    assert dict(fast.answers) == dict(replayed.answers) == {7: fast.answers[7]}
    assert fast.answers[7].status is ResultStatus.created
    assert [(a.event_id, v.outcome) for a, v in fast.stored] == [
        (a.event_id, Outcome.applied) for a in arrivals
    ]
    assert [(a.event_id, v.outcome) for a, v in fast.stored] == [
        (a.event_id, v.outcome) for a, v in replayed.stored
    ]
    assert _day_sums(fast) and _day_sums(fast) == _day_sums(replayed)


@pytest.mark.parametrize("replayed", [False, True])
def test_the_due_dates_a_dossier_is_given_are_held_in_utc_at_the_calendars_instant(replayed: bool) -> None:
    # Received Tuesday 09:00, 3 working days: Friday 09:00; asked for a supplement on Wednesday
    # 09:00 and given it on Friday 09:00, the two working days of the pause move it to Tuesday.
    arrivals = _record(7)
    decision = decide(Dossier(CODE, None, arrivals, stored=(), replayed=replayed), _context(strict=True))
    calendar = WorkingCalendar()
    original = calendar.due_at(RECEIVED_AT, 3, TimeUnit.working_days)
    moved = calendar.add_working_time(original, 2 * calendar.day_length)

    assert decision.new is not None
    assert decision.new.original_due_at == original == datetime(2023, 9, 8, 2, 0, tzinfo=UTC)
    assert decision.new.due_at == moved == datetime(2023, 9, 12, 2, 0, tzinfo=UTC)
    # The same instants, in UTC as the events' and the database's: comparing instants of two zones
    # costs a conversion of each, which every later step of the dossier would pay.
    assert decision.new.original_due_at.tzinfo is UTC and decision.new.due_at.tzinfo is UTC
    assert {instant.tzinfo for *_key, (_counter, instant, _delta) in decision.marks} == {UTC}


def test_a_strict_group_with_a_part_refused_on_the_way_goes_to_the_replay_which_refuses_it_whole() -> None:
    # Received, resolved, then a processing part after the end: the fast path refuses that part
    # alone; in a record every part goes with it, which only the replay decides.
    received, processing, resolved, returned = _record(7, supplement=False)
    late = replace(processing, event=replace(processing.event, occurred_at=returned.event.occurred_at))
    arrivals = (received, resolved, late)
    context = _context(strict=True)
    with pytest.raises(HistoryNeeded):
        decide(Dossier(CODE, None, arrivals), context)
    decision = decide(Dossier(CODE, None, arrivals, stored=()), context)
    assert decision.new is None
    assert decision.stored == ()
    assert decision.marks == ()
    assert decision.answers[7].status is ResultStatus.error


def test_a_record_meeting_a_dossier_another_client_received_applies_none_of_its_parts() -> None:
    # Client 2 received the dossier; client 1's record of it (received, processing, resolved,
    # returned) is refused whole: its reception is already_received (SPEC §4), and its later
    # parts, which would act on client 2's dossier, go with it.
    theirs = tuple(replace(a, event=replace(a.event, client_id=2)) for a in _record(1, supplement=False)[:1])
    received = decide(Dossier(CODE, None, theirs), _context(strict=False))
    assert received.new is not None
    mine = _record(7, supplement=False)
    for stored in (None, ()):
        decision = decide(Dossier(CODE, received.new, mine, stored=stored), _context(strict=True))
        assert decision.answers == {7: decision.answers[7]}
        assert decision.answers[7].status is ResultStatus.error
        assert "already received" in str(decision.answers[7].problem)
        assert decision.new == received.new
        assert decision.stored == ()
        assert decision.marks == ()


def test_the_same_parts_as_a_batch_of_events_keep_what_applies() -> None:
    # A batch answers each event alone: the refused reception is that event's error only, and the
    # rest waits for a reception, stored pending.
    arrivals = tuple(replace(a, group=number) for number, a in enumerate(_record(7, unit="U1")))
    context = _context(strict=False, units=frozenset({"U2"}))
    decision = decide(Dossier(CODE, None, arrivals, stored=()), context)
    assert decision.new is None
    assert decision.answers[0].status is ResultStatus.error
    assert {decision.answers[n].status for n in range(1, len(arrivals))} == {ResultStatus.pending}
    assert [a.event_id for a, _ in decision.stored] == [a.event_id for a in arrivals[1:]]


def test_the_catalogue_refuses_a_procedure_it_lacks_and_builds_a_reception_once_per_version() -> None:
    """A procedure the batch's catalogue does not hold is the item's 422 (never a KeyError, never an
    empty entry that a later look-up would take for the procedure); a procedure's receptions on
    days of one version, in units of one level, are one Reception, and another version's another."""
    version = {
        "levels": ["district"],
        "processing_time": {"value": 5, "unit": "working_days"},
        "status": "active",
        "sector_code": "tu-phap",
        "online_service": "full",
    }
    unit = SimpleNamespace(level="commune", valid_from=None, valid_to=None)
    versions = defaultdict(
        list, {"P": [(None, version), (date(2024, 1, 1), {**version, "sector_code": "other"})]}
    )
    catalogue = Catalogue(versions, {"U1": unit, "U2": unit})
    for look_up in (
        lambda: catalogue.reception("missing", "U1", datetime(2023, 5, 2, tzinfo=UTC)),
        lambda: catalogue.in_force("missing", date(2023, 5, 2)),
    ):
        with pytest.raises(InvalidInput) as refused:
            look_up()
        assert [error.type for error in refused.value.errors or []] == ["unknown_reference"]
        assert "missing" not in versions
    first = catalogue.reception("P", "U1", datetime(2023, 5, 2, tzinfo=UTC))
    assert catalogue.reception("P", "U2", datetime(2023, 9, 1, tzinfo=UTC)) is first
    later = catalogue.reception("P", "U1", datetime(2024, 2, 1, tzinfo=UTC))
    assert (first.sector_code, later.sector_code) == ("tu-phap", "other")
