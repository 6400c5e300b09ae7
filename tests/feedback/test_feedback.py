"""Feedback (PAKN) with its deadlines, satisfaction ratings, feedback statistics and the 766 scorecard."""

from collections.abc import AsyncIterator
from typing import Any

import pytest
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient

from tests.conftest import KeyFactory
from tests.dossiers.conftest import portal, received, send, step, world  # noqa: F401

pytestmark = pytest.mark.usefixtures("world")
FEEDBACK = "/api/v1/feedback"


@pytest.fixture
async def desk(app: FastAPI, api_key: KeyFactory) -> AsyncIterator[AsyncClient]:
    headers = await api_key("feedback:write", unit="313", name="kien-thuy-desk")
    async with AsyncClient(transport=ASGITransport(app=app), base_url="http://t", headers=headers) as http:
        yield http


def feedback(**extra: Any) -> dict[str, Any]:
    return {
        "external_ref": "PAKN-1",
        "channel": "portal",
        "subject": "procedure",
        "procedure_code": "1.000894",
        "unit_code": "11680",
        "content": "Hồ sơ trả chậm",
        "contact": "0912 345 678",
        "received_at": "2023-08-01T09:00:00+07:00",
        **extra,
    }


async def test_feedback_deadlines_and_workflow(desk: AsyncClient) -> None:
    created = await desk.post(FEEDBACK, json=feedback())
    assert created.status_code == 201
    body = created.json()
    assert body["state"] == "received"
    assert body["reject_due_at"] == "2023-08-03T02:00:00Z"  # 2 working days
    assert body["info_due_at"] == "2023-08-08T02:00:00Z"  # 5 working days
    assert body["answer_due_at"] == "2023-08-22T02:00:00Z"  # 15 working days
    assert body["overdue"] is True  # in 2026, never answered
    number = body["id"]

    async def move(to: str, at: str) -> Any:
        return await desk.post(f"{FEEDBACK}/{number}/transitions", json={"to": to, "occurred_at": at})

    assert (await move("published", "2023-08-02T09:00:00+07:00")).status_code == 409
    assert (await move("processing", "2023-08-02T09:00:00+07:00")).status_code == 200
    answered = (await move("answered", "2023-08-25T09:00:00+07:00")).json()
    assert answered["transitions"][-1]["within_deadline"] is False
    assert answered["publish_due_at"] == "2023-08-29T02:00:00Z"
    published = (await move("published", "2023-08-28T09:00:00+07:00")).json()
    assert (published["state"], published["overdue"], published["transitions"][-1]["within_deadline"]) == (
        "published",
        False,
        True,
    )
    assert (await move("rejected", "2023-08-29T09:00:00+07:00")).status_code == 409


async def test_external_reference_is_idempotent(desk: AsyncClient) -> None:
    first = await desk.post(FEEDBACK, json=feedback())
    again = await desk.post(FEEDBACK, json=feedback())
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"]
    other = await desk.post(FEEDBACK, json=feedback(content="Khác"))
    assert other.status_code == 422
    assert len((await desk.get(FEEDBACK)).json()["items"]) == 1


@pytest.mark.parametrize(
    "extra",
    [
        {"procedure_code": "9.999999"},
        {"unit_code": "99999"},
        {"subject": "procedure", "procedure_code": None},
        {"subject": "officer"},
        {"channel": "fax"},
        {"received_at": "2023-08-01T09:00:00"},
    ],
)
async def test_bad_feedback_is_422(desk: AsyncClient, extra: dict[str, Any]) -> None:
    assert (await desk.post(FEEDBACK, json=feedback(**extra))).status_code == 422
    assert (await desk.get(FEEDBACK)).json()["items"] == []


async def test_feedback_needs_its_scope_and_binding(desk: AsyncClient, client: AsyncClient) -> None:
    assert (await client.post(FEEDBACK, json=feedback())).status_code == 401
    assert (await desk.post(FEEDBACK, json=feedback(unit_code="11737"))).status_code == 403


async def test_ratings(portal: AsyncClient, client: AsyncClient) -> None:  # noqa: F811
    await send(
        portal,
        received("R-1", "2023-08-07T09:00:00+07:00", lookup_secret="123456"),
        received("R-2", "2023-08-07T09:00:00+07:00", lookup_secret="654321"),
        step("R-1", "resolved", "2023-08-08T09:00:00+07:00"),
    )
    url = "/api/v1/dossiers/R-1/rating"
    assert (await client.post(url, json={"level": "satisfied", "secret": "000000"})).status_code == 404
    assert (await client.post(url, json={"level": "delighted", "secret": "123456"})).status_code == 422
    rated = await client.post(url, json={"level": "satisfied", "secret": "123456", "comment": "Nhanh"})
    assert rated.status_code == 201 and rated.json()["level"] == "satisfied"
    assert (await client.post(url, json={"level": "neutral", "secret": "123456"})).status_code == 409
    unfinished = await client.post(
        "/api/v1/dossiers/R-2/rating", json={"level": "neutral", "secret": "654321"}
    )
    assert unfinished.status_code == 409
    # A one-stop system may record the rating given at its desk.
    await send(portal, step("R-2", "resolved", "2023-08-09T09:00:00+07:00"))
    by_desk = await portal.post("/api/v1/dossiers/R-2/rating", json={"level": "unsatisfied"})
    assert by_desk.status_code == 201


