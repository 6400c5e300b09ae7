"""A dossier belongs to the client whose reception is stored: another client's reception never
displaces it, whatever its time and whichever way it comes in (SPEC §4)."""

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient

from tests.conftest import KeyFactory, assert_counters_equal_a_rebuild
from tests.dossiers.conftest import dossier, received, send, step
from tests.dossiers.test_history import record, sync

pytestmark = pytest.mark.usefixtures("world")

NINE = "2023-08-07T09:00:00+07:00"
EIGHT = "2023-08-07T08:00:00+07:00"

Clients = Callable[..., Any]


@pytest.fixture
def one_stop(app: FastAPI, api_key: KeyFactory) -> Callable[..., Any]:
    """An HTTP client of its own API key (bound to ``unit`` when given)."""

    @asynccontextmanager
    async def make(name: str, unit: str | None = None) -> AsyncIterator[AsyncClient]:
        headers = await api_key("dossiers:write", "dossiers:read", unit=unit, name=name)
        async with AsyncClient(
            transport=ASGITransport(app=app), base_url="http://t", headers=headers
        ) as http:
            yield http

    return make


def _timeline(body: dict[str, Any]) -> list[tuple[str, str]]:
    return [(entry["type"], entry["status"]) for entry in body["timeline"]]


async def test_a_record_from_another_bound_client_does_not_take_the_dossier(
    app: FastAPI, one_stop: Clients
) -> None:
    async with one_stop("kien-thuy", unit="313") as owner, one_stop("tien-lang", unit="314") as other:
        (first,) = await send(owner, received("TAKE", NINE, lookup_secret="482913"))
        assert first["status"] == "created"
        attack = record("TAKE", 2, DonViXuLy="11737", NgayTiepNhan="20230807080000")
        (answer,) = await sync(other, attack)
        # A client bound elsewhere may not act on the dossier at all: 403, as its events get.
        assert (answer["status"], answer["problem"]["status"]) == ("error", 403)
        (as_event,) = await send(other, received("TAKE", EIGHT, unit="11737", event_id="take"))
        assert (as_event["status"], as_event["problem"]["status"]) == ("error", 403)
        body = await dossier(owner, "TAKE")
        assert (body["unit_code"], body["received_at"]) == ("11680", "2023-08-07T02:00:00Z")
        assert _timeline(body) == [("received", "applied")]
        async with AsyncClient(transport=ASGITransport(app=app), base_url="http://t") as citizen:
            look_up = await citizen.get("/api/v1/public/dossiers/TAKE", params={"secret": "482913"})
        assert look_up.status_code == 200, look_up.text
        await assert_counters_equal_a_rebuild(app)


async def test_between_unbound_clients_the_stored_reception_owns_the_dossier(
    app: FastAPI, one_stop: Clients
) -> None:
    async with one_stop("first-system") as owner, one_stop("second-system") as other:
        # The second system's event waits for a reception, which the first system then sends.
        assert (await send(other, step("OWNED", "processing", "2023-08-07T10:00:00+07:00", event_id="p")))[0][
            "status"
        ] == "pending"
        assert (await send(owner, received("OWNED", NINE)))[0]["status"] == "created"
        # A reception from the second system, earlier in time, through every way in: refused.
        (direct,) = await send(other, received("OWNED", EIGHT, event_id="other-reception"))
        assert (direct["status"], direct["problem"]["status"]) == ("error", 409)
        (as_record,) = await sync(other, record("OWNED", 2))
        assert (as_record["status"], as_record["problem"]["status"]) == ("error", 409)
        # Its own stored event corrected into a reception: refused too.
        correction = {**received("OWNED", EIGHT, event_id="p"), "revision": 2}
        (corrected,) = await send(other, correction)
        assert (corrected["status"], corrected["problem"]["status"]) == ("error", 409)

        body = await dossier(owner, "OWNED")
        assert body["received_at"] == "2023-08-07T02:00:00Z"
        assert _timeline(body) == [("received", "applied"), ("processing", "applied")]
        await assert_counters_equal_a_rebuild(app)

        # Once the owner cancels its reception, another client's reception may stand.
        cancel = {**received("OWNED", NINE), "revision": 2, "cancelled": True}
        assert (await send(owner, cancel))[0]["status"] == "updated"
        (now_owner,) = await send(other, received("OWNED", EIGHT, event_id="other-reception"))
        assert now_owner["status"] == "created"
        await assert_counters_equal_a_rebuild(app)


