"""The working calendar of SPEC §3."""

from datetime import date, datetime, time, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.calendar.working_time import TimeUnit, WorkingCalendar
from app.core.config import parse_working_hours
from app.core.timezone import VIETNAM
from tests.calendar.working_time import is_working_time

calendar = WorkingCalendar()


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=VIETNAM)


@pytest.mark.parametrize(
    ("received", "value", "unit", "due"),
    [
        # The examples of SPEC §3.
        ("2023-08-07 09:15", 3, "working_days", "2023-08-10 09:15"),
        ("2023-08-07 08:00", 1, "working_days", "2023-08-07 17:00"),
        ("2023-09-01 10:00", 1, "working_days", "2023-09-05 17:00"),
        # After 17:00 and at lunch the clock starts at the next working start.
        ("2023-08-07 17:30", 1, "working_days", "2023-08-08 17:00"),
        ("2023-08-07 12:20", 4, "working_hours", "2023-08-07 17:00"),
        ("2023-08-07 12:20", 5, "working_hours", "2023-08-08 09:00"),
        # Received on a Saturday.
        ("2023-08-05 10:00", 2, "working_days", "2023-08-08 17:00"),
        # Across the year end: 2023-12-29 (Fri) → 2024-01-01 is New Year's Day.
        ("2023-12-29 15:00", 1, "working_days", "2024-01-02 15:00"),
        # Tết 2024: 8–14 February are off.
        ("2024-02-07 16:00", 2, "working_days", "2024-02-16 16:00"),
        # 2024-04-29 (Mon) was given off in exchange for Saturday 2024-05-04; 30/4 and 1/5 are holidays.
        ("2024-04-26 16:00", 1, "working_days", "2024-05-02 16:00"),
        ("2024-05-03 16:00", 1, "working_days", "2024-05-04 16:00"),
        # Half a working day.
        ("2023-08-07 08:00", 0.5, "working_days", "2023-08-07 12:00"),
        # Calendar days: Friday + 1 day lands on Saturday → Monday, same clock time.
        ("2023-08-04 15:00", 1, "days", "2023-08-07 15:00"),
        ("2023-08-07 09:00", 7, "days", "2023-08-14 09:00"),
        # Calendar days from a reception outside working hours start at the next working start.
        ("2023-08-07 19:00", 1, "days", "2023-08-09 08:00"),
    ],
)
def test_due_dates(received: str, value: float, unit: str, due: str) -> None:
    assert calendar.due_at(at(received), value, TimeUnit(unit)) == at(due)


def test_tet_2024_and_the_may_2024_swap_are_known() -> None:
    assert not any(calendar.is_working_day(date(2024, 2, day)) for day in range(8, 15))
    assert calendar.is_working_day(date(2024, 2, 15))
    assert not calendar.is_working_day(date(2024, 4, 29))
    assert calendar.is_working_day(date(2024, 5, 4))  # a Saturday worked in exchange
    assert not calendar.is_working_day(date(2024, 5, 11))  # an ordinary Saturday


def test_extra_days_off_and_working_days_from_settings() -> None:
    custom = WorkingCalendar(extra_days_off=[date(2025, 1, 2)], extra_working_days=[date(2025, 1, 4)])
    assert not custom.is_working_day(date(2025, 1, 2))
    assert custom.is_working_day(date(2025, 1, 4))
    # 1 January is a holiday and 2 January an extra day off: the clock starts on the 3rd.
    assert custom.due_at(at("2025-01-01 16:00"), 1, TimeUnit.working_days) == at("2025-01-03 17:00")
    assert custom.due_at(at("2025-01-03 16:00"), 1, TimeUnit.working_days) == at("2025-01-04 16:00")


def test_configurable_working_hours() -> None:
    custom = WorkingCalendar("07:30-11:30,13:30-17:00")
    assert custom.day_length == timedelta(hours=7, minutes=30)
    assert custom.due_at(at("2023-08-07 07:30"), 1, TimeUnit.working_days) == at("2023-08-07 17:00")
    with pytest.raises(ValueError, match="in order"):
        parse_working_hours("13:00-17:00,08:00-12:00")
    with pytest.raises(ValueError, match="look like"):
        parse_working_hours("8 to 5")


def test_working_time_between() -> None:
    assert calendar.working_time_between(at("2023-08-07 11:00"), at("2023-08-07 14:00")) == timedelta(hours=2)
    assert calendar.working_time_between(at("2023-08-04 16:00"), at("2023-08-07 09:00")) == timedelta(hours=2)
    assert calendar.working_time_between(at("2023-08-07 14:00"), at("2023-08-07 11:00")) == timedelta()


def test_next_working_start() -> None:
    assert calendar.next_working_start(at("2023-08-07 10:00")) == at("2023-08-07 10:00")
    assert calendar.next_working_start(at("2023-08-07 12:30")) == at("2023-08-07 13:00")
    assert calendar.next_working_start(at("2023-08-07 17:00")) == at("2023-08-08 08:00")
    assert calendar.next_working_start(at("2023-09-01 09:00")) == at("2023-09-05 08:00")


instants = st.datetimes(min_value=datetime(2022, 1, 1), max_value=datetime(2026, 12, 31)).map(
    lambda moment: moment.replace(tzinfo=VIETNAM, microsecond=0)
)
durations = st.integers(min_value=0, max_value=60 * 8 * 40).map(lambda minutes: timedelta(minutes=minutes))


@settings(max_examples=300, deadline=None)
@given(start=instants, duration=durations)
def test_adding_then_measuring_working_time_gives_it_back(start: datetime, duration: timedelta) -> None:
    end = calendar.add_working_time(start, duration)
    assert end >= start
    assert calendar.working_time_between(start, end) == duration


@settings(max_examples=300, deadline=None)
@given(
    received=instants,
    value=st.sampled_from([0.5, 1, 2, 3, 5, 7, 10, 15, 30]),
    unit=st.sampled_from(list(TimeUnit)),
)
def test_due_dates_always_fall_in_working_time(received: datetime, value: float, unit: TimeUnit) -> None:
    due = calendar.due_at(received, value, unit)
    assert due > received
    assert is_working_time(calendar, due)
    assert time(8) <= due.timetz().replace(tzinfo=None) <= time(17)