async def test_no_feedback_in_three_months(client: AsyncClient) -> None:
    body = (await client.get("/api/v1/stats/feedback", params={"unit": "313", "period": "2023-Q3"})).json()
    assert body["total"]["counts"] == {
        "received": 0,
        "answered_on_time": 0,
        "answered_late": 0,
        "rejected": 0,
        "open": 0,
        "overdue": 0,
    }
    assert body["satisfaction"]["ratings"] == 0 and body["satisfaction"]["satisfied_share"] is None


async def test_feedback_statistics(desk: AsyncClient, client: AsyncClient) -> None:
    await desk.post(FEEDBACK, json=feedback())
    second = (await desk.post(FEEDBACK, json=feedback(external_ref="PAKN-2", channel="hotline"))).json()
    await desk.post(
        f"{FEEDBACK}/{second['id']}/transitions",
        json={"to": "answered", "occurred_at": "2023-08-10T09:00:00+07:00"},
    )
    body = (
        await client.get(
            "/api/v1/stats/feedback", params={"unit": "313", "period": "2023-Q3", "group_by": "channel"}
        )
    ).json()
    assert body["total"]["counts"] == {
        "received": 2,
        "answered_on_time": 1,
        "answered_late": 0,
        "rejected": 0,
        "open": 1,
        "overdue": 1,
    }
    assert {r["key"]["channel"]: r["counts"]["received"] for r in body["rows"]} == {"hotline": 1, "portal": 1}


async def test_index_766_formulas_on_hand_computed_data(portal: AsyncClient, client: AsyncClient) -> None:  # noqa: F811
    await send(
        portal,
        received(
            "I-1",
            "2023-07-03T09:00:00+07:00",
            fee_payable=True,
            paid_online=True,
            digitized=True,
            lookup_secret="1111",
        ),
        received("I-2", "2023-07-03T09:00:00+07:00", fee_payable=True, digitized=True, lookup_secret="2222"),
        received("I-3", "2023-07-03T09:00:00+07:00", channel="direct", digitized=True),
        received("I-4", "2023-09-28T09:00:00+07:00", channel="direct"),
        step("I-1", "resolved", "2023-07-04T09:00:00+07:00", e_result=True),
        step("I-2", "resolved", "2023-07-05T09:00:00+07:00"),
        step("I-3", "resolved", "2023-08-30T09:00:00+07:00"),
    )
    await client.post("/api/v1/dossiers/I-1/rating", json={"level": "very_satisfied", "secret": "1111"})
    await client.post("/api/v1/dossiers/I-2/rating", json={"level": "very_unsatisfied", "secret": "2222"})
    # The ratings are given today, so the period runs from the dossiers to today.
    response = await client.get(
        "/api/v1/stats/index-766", params={"unit": "313", "from": "2023-07-01", "to": "2026-12-31"}
    )
    assert response.status_code == 200
    body = response.json()
    groups = {g["group"]: g for g in body["groups"]}
    # Received 4; online with full service 2 (I-1, I-2); fee payable 2, paid online 1; digitized 3;
    # resolved 3, late 1 (I-3, due 6 July); e_result 1; I-4 still open and overdue at the end.
    assert groups["progress"]["inputs"] == {"on_time_766": 2, "received": 4}  # 2 on time + 0 on track
    assert groups["progress"]["score"] == 10.0  # 20 × 2 / 4
    assert groups["online_service"]["score"] == 12.0  # 2/4 = 50 %, the threshold
    assert groups["online_payment"]["score"] == 10.0  # 1/2 = 50 %
    assert groups["digitisation"]["score"] == 11.92  # (3/4 + 1/3) / 2 × 22
    # No feedback: a full 6 + 6; dossiers satisfied = 4 received − 1 late − 1 rated unsatisfied = 2,
    # r = 0.5, min(6, 6 × 0.5 / 0.9) = 3.33 (half up).
    assert groups["satisfaction"]["inputs"]["dossiers_satisfied"] == 2
    assert groups["satisfaction"]["inputs"]["parts"] == [6.0, 6.0, 3.33]
    assert groups["satisfaction"]["score"] == 15.33
    assert groups["publicity"]["computable"] is False and groups["publicity"]["reason"]
    assert body["total"] == {"score": 59.25, "max_computable": 82, "max": 100}
