"""The working calendar of the running service, for routes that compute due dates."""

from typing import Annotated

from fastapi import Depends, Request

from app.calendar.working_time import WorkingCalendar


async def working_calendar(request: Request) -> WorkingCalendar:
    calendar: WorkingCalendar = request.app.state.calendar
    return calendar


CalendarDep = Annotated[WorkingCalendar, Depends(working_calendar)]
