"""Feedback of a period still running is judged as of now (SPEC §8: E′ = min(E, now)): an item is
`overdue` only if its answer deadline lies before E′ — in /stats/feedback and in the report."""

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient

from tests.conftest import KeyFactory
from tests.feedback.test_feedback import feedback

pytestmark = pytest.mark.usefixtures("world")
QUARTER = {"unit": "313", "period": "2023-Q3"}
# Received on Monday 7 August 2023 at 09:00; 15 working days to answer: Monday 28 August, 09:00.
FRESH = feedback(external_ref="PAKN-FRESH", received_at="2023-08-07T09:00:00+07:00")


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


@pytest.fixture
async def desk(app: FastAPI, api_key: KeyFactory) -> AsyncIterator[AsyncClient]:
    headers = await api_key("feedback:write", unit="313", name="kien-thuy-desk")
    async with AsyncClient(transport=ASGITransport(app=app), base_url="http://t", headers=headers) as http:
        yield http


async def stats(client: AsyncClient, **extra: str) -> dict[str, Any]:
    response = await client.get("/api/v1/stats/feedback", params={**QUARTER, **extra})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def sentence(client: AsyncClient) -> str:
    """The report's sentence on feedback still open: how many, and how many of them overdue."""
    response = await client.get("/api/v1/reports/reform", params={**QUARTER, "format": "markdown"})
    assert response.status_code == 200, response.text
    text = response.text
    start = text.index("đến cuối kỳ còn")
    return text[start : text.index(")", start) + 1]


async def test_an_item_received_an_hour_ago_is_not_overdue(
    app: FastAPI, desk: AsyncClient, client: AsyncClient
) -> None:
    app.state.clock = lambda: at("2023-08-07T10:00:30+07:00")  # an hour and a half later, in Q3
    created = await desk.post("/api/v1/feedback", json=FRESH)
    assert created.status_code == 201, created.text
    assert created.json()["answer_due_at"] == "2023-08-28T02:00:00Z"

    body = await stats(client)
    assert body["period"]["as_of"] == "2023-08-07T03:00:00Z"
    counts = body["total"]["counts"]
    assert (counts["received"], counts["open"], counts["overdue"]) == (1, 1, 0)
    by_channel = await stats(client, group_by="channel")
    assert [(row["key"], row["counts"]["overdue"]) for row in by_channel["rows"]] == [
        ({"channel": "portal"}, 0)
    ]
    assert await sentence(client) == "đến cuối kỳ còn 01 ý kiến đang xử lý (trong đó 00 quá hạn)"


async def test_an_item_past_its_deadline_at_now_is_overdue(
    app: FastAPI, desk: AsyncClient, client: AsyncClient
) -> None:
    app.state.clock = lambda: at("2023-08-07T10:00:00+07:00")
    assert (await desk.post("/api/v1/feedback", json=FRESH)).status_code == 201
    first = await client.get("/api/v1/reports/reform", params={**QUARTER, "format": "markdown"})

    # Still in Q3, a day after the deadline: overdue now, and a poller revalidating the report learns it.
    app.state.clock = lambda: at("2023-08-29T10:00:00+07:00")
    counts = (await stats(client))["total"]["counts"]
    assert (counts["open"], counts["overdue"]) == (1, 1)
    later = await client.get(
        "/api/v1/reports/reform",
        params={**QUARTER, "format": "markdown"},
        headers={"If-None-Match": first.headers["etag"]},
    )
    assert later.status_code == 200
    assert await sentence(client) == "đến cuối kỳ còn 01 ý kiến đang xử lý (trong đó 01 quá hạn)"


@pytest.mark.parametrize(
    ("now", "overdue"),
    [
        ("2023-08-28T09:00:59+07:00", 0),  # E′ is 09:00, the deadline itself: not before it
        ("2023-08-28T09:01:00+07:00", 1),
    ],
)
async def test_overdue_once_the_deadline_lies_before_now(
    app: FastAPI, desk: AsyncClient, client: AsyncClient, now: str, overdue: int
) -> None:
    assert (await desk.post("/api/v1/feedback", json=FRESH)).status_code == 201
    app.state.clock = lambda: at(now)
    assert (await stats(client))["total"]["counts"]["overdue"] == overdue


async def test_an_ended_quarter_is_judged_at_its_end(
    app: FastAPI, desk: AsyncClient, client: AsyncClient
) -> None:
    assert (await desk.post("/api/v1/feedback", json=FRESH)).status_code == 201
    # Received on 25 September, answer due in mid-October: still within its deadline when Q3 ends.
    late_september = feedback(external_ref="PAKN-SEPT", received_at="2023-09-25T09:00:00+07:00")
    assert (await desk.post("/api/v1/feedback", json=late_september)).status_code == 201

    for now in ("2023-10-20T10:00:00+07:00", "2026-11-27T10:00:00+07:00"):  # both past its deadline
        app.state.clock = lambda now=now: at(now)
        body = await stats(client)
        assert body["period"]["as_of"] == body["period"]["end"]
        counts = body["total"]["counts"]
        assert (counts["received"], counts["open"], counts["overdue"]) == (2, 2, 1)
        assert await sentence(client) == "đến cuối kỳ còn 02 ý kiến đang xử lý (trong đó 01 quá hạn)"