async def test_a_later_record_of_another_unbound_client_applies_none_of_its_parts(
    app: FastAPI, one_stop: Clients
) -> None:
    # Its reception is refused (the dossier is the owner's), and with it the record's processing
    # and end, which come after everything the dossier has: a record applies whole or not at all.
    async with one_stop("first-system") as owner, one_stop("second-system") as other:
        assert (await send(owner, received("WHOLE", NINE)))[0]["status"] == "created"
        later = record("WHOLE", 9, NgayTiepNhan="20230808080000", NgayKetThucXuLy="20230809100000")
        (answer,) = await sync(other, later)
        assert (answer["status"], answer["problem"]["status"]) == ("error", 409)
        body = await dossier(owner, "WHOLE")
        assert (body["status"], body["finished_at"]) == (2, None)
        assert _timeline(body) == [("received", "applied")]
        await assert_counters_equal_a_rebuild(app)


@pytest.mark.parametrize(("first", "then"), [(3, 2), (2, 3)])
async def test_a_record_sent_again_may_turn_a_refusal_into_a_reception_and_back(
    app: FastAPI, one_stop: Clients, first: int, then: int
) -> None:
    # A record sent again replaces the state it described (SPEC §4): its new reception (or
    # refusal) takes the place of the one it withdraws, which made the dossier.
    refused_at = {"NgayTuChoi": "20230807090000"}
    async with one_stop("one-stop") as owner:
        (created,) = await sync(owner, record("TURN", first, **(refused_at if first == 3 else {})))
        assert created["status"] == "created"
        (changed,) = await sync(owner, record("TURN", then, **(refused_at if then == 3 else {})))
        assert changed["status"] == "updated", changed
        body = await dossier(owner, "TURN")
        assert body["status"] == then
        await assert_counters_equal_a_rebuild(app)


async def test_a_cancellation_for_a_foreign_dossier_is_refused(one_stop: Clients) -> None:
    async with one_stop("kien-thuy", unit="313") as owner, one_stop("tien-lang", unit="314") as other:
        await send(owner, received("FOREIGN", NINE))
        bogus = {**step("FOREIGN", "resolved", NINE, event_id="never-sent"), "revision": 2, "cancelled": True}
        (answer,) = await send(other, bogus)
        assert (answer["status"], answer["problem"]["status"]) == ("error", 403)
        assert _timeline(await dossier(owner, "FOREIGN")) == [("received", "applied")]


async def test_a_foreign_dossier_answers_like_an_unknown_one(one_stop: Clients) -> None:
    async with one_stop("kien-thuy", unit="313") as owner, one_stop("tien-lang", unit="314") as other:
        await send(owner, received("RATED", NINE), step("RATED", "resolved", "2023-08-08T09:00:00+07:00"))
        foreign = await other.post("/api/v1/dossiers/RATED/rating", json={"level": "satisfied"})
        unknown = await other.post("/api/v1/dossiers/NO-SUCH-DOSSIER/rating", json={"level": "satisfied"})
        assert foreign.status_code == unknown.status_code == 404
        assert foreign.json()["detail"] == unknown.json()["detail"]
        # An event on a foreign dossier is refused without naming where the dossier lies.
        (answer,) = await send(other, step("RATED", "returned", "2023-08-09T09:00:00+07:00"))
        assert answer["problem"]["status"] == 403 and "11680" not in answer["problem"]["detail"]
