"""Idempotent, set-based ingestion: resends, replays, concurrency, binding."""

import asyncio
from typing import Any

import pytest
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient
from sqlalchemy import func, select

from app.dossiers.models import DossierEvent
from tests.conftest import KeyFactory
from tests.dossiers.conftest import BATCH, dossier, received, send, step

pytestmark = pytest.mark.usefixtures("world")


def quarter_of_events(count: int) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    for number in range(count):
        code = f"KT-{number:04d}"
        day = 1 + number % 28
        events.append(received(code, f"2023-08-{day:02d}T09:00:00+07:00", channel="direct"))
        if number % 3 == 0:
            events.append(step(code, "supplement_requested", f"2023-08-{day:02d}T10:00:00+07:00"))
            events.append(step(code, "supplement_received", f"2023-08-{day:02d}T15:00:00+07:00"))
        if number % 5 != 4:
            events.append(step(code, "resolved", f"2023-09-{day:02d}T09:00:00+07:00"))
    return events


async def test_a_replayed_quarter_changes_nothing(portal: AsyncClient) -> None:
    events = quarter_of_events(300)
    first: list[dict[str, Any]] = []
    for start in range(0, len(events), 250):
        first += await send(portal, *events[start : start + 250])
    assert {r["status"] for r in first} == {"created"}
    before = [await dossier(portal, f"KT-{n:04d}") for n in (0, 3, 4, 299)]

    second: list[dict[str, Any]] = []
    for start in range(0, len(events), 100):
        second += await send(portal, *events[start : start + 100])
    assert [r["status"] for r in second] == ["duplicate"] * len(events)
    after = [await dossier(portal, f"KT-{n:04d}") for n in (0, 3, 4, 299)]
    assert [{k: v for k, v in d.items() if k != "overdue"} for d in after] == [
        {k: v for k, v in d.items() if k != "overdue"} for d in before
    ]


async def test_same_event_id_with_another_payload_is_422(portal: AsyncClient) -> None:
    event = received("HS-1", "2023-08-07T09:15:00+07:00")
    await send(portal, event)
    # The same instant written with another offset is the same event.
    same = {**event, "occurred_at": "2023-08-07T02:15:00Z"}
    changed = {**event, "lookup_secret": "9999"}
    results = await send(portal, same, changed)
    assert results[0]["status"] == "duplicate"
    assert results[1]["status"] == "error"
    assert results[1]["problem"]["status"] == 422
    assert results[1]["problem"]["errors"][0]["type"] == "event_id_reused"
    assert len((await dossier(portal, "HS-1"))["timeline"]) == 1


async def test_a_bad_event_does_not_stop_the_good_ones(portal: AsyncClient) -> None:
    results = await send(
        portal,
        received("A", "2023-08-07T09:00:00+07:00"),
        {"event_id": "broken", "type": "received"},
        "not an object",  # type: ignore[arg-type]
        step("A", "resolved", "2023-08-08T09:00:00+07:00"),
        step("A", "resolved", "2023-08-08T10:00:00+07:00", event_id="A-resolved-twice"),
        received("A", "2023-08-09T09:00:00+07:00", event_id="dup-in-batch"),
        received("B", "2023-08-07T09:00:00+07:00", event_id="dup-in-batch"),
    )
    assert [r["status"] for r in results] == [
        "created",
        "error",
        "error",
        "created",
        "error",
        "error",
        "created",
    ]
    assert [r["problem"]["status"] for r in results if r["problem"]] == [422, 422, 409, 409]
    assert results[1]["event_id"] == "broken"
    # A rejected event leaves its id unused, so the next event may carry it.
    assert (await dossier(portal, "B"))["timeline"][0]["event_id"] == "dup-in-batch"


async def test_an_instant_that_leaves_the_calendar_in_utc_is_its_items_422(portal: AsyncClient) -> None:
    # Day one at +07:00 is in year 0 in UTC, and the year 9999 at -07:00 in year 10000: Python's
    # datetime cannot hold either. The OverflowError used to refuse the whole batch (one 422):
    # a faulty item fails itself only.
    results = await send(
        portal,
        received("EDGE-1", "0001-01-01T00:00:00+07:00"),
        received("EDGE-2", "9999-12-31T23:00:00-07:00"),
        received("EDGE-3", "2023-08-07T09:00:00+07:00"),
    )
    assert [r["status"] for r in results] == ["error", "error", "created"]
    for result in results[:2]:
        assert result["problem"]["status"] == 422
        assert result["problem"]["errors"][0]["field"] == "occurred_at"
        assert "must lie between 1900-01-01 and 2200-12-31" in result["problem"]["errors"][0]["message"]


async def test_batches_are_bounded(portal: AsyncClient) -> None:
    too_many = [received(f"X-{n}", "2023-08-07T09:00:00+07:00") for n in range(1001)]
    response = await portal.post(BATCH, json={"events": too_many})
    assert response.status_code == 422
    assert (await portal.post(BATCH, json={"events": []})).status_code == 422


async def test_event_ids_belong_to_their_sender(
    portal: AsyncClient, app: FastAPI, api_key: KeyFactory
) -> None:
    headers = await api_key("dossiers:write", name="one-stop")
    await send(portal, received("P", "2023-08-07T09:00:00+07:00", event_id="shared-id"))
    async with AsyncClient(transport=ASGITransport(app=app), base_url="http://t", headers=headers) as other:
        (result,) = await send(other, received("Q", "2023-08-07T09:00:00+07:00", event_id="shared-id"))
    assert result["status"] == "created"


async def test_concurrent_identical_batches_apply_each_event_once(
    app: FastAPI, portal: AsyncClient, database_url: str
) -> None:
    events = quarter_of_events(60)
    headers = dict(portal.headers)

    async def push() -> list[dict[str, Any]]:
        async with AsyncClient(
            transport=ASGITransport(app=app), base_url="http://t", headers=headers
        ) as http:
            return await send(http, *events)

    outcomes = await asyncio.gather(*(push() for _ in range(4)))
    for position in range(len(events)):
        statuses = sorted(outcome[position]["status"] for outcome in outcomes)
        assert statuses == ["created", "duplicate", "duplicate", "duplicate"], position
    async with app.state.sessionmaker() as session:
        stored = await session.scalar(select(func.count()).select_from(DossierEvent))
    assert stored == len(events)
    assert (await dossier(portal, "KT-0000"))["supplement_count"] == 1


async def test_bound_client_writes_only_for_its_units(
    app: FastAPI, api_key: KeyFactory, portal: AsyncClient
) -> None:
    await send(portal, received("TL-1", "2023-08-07T09:00:00+07:00", unit="11737"))
    headers = await api_key("dossiers:write", unit="313", name="kien-thuy")
    async with AsyncClient(
        transport=ASGITransport(app=app), base_url="http://t", headers=headers
    ) as kien_thuy:
        results = await send(
            kien_thuy,
            received("KT-1", "2023-08-07T09:00:00+07:00"),
            received("TL-2", "2023-08-07T09:00:00+07:00", unit="11737"),
            step("TL-1", "resolved", "2023-08-08T09:00:00+07:00"),
        )
    assert [r["problem"]["status"] if r["problem"] else 201 for r in results] == [201, 403, 403]


async def test_writing_events_needs_the_write_scope(client: AsyncClient, api_key: KeyFactory) -> None:
    reader = await api_key("dossiers:read")
    event = received("HS", "2023-08-07T09:00:00+07:00")
    assert (await client.post(BATCH, json={"events": [event]}, headers=reader)).status_code == 403
    assert (await client.post(BATCH, json={"events": [event]})).status_code == 401
