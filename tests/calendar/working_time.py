"""The tests' yardstick for the working calendar: whether an instant lies in working time.

The service never asks this (it computes due dates and spans with app.calendar.working_time); the
tests ask it of every due date it computes. It reads only the calendar's public face — its working
days and its working periods — so that it checks the arithmetic rather than repeating it.
"""

from datetime import datetime

from app.calendar.working_time import WorkingCalendar
from app.core.timezone import VIETNAM


def is_working_time(calendar: WorkingCalendar, instant: datetime) -> bool:
    """Whether ``instant`` falls in one of the calendar's working periods, ends included (a due
    date may fall exactly at 17:00)."""
    local = instant.astimezone(VIETNAM)
    day = local.date()
    return calendar.is_working_day(day) and any(
        datetime.combine(day, start, VIETNAM) <= local <= datetime.combine(day, end, VIETNAM)
        for start, end in calendar.periods
    )
