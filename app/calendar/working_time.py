"""Working days, working hours and due dates (SPEC §3), as pure functions of a calendar.

Everything is computed in Vietnam's local time (UTC+7, no DST); results are aware datetimes in
that zone. Working periods are closed at their end: a due date may fall exactly at 17:00.
"""

import hashlib
import json
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from importlib.metadata import version
from typing import Any

import holidays

from app.core.config import DEFAULT_WORKING_HOURS, Settings, parse_working_hours
from app.core.timezone import VIETNAM


class TimeUnit(StrEnum):
    working_days = "working_days"
    working_hours = "working_hours"
    days = "days"


class WorkingCalendar:
    def __init__(
        self,
        working_hours: Sequence[tuple[time, time]] | str = DEFAULT_WORKING_HOURS,
        extra_days_off: Iterable[date] = (),
        extra_working_days: Iterable[date] = (),
    ) -> None:
        self.periods = (
            parse_working_hours(working_hours) if isinstance(working_hours, str) else list(working_hours)
        )
        self.extra_days_off = frozenset(extra_days_off)
        self.extra_working_days = frozenset(extra_working_days)
        # The package knows Tết, substituted days off and make-up Saturdays, year by year.
        self._official = holidays.country_holidays("VN")
        self._working: dict[date, bool] = {}
        # Days are few (a few hundred a year) and asked for again and again by due-date arithmetic.
        self._day_periods: dict[date, list[tuple[datetime, datetime]]] = {}
        self._year_days: dict[int, list[date]] = {}
        self.day_length = sum(
            (
                datetime.combine(date.min, end) - datetime.combine(date.min, start)
                for start, end in self.periods
            ),
            timedelta(),
        )

    def is_working_day(self, day: date) -> bool:
        known = self._working.get(day)
        if known is None:
            if day in self.extra_working_days:
                known = True
            elif day in self.extra_days_off:
                known = False
            else:
                known = bool(self._official.is_working_day(day))
            self._working[day] = known
        return known

    def _periods_of(self, day: date) -> list[tuple[datetime, datetime]]:
        periods = self._day_periods.get(day)
        if periods is None:
            periods = [
                (datetime.combine(day, start, VIETNAM), datetime.combine(day, end, VIETNAM))
                for start, end in self.periods
                if self.is_working_day(day)
            ]
            self._day_periods[day] = periods
        return periods

    def next_working_start(self, instant: datetime) -> datetime:
        """The instant itself when it lies in working time, else the start of the next period."""
        local = instant.astimezone(VIETNAM)
        day = local.date()
        while True:
            for start, end in self._periods_of(day):
                if local < end:
                    return max(start, local)
            day += timedelta(days=1)

    def _working_days_in(self, year: int) -> list[date]:
        days = self._year_days.get(year)
        if days is None:
            first = date(year, 1, 1)
            every = (first + timedelta(days=n) for n in range((date(year + 1, 1, 1) - first).days))
            days = self._year_days[year] = [day for day in every if self.is_working_day(day)]
        return days

    def _working_day_after(self, day: date, count: int) -> date:
        """The ``count``-th working day after ``day`` (count ≥ 1), a year at a time."""
        year = day.year
        after = bisect_right(self._working_days_in(year), day)
        while True:
            days = self._working_days_in(year)
            if after + count - 1 < len(days):
                return days[after + count - 1]
            count -= len(days) - after
            year, after = year + 1, 0

    def _working_days_between(self, first: date, last: date) -> int:
        """How many working days lie strictly between two days, a year at a time."""
        if last <= first + timedelta(days=1):
            return 0
        total = 0
        for year in range(first.year, last.year + 1):
            days = self._working_days_in(year)
            total += bisect_left(days, last) - bisect_right(days, first)
        return total

    def _left_in_day(self, local: datetime) -> list[tuple[datetime, datetime]]:
        """The working periods of ``local``'s day that are still to come, cut at ``local``."""
        return [
            (max(start, local), end)
            for start, end in self._periods_of(local.date())
            if max(start, local) < end
        ]

    def add_working_time(self, start: datetime, duration: timedelta) -> datetime:
        """The earliest instant at which ``duration`` of working time has passed since ``start``.

        Whole working days are skipped a year at a time, so the cost does not grow with the
        processing time (a procedure of 10,000 working days costs what one of 3 does)."""
        if duration <= timedelta():
            return start.astimezone(VIETNAM)
        local = start.astimezone(VIETNAM)
        remaining = duration
        for begin, end in self._left_in_day(local):
            if remaining <= end - begin:
                return begin + remaining
            remaining -= end - begin
        # Whole days first, leaving a part of one day (0 < part ≤ a day) for the last day.
        whole_days = -(-remaining // self.day_length) - 1
        day = self._working_day_after(local.date(), whole_days + 1)
        remaining -= self.day_length * whole_days
        for begin, end in self._periods_of(day):
            if remaining <= end - begin:
                return begin + remaining
            remaining -= end - begin
        raise AssertionError("a working day holds a whole day's working time")

    def working_time_between(self, earlier: datetime, later: datetime) -> timedelta:
        """How much working time lies between two instants (zero when ``later`` is not later)."""
        begin, end = earlier.astimezone(VIETNAM), later.astimezone(VIETNAM)
        if end <= begin:
            return timedelta()

        def within(day: date) -> timedelta:
            return sum(
                (
                    min(period_end, end) - max(period_start, begin)
                    for period_start, period_end in self._periods_of(day)
                    if min(period_end, end) > max(period_start, begin)
                ),
                timedelta(),
            )

        if begin.date() == end.date():
            return within(begin.date())
        whole = self._working_days_between(begin.date(), end.date())
        return within(begin.date()) + self.day_length * whole + within(end.date())

    def _clamp_into_working_hours(self, instant: datetime) -> datetime:
        day_periods = self._periods_of(instant.date())
        if instant <= day_periods[0][0]:
            return day_periods[0][0]
        # Past the end of a period (after 17:00, or at lunch): the end of the period just gone.
        return max(min(instant, end) for start, end in day_periods if start <= instant)

    def due_at(self, received_at: datetime, value: float, unit: TimeUnit) -> datetime:
        """The due date of a dossier received at ``received_at`` with the given processing time."""
        start = self.next_working_start(received_at)
        if unit is TimeUnit.working_days:
            return self.add_working_time(start, self.day_length * value)
        if unit is TimeUnit.working_hours:
            return self.add_working_time(start, timedelta(hours=value))
        candidate = start + timedelta(days=value)
        day = candidate.date()
        while not self.is_working_day(day):
            day += timedelta(days=1)
        return self._clamp_into_working_hours(datetime.combine(day, candidate.timetz()))


def calendar_from_settings(settings: Settings) -> WorkingCalendar:
    return WorkingCalendar(settings.working_hours, settings.extra_days_off, settings.extra_working_days)


# --- a change of calendar (SPEC §3: due dates and figures follow the calendar in force) ----------


def calendar_description(calendar: WorkingCalendar) -> dict[str, Any]:
    """What the calendar is made of, as JSON: stored beside the counters, so that a restart on
    another calendar is noticed. The `holidays` package's version stands for its list of days."""
    return {
        "working_hours": [[start.isoformat(), end.isoformat()] for start, end in calendar.periods],
        "extra_days_off": sorted(day.isoformat() for day in calendar.extra_days_off),
        "extra_working_days": sorted(day.isoformat() for day in calendar.extra_working_days),
        "holidays": version("holidays"),
    }


def calendar_fingerprint(description: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(description, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class CalendarChange:
    """The days on which two calendars differ: ``first``..``last``, or every day (``everywhere``)
    when the working hours or the official holidays changed."""

    everywhere: bool
    first: date | None = None
    last: date | None = None

    @property
    def none(self) -> bool:
        return not self.everywhere and self.first is None


def calendar_change(before: dict[str, Any], after: dict[str, Any]) -> CalendarChange:
    if before.get("working_hours") != after["working_hours"] or before.get("holidays") != after["holidays"]:
        return CalendarChange(everywhere=True)
    changed = {
        date.fromisoformat(day)
        for name in ("extra_days_off", "extra_working_days")
        for day in set(before.get(name, [])) ^ set(after[name])
    }
    if not changed:
        return CalendarChange(everywhere=False)
    return CalendarChange(everywhere=False, first=min(changed), last=max(changed))
