"""The dossier state machine of SPEC §4, as pure functions over an in-memory state.

Nothing here touches the database: the service loads what an event needs, applies events in
order, and writes the resulting states back. A rejected event raises and leaves the state as it was.
"""

from dataclasses import dataclass, fields
from datetime import UTC, datetime
from enum import IntEnum, StrEnum
from typing import Any

from app.calendar.working_time import TimeUnit, WorkingCalendar
from app.core.errors import Conflict, InvalidInput
from app.core.timezone import local_day


class EventType(StrEnum):
    received = "received"
    refused = "refused"
    processing = "processing"
    supplement_requested = "supplement_requested"
    supplement_received = "supplement_received"
    withdrawn = "withdrawn"
    stopped = "stopped"
    resolved = "resolved"
    returned = "returned"
    apology_issued = "apology_issued"


class Status(IntEnum):
    """The national portal's TrangThaiHoSo."""

    received = 2
    refused = 3
    processing = 4
    waiting_supplement = 5
    withdrawn = 7
    stopped = 8
    resolved = 9
    returned = 10


# TrangThaiHoSo 1–10 as the national portal names them; 1 and 6 come only in DVCQG records.
NATIONAL_STATUS_NAMES_VI = {
    1: "Mới đăng ký",
    2: "Được tiếp nhận",
    3: "Không được tiếp nhận",
    4: "Đang xử lý",
    5: "Yêu cầu bổ sung giấy tờ",
    6: "Yêu cầu thực hiện nghĩa vụ tài chính",
    7: "Công dân yêu cầu rút hồ sơ",
    8: "Dừng xử lý",
    9: "Đã xử lý xong",
    10: "Đã trả kết quả",
}
STATUS_NAMES_VI = {
    Status.received: "Được tiếp nhận",
    Status.refused: "Không được tiếp nhận",
    Status.processing: "Đang xử lý",
    Status.waiting_supplement: "Yêu cầu bổ sung",
    Status.withdrawn: "Công dân rút",
    Status.stopped: "Dừng xử lý",
    Status.resolved: "Đã xử lý xong",
    Status.returned: "Đã trả kết quả",
}
ENDED = frozenset({Status.refused, Status.withdrawn, Status.stopped, Status.resolved, Status.returned})
FLAGS = ("paid_online", "fee_payable", "digitized", "e_result")

# A mark is one change to the statistics counters: (counter, instant, +1 or -1). Statistics
# (app.stats) add marks up by the local day of their instant; see app.stats.definitions.
Mark = tuple[str, datetime, int]


class OutOfSequence(Conflict):
    """The event does not follow from the dossier's history so far (a supplement received while
    not waiting …): an event still missing may explain it, so it is kept and waits."""

    slug = "out-of-sequence"


class OutOfPlace(Conflict):
    """The event can never take its place in the history: before the reception or after the end."""

    slug = "out-of-place"


def channel_category(channel: str | None, online_level: str | None) -> str:
    """The channel as the counters split it: direct, postal, online_partial or online_full."""
    if channel == "online":
        return f"online_{online_level}"
    return channel or "direct"


@dataclass
class DossierState:
    """A dossier as the ``dossiers`` table holds it (same field names as its columns; instants in
    UTC, see ``due_after_pause``)."""

    def copy(self) -> "DossierState":
        """A shallow copy (every field is immutable), without copy.copy's generic protocol: a
        bulk load copies a state per event."""
        new = object.__new__(DossierState)
        new.__dict__.update(self.__dict__)
        return new

    code: str
    procedure_code: str
    unit_code: str
    status: int
    sector_code: str | None = None
    channel: str | None = None
    online_level: str | None = None
    received_at: datetime | None = None
    due_at: datetime | None = None
    original_due_at: datetime | None = None
    finished_at: datetime | None = None
    returned_at: datetime | None = None
    withdrawn_at: datetime | None = None
    refused_at: datetime | None = None
    supplement_count: int = 0
    waiting_since: datetime | None = None
    apology_count: int = 0
    new_return_at: datetime | None = None
    on_time: bool | None = None
    early: bool | None = None
    # Start of the span during which the dossier counts as open, not waiting and past due, as far
    # as its events so far tell (it may lie in the future); None while waiting or once ended.
    overdue_from: datetime | None = None
    last_event_at: datetime | None = None
    lookup_secret_hash: str | None = None
    paid_online: bool | None = None
    fee_payable: bool | None = None
    digitized: bool | None = None
    e_result: bool | None = None

    def as_row(self) -> dict[str, Any]:
        # Shallow on purpose: every field is immutable, and asdict's deep copy is the hot path's cost.
        return {name: getattr(self, name) for name in _STATE_FIELDS}

    @property
    def is_open(self) -> bool:
        return Status(self.status) not in ENDED


