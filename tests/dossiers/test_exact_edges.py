"""Edges of SPEC §3–§4 where a figure used to come out wrong: corrections that drop a field or change
the type, batching that must not matter, repeated supplement requests while waiting.

Each expectation is worked out from SPEC by hand (procedure 1.000894: 3 working days, 8-hour days).
"""

import json
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession

from app.clients.service import get_client_by_name
from app.core.security import Principal
from app.dossiers.bulk import Source, import_file
from app.dossiers.ingestion.work import Ingestion
from tests.conftest import assert_counters_equal_a_rebuild
from tests.dossiers.conftest import dossier, received, send, step

pytestmark = pytest.mark.usefixtures("world")

MONDAY_0900 = "2023-08-07T09:00:00+07:00"
THURSDAY_0900_UTC = "2023-08-10T02:00:00Z"  # Mon 09:00 + 3 working days


async def quarter(client: AsyncClient) -> dict[str, int]:
    response = await client.get("/api/v1/stats/dossiers", params={"period": "2023-Q3"})
    assert response.status_code == 200, response.text
    return dict(response.json()["total"]["counts"])


# --- 1. a correction replaces the event whole ------------------------------------------------------


@pytest.mark.parametrize("batched", [False, True])
async def test_a_correction_that_drops_due_at_computes_the_due_date_again(
    app: FastAPI, portal: AsyncClient, batched: bool
) -> None:
    reception = received("DROP", MONDAY_0900, due_at="2023-10-09T09:00:00+07:00")
    finish = step("DROP", "resolved", "2023-08-21T09:00:00+07:00")
    correction = {key: value for key, value in reception.items() if key != "due_at"} | {"revision": 2}
    if batched:
        results = await send(portal, reception, finish, correction)
        assert [r["status"] for r in results] == ["created", "created", "updated"]
    else:
        await send(portal, reception, finish)
        assert (await dossier(portal, "DROP"))["on_time"] is True
        assert (await send(portal, correction))[0]["status"] == "updated"
    body = await dossier(portal, "DROP")
    assert (body["due_at"], body["original_due_at"], body["on_time"]) == (
        THURSDAY_0900_UTC,
        THURSDAY_0900_UTC,
        False,
    )
    counts = await quarter(portal)
    assert (counts["resolved_on_time"], counts["resolved_late"]) == (0, 1)
    await assert_counters_equal_a_rebuild(app)


async def test_a_correction_that_changes_the_unit_uses_the_new_units_procedure_time(
    app: FastAPI, portal: AsyncClient
) -> None:
    """Moving the reception keeps nothing of the old one: its due date is the catalogue's again."""
    reception = received("MOVE", MONDAY_0900, due_at="2023-10-09T09:00:00+07:00")
    await send(portal, reception)
    corrected = {key: value for key, value in reception.items() if key != "due_at"}
    assert (await send(portal, corrected | {"unit_code": "11737", "revision": 2}))[0]["status"] == "updated"
    body = await dossier(portal, "MOVE")
    assert (body["unit_code"], body["due_at"]) == ("11737", THURSDAY_0900_UTC)
    await assert_counters_equal_a_rebuild(app)


# --- 2. a correction may change the event's type ---------------------------------------------------


@pytest.mark.parametrize("batched", [False, True])
async def test_a_refusal_corrected_into_a_reception_gets_the_procedures_time(
    app: FastAPI, portal: AsyncClient, batched: bool
) -> None:
    refusal = {**received("TURN", MONDAY_0900), "type": "refused"}
    reception = {**received("TURN", MONDAY_0900), "revision": 2}
    finish = step("TURN", "resolved", "2023-08-09T15:00:00+07:00")
    if batched:
        # The finish comes after the refusal in the request: judged against the corrected history.
        results = await send(portal, refusal, finish, reception)
        assert [r["status"] for r in results] == ["created", "created", "updated"]
    else:
        await send(portal, refusal)
        assert (await send(portal, reception))[0]["status"] == "updated"
        assert (await send(portal, finish))[0]["status"] == "created"
    body = await dossier(portal, "TURN")
    assert (body["status"], body["due_at"], body["on_time"], body["early"]) == (
        9,
        THURSDAY_0900_UTC,
        True,
        True,
    )
    counts = await quarter(portal)
    assert (counts["refused"], counts["received"], counts["resolved_on_time"]) == (0, 1, 1)
    await assert_counters_equal_a_rebuild(app)


async def test_the_bulk_import_takes_a_refusal_corrected_into_a_reception(
    app: FastAPI, portal: AsyncClient, tmp_path: Path
) -> None:
    lines = [
        {**received("BULK-TURN", MONDAY_0900), "type": "refused"},
        step("BULK-TURN", "resolved", "2023-08-09T15:00:00+07:00"),
        {**received("BULK-TURN", MONDAY_0900), "revision": 2},
    ]
    path = tmp_path / "turn.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    async with app.state.sessionmaker() as session:
        client = await get_client_by_name(session, "national-portal")
    principal = Principal(client.id, client.name, frozenset(client.scopes), client.unit_code)

    def ingestion_of(session: AsyncSession) -> Ingestion:
        return Ingestion(session, principal, app.state.calendar, app.state.settings.secret_key)

    progress = await import_file(app.state.sessionmaker, ingestion_of, Source.of(path))
    assert progress.outcomes["error"] == 0, progress.outcomes
    body = await dossier(portal, "BULK-TURN")
    assert (body["status"], body["due_at"], body["on_time"]) == (9, THURSDAY_0900_UTC, True)
    await assert_counters_equal_a_rebuild(app)


# --- 3. batching must not matter ----------------------------------------------------------------


