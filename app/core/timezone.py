"""Vietnam's clock: all calendar logic runs in Asia/Ho_Chi_Minh (UTC+7, no DST)."""

from datetime import date, datetime
from zoneinfo import ZoneInfo

from app.core.db import utcnow

VIETNAM = ZoneInfo("Asia/Ho_Chi_Minh")


def today_in_vietnam() -> date:
    return utcnow().astimezone(VIETNAM).date()


def local(instant: datetime) -> datetime:
    return instant.astimezone(VIETNAM)
