"""The range of days and instants the service accepts: wide enough for any record of the past or
plan for the future, narrow enough that calendar arithmetic (a due date, a quarter's end, a
year's buckets) can never overflow."""

from datetime import UTC, date, datetime
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime

EARLIEST = date(1900, 1, 1)
LATEST = date(2200, 12, 31)


def within_range(day: date) -> date:
    if not EARLIEST <= day <= LATEST:
        raise ValueError(f"must lie between {EARLIEST} and {LATEST}")
    return day


def _in_utc_within_range(instant: datetime) -> datetime:
    try:
        in_utc = instant.astimezone(UTC)
    except OverflowError:
        # Day one or the year 9999 moved across its offset leaves the calendar: out of range too,
        # not an error of the server.
        raise ValueError(f"must lie between {EARLIEST} and {LATEST}") from None
    within_range(in_utc.date())
    return in_utc


def _moment_within_range(instant: datetime) -> datetime:
    _in_utc_within_range(instant)
    return instant


Day = Annotated[date, AfterValidator(within_range)]
"""A calendar day between 1900 and 2200."""
Moment = Annotated[AwareDatetime, AfterValidator(_moment_within_range)]
"""An instant with its UTC offset, between 1900 and 2200."""
UtcMoment = Annotated[AwareDatetime, AfterValidator(_in_utc_within_range)]
"""An instant between 1900 and 2200, in UTC (sent with any offset)."""
