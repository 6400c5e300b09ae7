"""Vietnam's clock: all calendar logic runs in Asia/Ho_Chi_Minh (UTC+7, no DST)."""

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

VIETNAM = ZoneInfo("Asia/Ho_Chi_Minh")

# A sending system's clock may run a little ahead of ours; further ahead, a moment is a mistake.
FUTURE_TOLERANCE = timedelta(minutes=5)


def utcnow() -> datetime:
    return datetime.now(UTC)


def today_in_vietnam() -> date:
    return utcnow().astimezone(VIETNAM).date()


def local(instant: datetime) -> datetime:
    return instant.astimezone(VIETNAM)


def local_day(instant: datetime) -> date:
    """The Vietnamese day of an instant, as ``local(instant).date()``.

    Vietnam has kept UTC+7 since 13 June 1975, with no daylight saving: from then on the day is
    the UTC instant shifted by seven hours, a tenth of the zone's conversion, which counting marks
    by day (a bulk import, a rebuild) makes millions of times. Earlier instants (the zone's
    history had +8, +9 and local mean time) take the zone's conversion. Should the time zone data
    ever give Vietnam another offset, tests/core/test_timezone.py fails."""
    if instant >= _FIXED_OFFSET_SINCE:
        return (instant.astimezone(UTC) + _FIXED_OFFSET).date()
    return local(instant).date()


_FIXED_OFFSET = timedelta(hours=7)
_FIXED_OFFSET_SINCE = datetime(1975, 6, 12, 17, tzinfo=UTC)


def start_of_day(day: date) -> datetime:
    """The instant a Vietnamese day begins (local midnight)."""
    return datetime.combine(day, time.min, VIETNAM)
