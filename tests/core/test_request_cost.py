"""The work of one request is bounded (issue 27, item 7): repeats of one dossier or one event in a
request, supplement requests per portal record, and the statistics series, whose cost no longer
grows with its number of points times the number of units.

Asserted on limits, answers and statement counts, never on seconds (speed belongs to bench/)."""

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from httpx import AsyncClient

from app.core.pagination import MAX_LIMIT
from app.dossiers.ingestion.events import MAX_SAME_DOSSIER as MAX_EVENTS_OF_A_DOSSIER
from app.dossiers.ingestion.events import MAX_SAME_EVENT_ID
from app.dossiers.ingestion.records import MAX_HISTORY_PARTS, MAX_SUPPLEMENTS
from app.dossiers.ingestion.records import MAX_SAME_DOSSIER as MAX_RECORDS_OF_A_DOSSIER
from tests.core.test_list_statements import counted_statements
from tests.dossiers.conftest import received, send, step
from tests.dossiers.test_timeline_paging import walk

SYNC = "/api/v1/sync/dvcqg"
SERIES = "/api/v1/stats/dossiers/series"
STATS = "/api/v1/stats/dossiers"

pytestmark = pytest.mark.usefixtures("world")


def _problem_fields(result: dict[str, Any]) -> list[tuple[str, str]]:
    assert result["status"] == "error", result
    assert result["problem"]["status"] == 422, result
    return [(error["field"], error["type"]) for error in result["problem"]["errors"]]


async def _dossier(client: AsyncClient, code: str) -> dict[str, Any]:
    response = await client.get(f"/api/v1/dossiers/{code}")
    assert response.status_code == 200, response.text
    return dict(response.json())


# --- Events: one event id, one dossier ---------------------------------------------------------


async def test_revisions_of_one_event_beyond_the_limit_fail_themselves_only(portal: AsyncClient) -> None:
    revisions = [
        received("REV", f"2023-08-07T08:{number:02d}:00+07:00", revision=number + 1)
        for number in range(MAX_SAME_EVENT_ID + 2)
    ]
    other = received("REV-OTHER", "2023-08-07T09:00:00+07:00")
    results = await send(portal, *revisions, other)

    assert [r["status"] for r in results[:MAX_SAME_EVENT_ID]] == ["created"] + ["updated"] * (
        MAX_SAME_EVENT_ID - 1
    )
    for beyond in results[MAX_SAME_EVENT_ID:-1]:
        assert _problem_fields(beyond) == [("event_id", "too_many_in_request")]
        assert str(MAX_SAME_EVENT_ID) in beyond["problem"]["errors"][0]["message"]
    assert results[-1]["status"] == "created"
    # The last revision judged is the one stored: nothing of those beyond the limit.
    (reception,) = (await _dossier(portal, "REV"))["timeline"]
    assert reception["revision"] == MAX_SAME_EVENT_ID
    assert reception["occurred_at"] == f"2023-08-07T01:{MAX_SAME_EVENT_ID - 1:02d}:00Z"

    # In a request of its own, the next revision is taken as usual.
    (again,) = await send(portal, revisions[MAX_SAME_EVENT_ID])
    assert again["status"] == "updated"


