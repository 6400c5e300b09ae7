"""A change of working calendar moves due dates and figures, with no event sent (SPEC §3).

Procedure 1.000894 takes 3 working days (8-hour days). The change adds Wednesday 2023-08-09 as a
day off; every expectation below is counted by hand on the two calendars.
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import date
from typing import Any

import pytest
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient
from sqlalchemy import delete, update

from app.calendar.working_time import (
    CalendarChange,
    WorkingCalendar,
    calendar_change,
    calendar_description,
)
from app.core.config import Settings
from app.dossiers.counters import rebuild_counters
from app.dossiers.models import CalendarInForce, Dossier, DossierEvent
from app.main import create_app
from app.stats.calendar_in_force import follow_calendar
from tests.conftest import TEST_WAITS, KeyFactory, assert_counters_equal_a_rebuild
from tests.dossiers.conftest import dossier, received, send, step
from tests.feedback.test_feedback import feedback

pytestmark = pytest.mark.usefixtures("world")

DAY_OFF = date(2023, 8, 9)
MONDAY_0900 = "2023-08-07T09:00:00+07:00"


def histories() -> list[dict[str, Any]]:
    return [
        # OPEN: no event after its reception; due Thu 08-10 09:00, Fri 08-11 09:00 with Wednesday off.
        received("OPEN", MONDAY_0900, channel="direct"),
        # WAITING: its pause, still open, spans the new day off.
        received("WAITING", MONDAY_0900, channel="direct"),
        step("WAITING", "supplement_requested", "2023-08-08T09:00:00+07:00"),
        # RESUMED: its pause Tue 09:00 → Mon 09:00 spans the day off; the due date is Wed 08-16 09:00
        # on both calendars (the day off lengthens the clock as much as it shortens the pause).
        received("RESUMED", MONDAY_0900, channel="direct"),
        step("RESUMED", "supplement_requested", "2023-08-08T09:00:00+07:00"),
        step("RESUMED", "supplement_received", "2023-08-14T09:00:00+07:00"),
    ]


@asynccontextmanager
async def restarted(database_url: str, **calendar: Any) -> AsyncIterator[tuple[FastAPI, AsyncClient]]:
    """The service started again on the same database with another calendar."""
    application = create_app(Settings(database_url=database_url, **TEST_WAITS, **calendar))
    async with (
        application.router.lifespan_context(application),
        AsyncClient(transport=ASGITransport(app=application), base_url="http://t") as http,
    ):
        yield application, http


async def counts(http: AsyncClient, start: str, end: str) -> dict[str, int]:
    response = await http.get("/api/v1/stats/dossiers", params={"from": start, "to": end})
    assert response.status_code == 200, response.text
    return dict(response.json()["total"]["counts"])


def figures(found: dict[str, int]) -> tuple[int, int, int]:
    return found["in_progress"], found["waiting_supplement"], found["in_progress_overdue"]


async def test_a_day_off_added_moves_due_dates_and_counters_with_no_event_sent(
    app: FastAPI, portal: AsyncClient, database_url: str
) -> None:
    await send(portal, *histories())
    # On the calendar the events came in on: OPEN is overdue by the end of Thursday.
    assert (await dossier(portal, "OPEN"))["due_at"] == "2023-08-10T02:00:00Z"
    assert figures(await counts(portal, "2023-08-01", "2023-08-10")) == (3, 2, 1)

    async with restarted(database_url, extra_days_off=[DAY_OFF]) as (moved, http):
        http.headers.update(portal.headers)
        open_, waiting, resumed = [await dossier(http, code) for code in ("OPEN", "WAITING", "RESUMED")]
        assert (open_["due_at"], open_["original_due_at"]) == ("2023-08-11T02:00:00Z",) * 2
        assert (waiting["status"], waiting["due_at"]) == (5, "2023-08-11T02:00:00Z")
        assert (resumed["original_due_at"], resumed["due_at"]) == (
            "2023-08-11T02:00:00Z",
            "2023-08-16T02:00:00Z",
        )
        # To the end of Thursday: OPEN is not due yet; the other two wait for papers.
        assert figures(await counts(http, "2023-08-01", "2023-08-10")) == (3, 2, 0)
        # To the end of Tuesday 08-15: OPEN is overdue, WAITING waits, RESUMED is due on Wednesday
        # (a rebuild that kept the old original due date but counted the pause on the new calendar
        # would find it due on Tuesday, and overdue).
        assert figures(await counts(http, "2023-08-01", "2023-08-15")) == (3, 1, 1)
        await assert_counters_equal_a_rebuild(moved)

        # The pause of WAITING ends later: counted on the new calendar from the new due date.
        await send(http, step("WAITING", "supplement_received", "2023-08-14T09:00:00+07:00"))
        assert (await dossier(http, "WAITING"))["due_at"] == "2023-08-16T02:00:00Z"
        await assert_counters_equal_a_rebuild(moved)

    # Started again on the same calendar: nothing to do.
    assert await follow_calendar(moved.state.settings, moved.state.calendar) is None

    # And back to the first calendar: the first figures again.
    async with restarted(database_url) as (back, http):
        http.headers.update(portal.headers)
        assert (await dossier(http, "OPEN"))["due_at"] == "2023-08-10T02:00:00Z"
        assert (await dossier(http, "WAITING"))["due_at"] == "2023-08-16T02:00:00Z"
        assert figures(await counts(http, "2023-08-01", "2023-08-10")) == (3, 2, 1)
        await assert_counters_equal_a_rebuild(back)


async def test_a_due_date_the_portal_sent_stays_as_sent(
    app: FastAPI, portal: AsyncClient, database_url: str
) -> None:
    await send(portal, received("SENT", MONDAY_0900, due_at="2023-08-10T15:00:00+07:00"))
    async with restarted(database_url, extra_days_off=[DAY_OFF]) as (_moved, http):
        http.headers.update(portal.headers)
        assert (await dossier(http, "SENT"))["due_at"] == "2023-08-10T08:00:00Z"


def test_the_days_two_calendars_differ_on() -> None:
    plain = calendar_description(WorkingCalendar())
    one_off = calendar_description(WorkingCalendar(extra_days_off=[DAY_OFF]))
    swapped = calendar_description(
        WorkingCalendar(extra_days_off=[date(2023, 8, 2)], extra_working_days=[date(2023, 9, 9)])
    )
    assert calendar_change(plain, plain).none
    assert calendar_change(plain, one_off) == CalendarChange(everywhere=False, first=DAY_OFF, last=DAY_OFF)
    assert calendar_change(one_off, swapped) == CalendarChange(
        everywhere=False, first=date(2023, 8, 2), last=date(2023, 9, 9)
    )
    shorter = calendar_description(WorkingCalendar("08:00-12:00,13:00-16:30"))
    assert calendar_change(plain, shorter) == CalendarChange(everywhere=True)
    assert calendar_change({**plain, "holidays": "0.1"}, plain) == CalendarChange(everywhere=True)


async def test_feedback_deadlines_follow_the_calendar(
    app: FastAPI, api_key: KeyFactory, database_url: str
) -> None:
    headers = await api_key("feedback:write", name="desk")
    async with AsyncClient(transport=ASGITransport(app=app), base_url="http://t", headers=headers) as desk:
        created = await desk.post(
            "/api/v1/feedback", json=feedback(external_ref="PAKN-CAL", received_at=MONDAY_0900)
        )
        assert created.status_code == 201, created.text
        # 15 working days from Monday 7 August 09:00: Monday 28 August 09:00.
        assert created.json()["answer_due_at"] == "2023-08-28T02:00:00Z"
    async with restarted(database_url, extra_days_off=[DAY_OFF]) as (_moved, http):
        http.headers.update(headers)
        found = await http.get(f"/api/v1/feedback/{created.json()['id']}")
        assert found.status_code == 200, found.text
        assert (found.json()["answer_due_at"], found.json()["reject_due_at"]) == (
            "2023-08-29T02:00:00Z",
            "2023-08-10T02:00:00Z",  # 2 working days: Thursday, the Wednesday off skipped
        )


async def test_a_further_request_stored_pending_before_it_counted_is_replayed_once(
    app: FastAPI, portal: AsyncClient, database_url: str
) -> None:
    """Data stored by an earlier version kept a request made while waiting as pending (it did not
    count): the first start with this version replays such dossiers under SPEC §3."""
    second = step("OLD", "supplement_requested", "2023-08-09T09:00:00+07:00")
    await send(
        portal,
        received("OLD", MONDAY_0900, channel="direct"),
        step("OLD", "supplement_requested", "2023-08-08T09:00:00+07:00"),
        second,
        step("OLD", "supplement_received", "2023-08-11T09:00:00+07:00"),
        step("OLD", "resolved", "2023-08-14T09:00:00+07:00"),
    )
    async with app.state.sessionmaker() as session, session.begin():  # as the earlier version left it
        await session.execute(
            update(DossierEvent)
            .where(DossierEvent.event_id == second["event_id"])
            .values(status="pending", reason="Dossier 'OLD' is already waiting for a supplement")
        )
        await session.execute(
            update(Dossier).where(Dossier.code == "OLD").values(supplement_count=1, on_time=True, early=True)
        )
        await rebuild_counters(session, app.state.calendar)
        await session.execute(delete(CalendarInForce))
    async with restarted(database_url) as (again, http):
        http.headers.update(portal.headers)
        body = await dossier(http, "OLD")
        assert (body["supplement_count"], body["on_time"]) == (2, False)
        assert [e["status"] for e in body["timeline"]] == ["applied"] * 5
        quarter = await http.get("/api/v1/stats/dossiers", params={"period": "2023-Q3"})
        assert quarter.json()["total"]["counts"]["resolved_late"] == 1
        await assert_counters_equal_a_rebuild(again)
