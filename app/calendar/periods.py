"""Reporting periods (SPEC §6): calendar boundaries or the 15th-to-14th cut-off of Decree 09/2019."""

import re
from dataclasses import dataclass
from datetime import date, datetime, time
from enum import StrEnum

from app.core.errors import InvalidInput
from app.core.timezone import VIETNAM

MAX_SPAN_DAYS = 10 * 366
_PERIOD = re.compile(
    r"^(?P<year>\d{4})(?:-(?:H(?P<half>[12])|Q(?P<quarter>[1-4])|(?P<month>0[1-9]|1[0-2])))?$"
)


class Scheme(StrEnum):
    calendar = "calendar"
    report = "report"


class Interval(StrEnum):
    month = "month"
    quarter = "quarter"


@dataclass(frozen=True)
class Period:
    label: str
    scheme: Scheme
    start: date
    end: date
    """The first day after the period: the period is [start, end) between local midnights."""

    @property
    def start_at(self) -> datetime:
        return datetime.combine(self.start, time.min, VIETNAM)

    @property
    def end_at(self) -> datetime:
        return datetime.combine(self.end, time.min, VIETNAM)


def _month_start(year: int, month: int, scheme: Scheme) -> date:
    """Where month ``month`` begins: its 1st, or the 15th of the month before it."""
    if scheme is Scheme.calendar:
        return date(year, month, 1)
    return date(year - 1, 12, 15) if month == 1 else date(year, month - 1, 15)


def _months(year: int, first: int, last: int, label: str, scheme: Scheme) -> Period:
    end = _month_start(year + 1, 1, scheme) if last == 12 else _month_start(year, last + 1, scheme)
    return Period(label=label, scheme=scheme, start=_month_start(year, first, scheme), end=end)


def parse_period(text: str, scheme: Scheme) -> Period:
    match = _PERIOD.match(text.strip())
    if match is None:
        raise InvalidInput.for_field(
            "query.period", "A period looks like 2023, 2023-H1, 2023-Q3 or 2023-07", "period_format"
        )
    year = int(match["year"])
    if not 1990 <= year <= 2100:
        raise InvalidInput.for_field("query.period", f"The year {year} is out of range", "period_range")
    if match["half"]:
        half = int(match["half"])
        return _months(year, 6 * half - 5, 6 * half, text, scheme)
    if match["quarter"]:
        quarter = int(match["quarter"])
        return _months(year, 3 * quarter - 2, 3 * quarter, text, scheme)
    if match["month"]:
        month = int(match["month"])
        return _months(year, month, month, text, scheme)
    return _months(year, 1, 12, text, scheme)


def custom_period(first: date, last: date, scheme: Scheme) -> Period:
    """``from``/``to`` as given, both days included."""
    if first > last:
        raise InvalidInput.for_field("query.from", "`from` must not be after `to`", "period_order")
    if (last - first).days >= MAX_SPAN_DAYS:
        raise InvalidInput.for_field("query.to", "A period spans at most 10 years", "period_too_long")
    end = date.fromordinal(last.toordinal() + 1)
    return Period(label=f"{first.isoformat()}..{last.isoformat()}", scheme=scheme, start=first, end=end)


def choose_period(period: str | None, first: date | None, last: date | None, scheme: Scheme) -> Period:
    if period is not None:
        if first is not None or last is not None:
            raise InvalidInput.for_field(
                "query.period", "Give either `period` or `from`/`to`, not both", "period_both"
            )
        return parse_period(period, scheme)
    if first is None or last is None:
        raise InvalidInput.for_field("query.period", "Give `period`, or both `from` and `to`", "missing")
    return custom_period(first, last, scheme)


def series(first: date, last: date, interval: Interval, scheme: Scheme) -> list[Period]:
    """The months or quarters of ``scheme`` that overlap [first, last]."""
    custom_period(first, last, scheme)  # the same bounds as any other request
    step = 1 if interval is Interval.month else 3
    year, month = first.year, 1 if step == 3 else first.month
    periods: list[Period] = []
    while True:
        label = f"{year}-{month:02d}" if step == 1 else f"{year}-Q{(month + 2) // 3}"
        period = _months(year, month, month + step - 1, label, scheme)
        if period.start > last:
            return periods
        if period.end > first:
            periods.append(period)
        month += step
        if month > 12:
            year, month = year + 1, 1