async def test_events_of_one_dossier_beyond_the_limit_fail_themselves_only(portal: AsyncClient) -> None:
    start = datetime(2023, 8, 7, 9, tzinfo=UTC)
    events = [received("MANY", "2023-08-07T08:00:00+07:00", channel="direct")]
    for number in range(MAX_EVENTS_OF_A_DOSSIER // 2 + 1):
        asked = start + timedelta(minutes=10 * number)
        events.append(step("MANY", "supplement_requested", asked.isoformat()))
        events.append(step("MANY", "supplement_received", (asked + timedelta(minutes=5)).isoformat()))
    beyond = len(events) - MAX_EVENTS_OF_A_DOSSIER
    assert beyond >= 1
    results = await send(portal, *events, received("MANY-OTHER", "2023-08-07T09:00:00+07:00"))

    assert {r["status"] for r in results[:MAX_EVENTS_OF_A_DOSSIER]} == {"created"}
    for result in results[MAX_EVENTS_OF_A_DOSSIER:-1]:
        assert _problem_fields(result) == [("dossier_code", "too_many_in_request")]
    assert results[-1]["status"] == "created"
    assert len(await walk(portal, "MANY", MAX_EVENTS_OF_A_DOSSIER)) == MAX_EVENTS_OF_A_DOSSIER


# --- DVCQG records: one MaHoSo, supplement requests per record -----------------------------------


def _stamp(at: datetime) -> str:
    return at.strftime("%Y%m%d%H%M%S")


def _record(code: str, supplements: int, *, answered_after_hours: int = 3) -> dict[str, Any]:
    """A dossier received on 7 August 2023 and still processing, after ``supplements`` requests for
    papers, each answered ``answered_after_hours`` later."""
    at = datetime(2023, 8, 7, 8)
    requests = []
    for number in range(supplements):
        asked = at + timedelta(hours=1)
        at = asked + timedelta(hours=answered_after_hours)
        requests.append(
            {"HoSoBoSungId": str(number + 1), "NgayBoSung": _stamp(asked), "NgayTiepNhanBoSung": _stamp(at)}
        )
    return {
        "MaHoSo": code,
        "MaTTHC": "1.000894",
        "DonViXuLy": "11680",
        "KenhThucHien": 1,
        "NgayTiepNhan": "20230807080000",
        "TrangThaiHoSo": 4,
        "DanhSachHoSoBoSung": requests,
    }


async def _sync(client: AsyncClient, *records: dict[str, Any]) -> list[dict[str, Any]]:
    response = await client.post(SYNC, json={"service": "DongBoHoSoMC", "data": list(records)})
    assert response.status_code == 200, response.text
    return list(response.json()["results"])


async def test_records_of_one_dossier_beyond_the_limit_fail_themselves_only(portal: AsyncClient) -> None:
    states = [_record("REC", 1, answered_after_hours=1 + n) for n in range(MAX_RECORDS_OF_A_DOSSIER + 1)]
    results = await _sync(portal, *states, _record("REC-OTHER", 0))

    assert [r["status"] for r in results[:MAX_RECORDS_OF_A_DOSSIER]] == ["created"] + ["updated"] * (
        MAX_RECORDS_OF_A_DOSSIER - 1
    )
    assert _problem_fields(results[MAX_RECORDS_OF_A_DOSSIER]) == [("MaHoSo", "too_many_in_request")]
    assert results[MAX_RECORDS_OF_A_DOSSIER]["MaHoSo"] == "REC"
    assert results[-1]["status"] == "created"
    # The dossier is the last record judged: its papers came back after 20 hours, not 21.
    timeline = (await _dossier(portal, "REC"))["timeline"]
    back = next(entry for entry in timeline if entry["type"] == "supplement_received")
    assert back["occurred_at"] == f"2023-08-07T{2 + MAX_RECORDS_OF_A_DOSSIER:02d}:00:00Z"


async def test_a_record_with_too_many_supplement_requests_is_its_own_422(portal: AsyncClient) -> None:
    results = await _sync(
        portal, _record("SUP-MAX", MAX_SUPPLEMENTS), _record("SUP-OVER", MAX_SUPPLEMENTS + 1)
    )

    assert results[0]["status"] == "created"
    assert _problem_fields(results[1]) == [("DanhSachHoSoBoSung", "too_long")]
    assert str(MAX_SUPPLEMENTS) in results[1]["problem"]["errors"][0]["message"]
    assert results[1]["MaHoSo"] == "SUP-OVER"
    assert (await portal.get("/api/v1/dossiers/SUP-OVER")).status_code == 404
    assert len(await walk(portal, "SUP-MAX", MAX_LIMIT)) == 2 + 2 * MAX_SUPPLEMENTS


async def test_records_past_the_requests_history_budget_fail_themselves_only(portal: AsyncClient) -> None:
    heavy = 4 + 2 * MAX_SUPPLEMENTS  # the parts a record with the most supplement requests may hold
    fitting = MAX_HISTORY_PARTS // heavy
    records = [_record(f"BUDGET-{n}", MAX_SUPPLEMENTS) for n in range(fitting + 2)]
    light = _record("BUDGET-LIGHT", 0)
    # Refused for what it says, a record takes nothing of the budget.
    invalid = {**_record("BUDGET-INVALID", MAX_SUPPLEMENTS), "KenhThucHien": "by pigeon"}
    assert fitting * heavy + 4 <= MAX_HISTORY_PARTS < (fitting + 1) * heavy
    invalid_result, *results = await _sync(portal, invalid, *records, light)

    assert [field for field, _ in _problem_fields(invalid_result)] == ["KenhThucHien"]
    assert [r["status"] for r in results[:fitting]] == ["created"] * fitting
    for beyond in results[fitting:-1]:
        assert _problem_fields(beyond) == [("DanhSachHoSoBoSung", "request_budget")]
        assert str(MAX_HISTORY_PARTS) in beyond["problem"]["errors"][0]["message"]
    # What is left of the budget still takes a record that fits in it.
    assert results[-1]["status"] == "created"
    assert (await portal.get(f"/api/v1/dossiers/BUDGET-{fitting}")).status_code == 404

    # In a request of its own, a refused record is taken as usual.
    (again,) = await _sync(portal, records[fitting])
    assert again["status"] == "created"


# --- The statistics series ---------------------------------------------------------------------


@pytest.fixture
async def two_years(app: FastAPI, portal: AsyncClient) -> None:
    """Dossiers received, paused, finished and still open over 2023–2024, on both sides of the 15th
    (the report scheme's cut-off), in the province's communes and a district; judged on 10 June 2024."""
    app.state.clock = lambda: datetime(2024, 6, 10, 10, tzinfo=UTC)
    events: list[dict[str, Any]] = []
    for number in range(36):
        day = date(2023, 1, 3) + timedelta(days=19 * number + number % 5)
        code = f"TY-{number}"
        unit, procedure = ("313", "2.000001") if number % 4 == 0 else ("11680", "1.000894")
        at = f"{day.isoformat()}T09:00:00+07:00"
        events.append(received(code, at, unit=unit, procedure=procedure, channel="direct"))
        if number % 3 == 0:
            events.append(step(code, "supplement_requested", f"{day.isoformat()}T15:00:00+07:00"))
            if number % 2 == 0:
                back = day + timedelta(days=number % 4 + 1)
                events.append(step(code, "supplement_received", f"{back.isoformat()}T10:00:00+07:00"))
        if number % 5 != 1 and number % 6 != 0:
            done = day + timedelta(days=number % 9 + 1)
            events.append(step(code, "resolved", f"{done.isoformat()}T16:00:00+07:00"))
    results = await send(portal, *events)
    assert {r["status"] for r in results} == {"created"}, results


def _day_before(text: str) -> str:
    return (datetime.fromisoformat(text).date() - timedelta(days=1)).isoformat()


@pytest.mark.usefixtures("two_years")
@pytest.mark.parametrize(
    "params",
    [
        {"from": "2023-01-01", "to": "2024-12-31", "interval": "month"},
        {"from": "2023-01-20", "to": "2024-11-02", "interval": "month", "scheme": "report", "unit": "31"},
        {"from": "2023-02-01", "to": "2024-09-30", "interval": "quarter", "scheme": "report"},
        {"from": "2023-01-01", "to": "2024-12-31", "interval": "quarter", "unit": "313"},
    ],
)
async def test_each_point_of_a_series_is_that_periods_statistics(
    client: AsyncClient, params: dict[str, str]
) -> None:
    response = await client.get(SERIES, params=params)
    assert response.status_code == 200, response.text
    points = response.json()["points"]
    assert sum(point["counts"]["received"] for point in points) > 0
    assert any(point["counts"]["due_in_period"] for point in points)
    assert any(point["counts"]["waiting_supplement"] for point in points)
    for point in points:
        period = point["period"]
        alone = await client.get(
            STATS,
            params={
                "from": period["start"][:10],
                "to": _day_before(period["end"]),
                "scheme": params.get("scheme", "calendar"),
                **({"unit": params["unit"]} if "unit" in params else {}),
            },
        )
        assert alone.status_code == 200, alone.text
        total = alone.json()["total"]
        assert (period["label"], point["counts"], point["rates"]) == (
            period["label"],
            total["counts"],
            total["rates"],
        )
        assert period["as_of"] == alone.json()["period"]["as_of"]


@pytest.mark.usefixtures("two_years")
async def test_a_series_costs_the_same_statements_whatever_its_length(
    app: FastAPI, client: AsyncClient
) -> None:
    """Ten years by month, for every unit (anonymous), read in as many statements as one month:
    a statement per point once made this 4 s of CPU and six at once stalled the service."""
    counted = []
    for params in (
        {"from": "2024-05-01", "to": "2024-05-31"},
        {"from": "2014-06-01", "to": "2024-05-31"},
        {"from": "2014-06-20", "to": "2024-05-10", "scheme": "report"},  # days 1–14 read too
        {"from": "2015-01-01", "to": "2024-12-31"},  # running on 10 June 2024: the open dossiers too
    ):
        with counted_statements(app) as statements:
            response = await client.get(SERIES, params=params)
        assert response.status_code == 200, response.text
        counted.append(len(statements))
    assert counted[0] == counted[1] and counted[2] == counted[3] == counted[0] + 1 and counted[0] < 10


async def test_a_series_spans_at_most_ten_years(client: AsyncClient) -> None:
    """At most 122 monthly points per request (the span of any statistics request)."""
    longest = await client.get(SERIES, params={"from": "2015-01-01", "to": "2024-12-31"})
    assert longest.status_code == 200 and len(longest.json()["points"]) == 120
    response = await client.get(SERIES, params={"from": "2014-01-01", "to": "2024-12-31"})
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert [error["field"] for error in response.json()["errors"]] == ["query.to"]
