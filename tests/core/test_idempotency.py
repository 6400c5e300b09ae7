"""Idempotency-Key: a retried POST answers what the first did and creates nothing more."""

import asyncio

import pytest
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient, Response

from tests.conftest import KeyFactory
from tests.feedback.test_feedback import feedback
from tests.proposals.test_proposals import proposal

pytestmark = pytest.mark.usefixtures("world")


async def test_concurrent_retries_create_one_record_and_get_one_answer(
    app: FastAPI, writer: AsyncClient, api_key: KeyFactory
) -> None:
    headers = await api_key("proposals:write", "feedback:write", name="retrying")
    body = proposal("simplify", code="2.000001")

    async def post(url: str, json: object, key: str) -> Response:
        async with AsyncClient(
            transport=ASGITransport(app=app), base_url="http://t", headers={**headers, "Idempotency-Key": key}
        ) as http:
            return await http.post(url, json=json)

    answers = await asyncio.gather(*(post("/api/v1/proposals", body, "create-proposal-1") for _ in range(10)))
    assert {a.status_code for a in answers} == {201}
    assert len({a.content for a in answers}) == 1
    assert sum(a.headers.get("idempotent-replayed") == "true" for a in answers) == 9
    assert len((await writer.get("/api/v1/proposals")).json()["items"]) == 1

    # The same key with another body is a mistake, not a retry.
    other = await post(
        "/api/v1/proposals", proposal("simplify", code="1.000894", level="commune"), "create-proposal-1"
    )
    assert other.status_code == 422
    assert other.json()["errors"][0]["type"] == "idempotency_key_reused"
    # Another key is another request.
    fresh = await post("/api/v1/feedback", feedback(external_ref="PAKN-9", unit_code="11680"), "feedback-9")
    again = await post("/api/v1/feedback", feedback(external_ref="PAKN-9", unit_code="11680"), "feedback-9")
    assert fresh.status_code == again.status_code == 201 and fresh.json() == again.json()
    # Another client's key of the same name is its own.
    other_client = await api_key("proposals:write", name="other")
    async with AsyncClient(
        transport=ASGITransport(app=app),
        base_url="http://t",
        headers={**other_client, "Idempotency-Key": "feedback-9"},
    ) as http:
        assert (
            await http.post("/api/v1/proposals", json=proposal("abolish", code="2.000001"))
        ).status_code == 201
    bad = await post("/api/v1/proposals", body, "with space")
    assert bad.status_code == 422