_STATE_FIELDS = tuple(field.name for field in fields(DossierState))


@dataclass(frozen=True)
class Reception:
    """What a `received` event needs to know about its procedure (version in force) and unit."""

    unit_level: str
    sector_code: str | None
    procedure_levels: tuple[str, ...]
    processing_value: float
    processing_unit: TimeUnit
    procedure_abolished: bool
    known_due_at: datetime | None = None
    """The due date this reception already had, when a replay meets it again unchanged: the
    catalogue may have changed since, and a dossier's due date must not move with it."""


def classify(finished_at: datetime, due_at: datetime, supplement_count: int) -> tuple[bool, bool]:
    """(on time, early): on time iff finished by the due date with fewer than two supplement requests."""
    on_time = finished_at <= due_at and supplement_count < 2
    early = on_time and local_day(finished_at) < local_day(due_at)
    return on_time, early


def receive(
    *,
    code: str,
    event_type: EventType,
    occurred_at: datetime,
    procedure_code: str,
    unit_code: str,
    channel: str | None,
    online_level: str | None,
    due_at: datetime | None,
    reception: Reception,
    calendar: WorkingCalendar,
    lookup_secret_hash: str | None,
    flags: dict[str, bool | None],
) -> tuple[DossierState, list[Mark]]:
    """A new dossier from its first event, `received` or `refused`, and its statistics marks."""
    if event_type is EventType.refused:
        refused = DossierState(
            code=code,
            procedure_code=procedure_code,
            unit_code=unit_code,
            sector_code=reception.sector_code,
            status=Status.refused,
            channel=channel,
            online_level=online_level,
            refused_at=occurred_at,
            last_event_at=occurred_at,
        )
        _set_flags(refused, flags)
        return refused, [("refused", occurred_at, 1)]
    if reception.procedure_abolished:
        raise InvalidInput.for_field(
            "procedure_code",
            f"Procedure {procedure_code!r} was abolished on that date",
            "procedure_abolished",
        )
    if reception.unit_level not in reception.procedure_levels:
        raise InvalidInput.for_field(
            "unit_code",
            f"Procedure {procedure_code!r} is carried out at {', '.join(reception.procedure_levels)} level, "
            f"not at the {reception.unit_level} level of unit {unit_code!r}",
            "level_mismatch",
        )
    due = (
        due_at
        or reception.known_due_at
        # In UTC, as every instant of a state (see ``due_after_pause``).
        or calendar.due_at(occurred_at, reception.processing_value, reception.processing_unit).astimezone(UTC)
    )
    received = DossierState(
        code=code,
        procedure_code=procedure_code,
        unit_code=unit_code,
        sector_code=reception.sector_code,
        status=Status.received,
        channel=channel,
        online_level=online_level,
        received_at=occurred_at,
        due_at=due,
        original_due_at=due,
        last_event_at=occurred_at,
        lookup_secret_hash=lookup_secret_hash,
        overdue_from=due,
    )
    _set_flags(received, flags)
    category = channel_category(channel, online_level)
    return received, [(f"received_{category}", occurred_at, 1), ("overdue_start", due, 1)]


def _set_flags(state: DossierState, flags: dict[str, bool | None]) -> None:
    """Indicator flags stick once a source reports them; an event without one leaves them as they were."""
    for name, value in flags.items():
        if value is not None:
            setattr(state, name, value)


def due_after_pause(calendar: WorkingCalendar, due: datetime, start: datetime, end: datetime) -> datetime:
    """SPEC §3: the due date moved forward by the working time a pause from ``start`` to ``end``
    lasted.

    In UTC, as events carry their instants and the database returns them: the calendar works in
    Vietnam's zone, and comparing instants of two zones costs CPython a conversion of each (about
    0.5 µs, against 15 ns within one zone), which every later step of the dossier would pay."""
    return calendar.add_working_time(due, calendar.working_time_between(start, end)).astimezone(UTC)


def _end_pause(state: DossierState, at: datetime, calendar: WorkingCalendar, marks: list[Mark]) -> None:
    """The clock restarts: the due date moves forward by the working time the pause lasted."""
    if state.waiting_since is None or state.due_at is None:
        return
    state.due_at = due_after_pause(calendar, state.due_at, state.waiting_since, at)
    state.waiting_since = None
    marks.append(("waiting_end", at, 1))


