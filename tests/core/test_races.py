"""N writers racing on one row: exactly one wins, the others get 412/409, never 500 (both backends)."""

import asyncio
from collections import Counter
from typing import Any

import pytest
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient, Response

from tests.conftest import KeyFactory
from tests.feedback.test_feedback import feedback
from tests.proposals.test_proposals import procedure, proposal

pytestmark = pytest.mark.usefixtures("world")
RACERS = 20
RETRIES = 20


async def race(
    app: FastAPI,
    headers: dict[str, str],
    method: str,
    url: str,
    bodies: list[Any],
    if_match: str | None = None,
) -> Counter[int]:
    """Send the requests at once, each on a client of its own; count the answers by status. A 503
    (no pooled connection in time: CI's two cores are shared) is sent again, as a client does: it
    changed nothing, and the race is that of the first sending."""

    async def one(body: Any) -> Response:
        async with AsyncClient(
            transport=ASGITransport(app=app), base_url="http://t", headers=headers
        ) as http:
            for _ in range(RETRIES):
                answer = await http.request(
                    method, url, json=body, headers={"If-Match": if_match} if if_match else {}
                )
                if answer.status_code != 503:
                    break
                await asyncio.sleep(0.05)
            return answer

    answers = await asyncio.gather(*(one(body) for body in bodies))
    assert all(
        a.headers["content-type"].startswith(("application/json", "application/problem+json"))
        for a in answers
    )
    return Counter(a.status_code for a in answers)


@pytest.fixture
async def admin_headers(api_key: KeyFactory) -> dict[str, str]:
    return await api_key(
        "units:write",
        "catalogue:write",
        "proposals:write",
        "proposals:decide",
        "feedback:write",
        name="racer",
    )


async def test_one_if_match_wins_a_unit_and_a_sector(
    app: FastAPI, writer: AsyncClient, admin_headers: dict[str, str]
) -> None:
    etag = (await writer.get("/api/v1/units/313")).headers["etag"]
    bodies = [{"name": f"Huyện Kiến Thụy {n}"} for n in range(RACERS)]
    counts = await race(app, admin_headers, "PATCH", "/api/v1/units/313", bodies, if_match=etag)
    assert counts == {200: 1, 412: RACERS - 1}
    etag = (await writer.get("/api/v1/sectors/ho-tich")).headers["etag"]
    bodies = [{"name": f"Hộ tịch {n}"} for n in range(RACERS)]
    counts = await race(app, admin_headers, "PATCH", "/api/v1/sectors/ho-tich", bodies, if_match=etag)
    assert counts == {200: 1, 412: RACERS - 1}


async def test_one_if_match_wins_a_procedure(
    app: FastAPI, writer: AsyncClient, admin_headers: dict[str, str]
) -> None:
    url = "/api/v1/procedures/1.000894"
    etag = (await writer.get(url)).headers["etag"]
    bodies = [{"name": f"Đăng ký kết hôn {n}"} for n in range(RACERS)]
    counts = await race(app, admin_headers, "PATCH", url, bodies, if_match=etag)
    assert counts == {200: 1, 412: RACERS - 1}
    history = (await writer.get(f"{url}/history")).json()["items"]
    assert len(history) == 2


async def test_one_creator_of_a_code_wins(
    app: FastAPI, writer: AsyncClient, admin_headers: dict[str, str]
) -> None:
    body = procedure("9.000001", "ho-tich", ["commune"])
    counts = await race(app, admin_headers, "POST", "/api/v1/procedures", [body] * RACERS)
    assert counts == {201: 1, 409: RACERS - 1}
    unit = {
        "code": "99001",
        "name": "Xã đua",
        "level": "commune",
        "parent_code": "313",
        "valid_to": "2025-06-30",
    }
    counts = await race(app, admin_headers, "POST", "/api/v1/units", [unit] * RACERS)
    assert counts == {201: 1, 409: RACERS - 1}


async def test_one_transition_wins_a_proposal(
    app: FastAPI, writer: AsyncClient, admin_headers: dict[str, str]
) -> None:
    body = proposal("simplify", code="2.000001")
    made = await writer.post("/api/v1/proposals", json=body)
    assert made.status_code == 201, made.text
    url = f"/api/v1/proposals/{made.json()['id']}"
    etag = (await writer.get(url)).headers["etag"]
    counts = await race(
        app,
        admin_headers,
        "PATCH",
        url,
        [{"title": f"T{n}"} for n in range(RACERS)],
        if_match=etag,
    )
    assert counts == {200: 1, 412: RACERS - 1}
    moves = [{"to": "submitted"}] * RACERS
    counts = await race(app, admin_headers, "POST", f"{url}/transitions", moves)
    assert counts == {200: 1, 409: RACERS - 1}
    transitions = (await writer.get(url)).json()["transitions"]
    assert len(transitions) == 1
    # Each decision ends the other's chance: approved and rejected both leave "submitted".
    decisions = [{"to": to} for to in ("approved", "rejected") * (RACERS // 2)]
    counts = await race(app, admin_headers, "POST", f"{url}/transitions", decisions)
    assert counts == {200: 1, 409: RACERS - 1}
    assert len((await writer.get(url)).json()["transitions"]) == 2


async def test_one_transition_wins_a_feedback_item(
    app: FastAPI, writer: AsyncClient, admin_headers: dict[str, str]
) -> None:
    made = await writer.post("/api/v1/feedback", json=feedback(unit_code="11680"))
    assert made.status_code == 201, made.text
    url = f"/api/v1/feedback/{made.json()['id']}/transitions"
    moves = [{"to": "rejected", "occurred_at": "2023-08-02T09:00:00+07:00"}] * 10
    counts = await race(app, admin_headers, "POST", url, moves)
    assert counts == {200: 1, 409: 9}
    item = (await writer.get(url.removesuffix("/transitions"))).json()
    assert item["state"] == "rejected" and len(item["transitions"]) == 1
