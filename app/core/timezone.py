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


def start_of_day(day: date) -> datetime:
    """The instant a Vietnamese day begins (local midnight)."""
    return datetime.combine(day, time.min, VIETNAM)
