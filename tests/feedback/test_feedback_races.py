"""Concurrent resends of one feedback item (one `external_ref`) answer as sequential resends do."""

import asyncio
from collections import Counter
from typing import Any

import pytest
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient, Response

from tests.conftest import KeyFactory
from tests.dossiers.conftest import world  # noqa: F401
from tests.feedback.test_feedback import FEEDBACK, feedback

pytestmark = pytest.mark.usefixtures("world")
RACERS = 20  # the app's pool: 10 connections and 10 more of overflow, one per request


async def race(app: FastAPI, headers: dict[str, str], bodies: list[dict[str, Any]]) -> list[Response]:
    """POST every body at once, each on a client of its own."""

    async def one(body: dict[str, Any]) -> Response:
        async with AsyncClient(
            transport=ASGITransport(app=app), base_url="http://t", headers=headers
        ) as http:
            return await http.post(FEEDBACK, json=body)

    return list(await asyncio.gather(*(one(body) for body in bodies)))


async def desk_key(api_key: KeyFactory, writer: AsyncClient) -> dict[str, str]:
    """A desk's key already used once: its requests read the key without touching it (on SQLite a
    first use writes, which would line the racers up behind the database's write lock)."""
    headers = await api_key("feedback:write", unit="313", name="kien-thuy-desk")
    assert (await writer.get(FEEDBACK, headers=headers)).status_code == 200
    return headers


async def stored(writer: AsyncClient) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = (await writer.get(FEEDBACK, params={"limit": 100})).json()["items"]
    return items


async def creations(writer: AsyncClient) -> int:
    audit = await writer.get("/api/v1/audit", params={"resource_type": "feedback", "action": "create"})
    assert audit.status_code == 200, audit.text
    return len(audit.json()["items"])


async def test_concurrent_identical_resends_are_one_item(
    app: FastAPI, writer: AsyncClient, api_key: KeyFactory
) -> None:
    headers = await desk_key(api_key, writer)
    answers = await race(app, headers, [feedback()] * RACERS)
    assert Counter(a.status_code for a in answers) == {201: 1, 200: RACERS - 1}, [
        a.text for a in answers if a.status_code not in (200, 201)
    ]
    assert len({a.json()["id"] for a in answers}) == 1
    items = await stored(writer)
    assert [item["id"] for item in items] == [answers[0].json()["id"]]
    assert await creations(writer) == 1
    # A resend afterwards is answered as before: the same item, 200.
    again = await race(app, headers, [feedback()])
    assert (again[0].status_code, again[0].json()["id"]) == (200, items[0]["id"])


async def test_concurrent_other_content_under_one_reference(
    app: FastAPI, writer: AsyncClient, api_key: KeyFactory
) -> None:
    """Two contents race for one reference: one is stored, its resends are 200, the other content
    is the 422 `external_ref_reused` a later resend of it would get: never a 409 nor a 500."""
    headers = await desk_key(api_key, writer)
    first, second = feedback(content="Hồ sơ trả chậm"), feedback(content="Cán bộ hẹn lại nhiều lần")
    bodies = [first, second] * (RACERS // 2)
    answers = await race(app, headers, bodies)
    created = [a.json() for a in answers if a.status_code == 201]
    assert len(created) == 1, Counter(a.status_code for a in answers)
    winner = created[0]
    same = [a for a, body in zip(answers, bodies, strict=True) if body["content"] == winner["content"]]
    other = [a for a, body in zip(answers, bodies, strict=True) if body["content"] != winner["content"]]
    assert sorted(a.status_code for a in same) == [200] * (RACERS // 2 - 1) + [201]
    assert {a.json()["id"] for a in same} == {winner["id"]}
    assert [a.status_code for a in other] == [422] * (RACERS // 2)
    assert {e["type"] for a in other for e in a.json()["errors"]} == {"external_ref_reused"}
    assert [item["id"] for item in await stored(writer)] == [winner["id"]]
    assert await creations(writer) == 1
