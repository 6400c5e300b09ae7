"""A period still running is judged as of now (SPEC §5, E′ = min(E, now)), with an injected clock."""

from datetime import UTC, datetime

import pytest
from fastapi import FastAPI
from httpx import AsyncClient

from tests.dossiers.conftest import received, send, step

pytestmark = pytest.mark.usefixtures("world")
QUARTER = {"period": "2023-Q3", "unit": "31"}


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


async def test_fresh_dossiers_are_not_overdue_and_old_ones_are(app: FastAPI, portal: AsyncClient) -> None:
    app.state.clock = lambda: at("2023-08-07T10:00:30+07:00")  # Monday, inside Q3
    await send(
        portal,
        # Three working days from 3 July: long past due by 7 August.
        received("OLD", "2023-07-03T09:00:00+07:00", channel="direct"),
        # Received five minutes ago, due Thursday.
        received("FRESH", "2023-08-07T09:55:00+07:00", channel="direct"),
        received("WAITING", "2023-07-04T09:00:00+07:00", channel="direct"),
        step("WAITING", "supplement_requested", "2023-07-05T09:00:00+07:00"),
    )
    first = await portal.get("/api/v1/stats/dossiers", params=QUARTER)
    body = first.json()
    assert body["period"]["as_of"] == "2023-08-07T03:00:00Z"  # to the minute
    counts = body["total"]["counts"]
    assert (counts["in_progress"], counts["in_progress_overdue"], counts["waiting_supplement"]) == (3, 1, 1)
    assert body["total"]["rates"]["on_time_766"] == 66.67  # FRESH and WAITING are on track

    # Within the same minute and with the same data: nothing new.
    same = await portal.get(
        "/api/v1/stats/dossiers", params=QUARTER, headers={"If-None-Match": first.headers["etag"]}
    )
    assert same.status_code == 304

    # Thursday evening: FRESH's due date has passed, and a poller revalidating learns it.
    app.state.clock = lambda: at("2023-08-10T18:00:00+07:00")
    later = await portal.get(
        "/api/v1/stats/dossiers", params=QUARTER, headers={"If-None-Match": first.headers["etag"]}
    )
    assert later.status_code == 200 and later.headers["etag"] != first.headers["etag"]
    assert later.json()["total"]["counts"]["in_progress_overdue"] == 2

    # The same quarter, once ended, is judged at its end — whatever the clock says.
    app.state.clock = lambda: at("2026-11-27T10:00:00+07:00")
    ended = (await portal.get("/api/v1/stats/dossiers", params=QUARTER)).json()
    assert ended["period"]["as_of"] == ended["period"]["end"]
    assert ended["total"]["counts"]["in_progress_overdue"] == 2


async def test_the_running_quarter_in_series_reports_and_766(app: FastAPI, portal: AsyncClient) -> None:
    app.state.clock = lambda: at("2023-08-07T10:00:00+07:00")
    await send(portal, received("FRESH", "2023-08-07T09:55:00+07:00", channel="direct"))
    series = (
        await portal.get(
            "/api/v1/stats/dossiers/series", params={"from": "2023-07-01", "to": "2023-09-30", "unit": "31"}
        )
    ).json()
    august = series["points"][1]
    assert (august["counts"]["in_progress"], august["counts"]["in_progress_overdue"]) == (1, 0)
    index = (await portal.get("/api/v1/stats/index-766", params=QUARTER)).json()
    progress = next(g for g in index["groups"] if g["group"] == "progress")
    assert progress["score"] == 20
    report = await portal.get("/api/v1/reports/reform", params={**QUARTER, "unit": "313"})
    assert report.status_code == 200