def _close_overdue(state: DossierState, at: datetime, marks: list[Mark]) -> None:
    """The open-and-past-due span ends at ``at`` (a pause starts, or the dossier ends)."""
    if state.overdue_from is None:
        return
    if state.overdue_from < at:
        marks.append(("overdue_end", at, 1))
    else:  # it would have started later: it never happens
        marks.append(("overdue_start", state.overdue_from, -1))
    state.overdue_from = None


def _end(state: DossierState, at: datetime, calendar: WorkingCalendar, marks: list[Mark]) -> None:
    """Common to finishing and withdrawing: the pause or the overdue span stops, the dossier ends."""
    if state.waiting_since is not None:
        _end_pause(state, at, calendar, marks)
    else:
        _close_overdue(state, at, marks)
    marks.append((f"ended_{channel_category(state.channel, state.online_level)}", at, 1))


def _finish(
    state: DossierState, at: datetime, status: Status, calendar: WorkingCalendar, marks: list[Mark]
) -> None:
    _end(state, at, calendar, marks)
    assert state.due_at is not None
    state.finished_at = at
    state.status = status
    state.on_time, state.early = classify(at, state.due_at, state.supplement_count)
    if state.on_time:
        marks.append(("finished_on_time", at, 1))
        if state.early:
            marks.append(("finished_early", at, 1))
    else:
        marks.append(("finished_late", at, 1))


def advance(
    state: DossierState,
    *,
    event_type: EventType,
    occurred_at: datetime,
    new_return_at: datetime | None,
    calendar: WorkingCalendar,
    flags: dict[str, bool | None],
) -> tuple[DossierState, list[Mark]]:
    """The dossier after its next event in time and its statistics marks; raises, changing nothing,
    when the event cannot follow the history so far (the caller keeps events in time order)."""
    if event_type in (EventType.received, EventType.refused):
        raise Conflict(f"Dossier {state.code!r} was already {'refused' if state.refused_at else 'received'}")
    if state.status == Status.refused:
        raise OutOfPlace(f"Dossier {state.code!r} was refused and takes no further events")
    assert state.received_at is not None
    if occurred_at < state.received_at:
        raise OutOfPlace(
            f"The event happened before dossier {state.code!r} was received ({state.received_at})"
        )

    status = Status(state.status)
    after_end_allowed = event_type is EventType.apology_issued or (
        event_type is EventType.returned and status is Status.resolved
    )
    if status in ENDED and not after_end_allowed:
        raise OutOfPlace(
            f"Dossier {state.code!r} had ended ({status.name}) before this {event_type.value} event"
        )

    new = state.copy()
    new.last_event_at = max(occurred_at, state.last_event_at or occurred_at)
    _set_flags(new, flags)
    marks: list[Mark] = []

    waiting = status is Status.waiting_supplement
    if event_type is EventType.processing:
        if waiting:
            raise OutOfSequence(
                f"Dossier {state.code!r} is waiting for a supplement; no supplement_received yet"
            )
        new.status = Status.processing
    elif event_type is EventType.supplement_requested and waiting:
        # SPEC §3: a further request while waiting counts, and the pause runs on from the first.
        new.supplement_count += 1
    elif event_type is EventType.supplement_requested:
        _close_overdue(new, occurred_at, marks)
        new.status = Status.waiting_supplement
        new.waiting_since = occurred_at
        new.supplement_count += 1
        marks.append(("waiting_start", occurred_at, 1))
    elif event_type is EventType.supplement_received:
        if not waiting:
            raise OutOfSequence(f"Dossier {state.code!r} is not waiting for a supplement")
        _end_pause(new, occurred_at, calendar, marks)
        assert new.due_at is not None
        new.status = Status.processing
        new.overdue_from = max(occurred_at, new.due_at)
        marks.append(("overdue_start", new.overdue_from, 1))
    elif event_type is EventType.withdrawn:
        _end(new, occurred_at, calendar, marks)
        new.status = Status.withdrawn
        new.withdrawn_at = occurred_at
        marks.append(("withdrawn", occurred_at, 1))
    elif event_type is EventType.stopped:
        _finish(new, occurred_at, Status.stopped, calendar, marks)
    elif event_type is EventType.resolved:
        _finish(new, occurred_at, Status.resolved, calendar, marks)
    elif event_type is EventType.returned:
        if status is not Status.resolved:
            _finish(new, occurred_at, Status.returned, calendar, marks)
        new.status = Status.returned
        new.returned_at = occurred_at
    elif event_type is EventType.apology_issued:
        if new_return_at is None:
            raise InvalidInput.for_field("new_return_at", "An apology carries the new return date", "missing")
        new.apology_count += 1
        new.new_return_at = new_return_at
    return new, marks