def _offset_mistake(code: str) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """A reception sent with local time as UTC (7 hours late), its correction, and a finish that
    lies between the wrong instant and the true one."""
    wrong = received(code, "2023-08-07T09:00:00Z", channel="direct")
    right = {**received(code, MONDAY_0900, channel="direct"), "revision": 2}
    finish = step(code, "resolved", "2023-08-07T11:00:00+07:00")
    return wrong, right, finish


@pytest.mark.parametrize("order", [(0, 1, 2), (0, 2, 1), (2, 0, 1)])
async def test_one_request_gives_what_the_same_lines_give_one_by_one(
    app: FastAPI, portal: AsyncClient, order: tuple[int, int, int]
) -> None:
    one_by_one = _offset_mistake("SINGLY")
    for message in one_by_one:
        assert (await send(portal, message))[0]["status"] != "error"
    together = _offset_mistake("TOGETHER")
    results = await send(portal, *(together[n] for n in order))
    assert [r["status"] for r in results if r["status"] == "error"] == [], results
    singly, batch = await dossier(portal, "SINGLY"), await dossier(portal, "TOGETHER")
    for name in ("status", "received_at", "due_at", "finished_at", "on_time", "early"):
        assert batch[name] == singly[name], name
    assert (batch["status"], batch["finished_at"], batch["on_time"]) == (9, "2023-08-07T04:00:00Z", True)
    assert [e["status"] for e in batch["timeline"]] == ["applied", "applied"]
    counts = await quarter(portal)
    assert (counts["received"], counts["resolved_on_time"]) == (2, 2)
    await assert_counters_equal_a_rebuild(app)


async def test_an_event_truly_out_of_place_is_still_refused_after_the_corrections(
    portal: AsyncClient,
) -> None:
    wrong, right, _finish = _offset_mistake("STILL")
    too_early = step("STILL", "resolved", "2023-08-07T08:00:00+07:00")  # before the true reception too
    results = await send(portal, wrong, too_early, right)
    assert [r["status"] for r in results] == ["created", "error", "updated"]
    assert results[1]["problem"]["status"] == 409
    assert (await dossier(portal, "STILL"))["status"] == 2


# --- 4. a further supplement request while waiting ---------------------------------------------


@pytest.mark.parametrize("order", [(0, 1, 2, 3, 4), (4, 2, 3, 1, 0), (0, 3, 2, 4, 1)])
async def test_a_second_supplement_request_while_waiting_counts_and_the_pause_runs_from_the_first(
    app: FastAPI, portal: AsyncClient, order: tuple[int, ...]
) -> None:
    events = [
        received("TWICE", MONDAY_0900, channel="direct"),
        step("TWICE", "supplement_requested", "2023-08-08T09:00:00+07:00"),
        step("TWICE", "supplement_requested", "2023-08-09T09:00:00+07:00"),
        step("TWICE", "supplement_received", "2023-08-11T09:00:00+07:00"),
        step("TWICE", "resolved", "2023-08-14T09:00:00+07:00"),
    ]
    for n in order:
        assert (await send(portal, events[n]))[0]["status"] != "error"
    body = await dossier(portal, "TWICE")
    # The pause ran Tue 09:00 → Fri 09:00 (3 working days): due Thu 09:00 moves to Tue 15 09:00.
    assert (body["supplement_count"], body["due_at"], body["finished_at"]) == (
        2,
        "2023-08-15T02:00:00Z",
        "2023-08-14T02:00:00Z",
    )
    assert body["on_time"] is False  # two requests: late (766 rule), although before the due date
    assert [e["status"] for e in body["timeline"]] == ["applied"] * 5
    assert (await portal.get("/api/v1/dossier-events", params={"pending": "true"})).json()["items"] == []
    counts = await quarter(portal)
    assert (counts["resolved_late"], counts["resolved_on_time"], counts["waiting_supplement"]) == (1, 0, 0)
    await assert_counters_equal_a_rebuild(app)


async def test_a_dossier_still_waiting_after_two_requests_waits_once(
    app: FastAPI, portal: AsyncClient
) -> None:
    await send(
        portal,
        received("STILL-WAITING", MONDAY_0900, channel="direct"),
        step("STILL-WAITING", "supplement_requested", "2023-08-08T09:00:00+07:00"),
        step("STILL-WAITING", "supplement_requested", "2023-08-09T09:00:00+07:00"),
    )
    body = await dossier(portal, "STILL-WAITING")
    assert (body["status"], body["supplement_count"]) == (5, 2)
    counts = await quarter(portal)
    assert (counts["waiting_supplement"], counts["in_progress"], counts["in_progress_overdue"]) == (1, 1, 0)
    await assert_counters_equal_a_rebuild(app)


# --- one faulty item fails itself only ----------------------------------------------------------


@pytest.mark.parametrize("field", ["event_id", "lookup_secret"])
async def test_a_lone_surrogate_is_that_items_422(portal: AsyncClient, field: str) -> None:
    """JSON may carry a lone UTF-16 surrogate as an escape: it can be neither stored nor echoed."""
    bad = received("SURROGATE", MONDAY_0900) | {field: "ab\\ud800cd"}
    good = received("BESIDE", MONDAY_0900)
    body = json.dumps({"events": [good]})[:-2] + ", " + json.dumps(bad).replace("\\\\ud800", "\\ud800") + "]}"
    response = await portal.post(
        "/api/v1/dossier-events/batch", content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 200, response.text
    beside, faulty = response.json()["results"]
    assert beside["status"] == "created"
    assert (faulty["status"], faulty["problem"]["status"]) == ("error", 422)
    assert faulty["event_id"] == (None if field == "event_id" else "SURROGATE-received")
    assert (await portal.get("/api/v1/dossiers/SURROGATE")).status_code == 404
