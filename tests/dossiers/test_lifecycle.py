"""Dossier lifecycle through the API: due dates, pauses, classification (SPEC §3, §4)."""

from typing import Any

import pytest
from httpx import AsyncClient

from tests.dossiers.conftest import dossier, received, send, step

pytestmark = pytest.mark.usefixtures("world")


async def test_received_gets_a_due_date_from_the_procedure_in_force(portal: AsyncClient) -> None:
    results = await send(portal, received("HS-1", "2023-08-07T09:15:00+07:00", lookup_secret="482913"))
    assert results == [{"event_id": "HS-1-received", "status": "created", "problem": None}]
    body = await dossier(portal, "HS-1")
    assert body["status"] == 2 and body["status_name"] == "received"
    assert body["status_name_vi"] == "Được tiếp nhận"
    assert body["due_at"] == "2023-08-10T02:15:00Z"  # Thu 09:15 in Vietnam
    assert body["original_due_at"] == body["due_at"]
    assert (body["channel"], body["online_level"]) == ("online", "full")
    assert "lookup_secret_hash" not in body and "482913" not in str(body)
    assert [entry["type"] for entry in body["timeline"]] == ["received"]


async def test_due_date_sent_by_the_source_is_kept(portal: AsyncClient) -> None:
    await send(portal, received("HS-2", "2023-08-07T09:15:00+07:00", due_at="2023-08-20T17:00:00+07:00"))
    assert (await dossier(portal, "HS-2"))["due_at"] == "2023-08-20T10:00:00Z"


async def test_the_version_in_force_on_the_reception_day_sets_the_due_date(
    portal: AsyncClient, writer: AsyncClient
) -> None:
    url = "/api/v1/procedures/1.000894"
    etag = (await writer.get(url)).headers["etag"]
    change = {"processing_time": {"value": 1, "unit": "working_days"}, "in_force_from": "2024-01-01"}
    assert (await writer.patch(url, json=change, headers={"If-Match": etag})).status_code == 200
    await send(
        portal,
        received("OLD", "2023-12-29T08:00:00+07:00"),
        received("NEW", "2024-01-02T08:00:00+07:00"),
    )
    assert (await dossier(portal, "OLD"))["due_at"] == "2024-01-03T10:00:00Z"  # 3 working days, 1 Jan off
    assert (await dossier(portal, "NEW"))["due_at"] == "2024-01-02T10:00:00Z"  # 1 working day


async def test_supplement_pause_moves_the_due_date(portal: AsyncClient) -> None:
    await send(
        portal,
        received("HS-3", "2023-08-07T08:00:00+07:00"),
        step("HS-3", "supplement_requested", "2023-08-08T10:00:00+07:00"),
    )
    waiting = await dossier(portal, "HS-3")
    assert (waiting["status"], waiting["waiting_supplement"], waiting["supplement_count"]) == (5, True, 1)
    await send(portal, step("HS-3", "supplement_received", "2023-08-09T10:00:00+07:00"))
    resumed = await dossier(portal, "HS-3")
    # The pause lasted one working day (8 h), so Wed 17:00 becomes Thu 17:00.
    assert resumed["original_due_at"] == "2023-08-09T10:00:00Z"
    assert resumed["due_at"] == "2023-08-10T10:00:00Z"
    assert (resumed["status"], resumed["waiting_supplement"]) == (4, False)
    await send(portal, step("HS-3", "resolved", "2023-08-10T16:00:00+07:00"))
    finished = await dossier(portal, "HS-3")
    assert (finished["on_time"], finished["early"]) == (True, False)


async def test_two_supplement_requests_make_a_dossier_late(portal: AsyncClient) -> None:
    await send(
        portal,
        received("HS-4", "2023-08-07T08:00:00+07:00", procedure="2.000001", unit="313"),
        step("HS-4", "supplement_requested", "2023-08-07T09:00:00+07:00"),
        step("HS-4", "supplement_received", "2023-08-07T10:00:00+07:00"),
        step("HS-4", "supplement_requested", "2023-08-07T11:00:00+07:00"),
        step("HS-4", "supplement_received", "2023-08-07T14:00:00+07:00"),
        step("HS-4", "resolved", "2023-08-08T09:00:00+07:00"),
    )
    body = await dossier(portal, "HS-4")
    assert body["supplement_count"] == 2
    assert body["finished_at"] < body["due_at"]
    assert (body["status"], body["on_time"], body["early"]) == (9, False, False)


@pytest.mark.parametrize(
    ("finish", "at", "on_time", "early"),
    [
        ("resolved", "2023-08-08T16:00:00+07:00", True, True),  # a day before the due date
        ("resolved", "2023-08-10T09:15:00+07:00", True, False),  # exactly at the due date
        ("resolved", "2023-08-10T09:16:00+07:00", False, False),
        ("stopped", "2023-08-09T10:00:00+07:00", True, True),
        ("returned", "2023-08-11T10:00:00+07:00", False, False),
    ],
)
async def test_finishing_classifies_on_time_and_early(
    portal: AsyncClient, finish: str, at: str, on_time: bool, early: bool
) -> None:
    await send(portal, received("HS-5", "2023-08-07T09:15:00+07:00"), step("HS-5", finish, at))
    body = await dossier(portal, "HS-5")
    assert (body["on_time"], body["early"]) == (on_time, early)
    assert body["finished_at"] is not None


async def test_return_after_resolution_keeps_the_classification(portal: AsyncClient) -> None:
    await send(
        portal,
        received("HS-6", "2023-08-07T09:15:00+07:00"),
        step("HS-6", "processing", "2023-08-07T10:00:00+07:00"),
        step("HS-6", "resolved", "2023-08-09T10:00:00+07:00"),
        step("HS-6", "returned", "2023-08-15T10:00:00+07:00", e_result=True),
    )
    body = await dossier(portal, "HS-6")
    assert (body["status"], body["on_time"], body["e_result"]) == (10, True, True)
    assert body["finished_at"] == "2023-08-09T03:00:00Z"
    assert body["returned_at"] == "2023-08-15T03:00:00Z"


async def test_withdrawal_ends_without_classification(portal: AsyncClient) -> None:
    results = await send(
        portal,
        received("HS-7", "2023-08-07T09:15:00+07:00"),
        step("HS-7", "withdrawn", "2023-08-08T09:00:00+07:00"),
        step("HS-7", "resolved", "2023-08-09T09:00:00+07:00"),
    )
    assert [r["status"] for r in results] == ["created", "created", "error"]
    assert results[2]["problem"]["status"] == 409
    body = await dossier(portal, "HS-7")
    assert (body["status"], body["on_time"], body["finished_at"]) == (7, None, None)


async def test_apology_keeps_the_dossier_late(portal: AsyncClient) -> None:
    results = await send(
        portal,
        received("HS-8", "2023-08-07T09:15:00+07:00"),
        step(
            "HS-8", "apology_issued", "2023-08-10T10:00:00+07:00", new_return_at="2023-08-14T10:00:00+07:00"
        ),
        step("HS-8", "resolved", "2023-08-14T09:00:00+07:00"),
        step(
            "HS-8", "apology_issued", "2023-08-15T09:00:00+07:00", new_return_at="2023-08-16T10:00:00+07:00"
        ),
    )
    assert [r["status"] for r in results] == ["created"] * 4
    body = await dossier(portal, "HS-8")
    assert (body["apology_count"], body["on_time"]) == (2, False)
    assert body["new_return_at"] == "2023-08-16T03:00:00Z"


async def test_refused_dossier_is_never_received(portal: AsyncClient) -> None:
    results = await send(
        portal,
        {**received("HS-9", "2023-08-07T09:15:00+07:00"), "type": "refused", "event_id": "HS-9-refused"},
        step("HS-9", "processing", "2023-08-07T10:00:00+07:00"),
        received("HS-9", "2023-08-07T11:00:00+07:00"),
    )
    assert [r["status"] for r in results] == ["created", "error", "error"]
    body = await dossier(portal, "HS-9")
    assert (body["status"], body["received_at"], body["due_at"]) == (3, None, None)
    assert body["refused_at"] == "2023-08-07T02:15:00Z"


ERRORS: list[tuple[str, dict[str, Any], int, str]] = [
    (
        "unknown procedure",
        received("E1", "2023-08-07T09:00:00+07:00", procedure="9.999999"),
        422,
        "procedure_code",
    ),
    ("unknown unit", received("E2", "2023-08-07T09:00:00+07:00", unit="99999"), 422, "unit_code"),
    ("wrong level", received("E3", "2023-08-07T09:00:00+07:00", procedure="2.000001"), 422, "unit_code"),
    ("dissolved unit", received("E4", "2025-08-07T09:00:00+07:00"), 422, "unit_code"),
    (
        "district level after the 2025 reform",
        received("E11", "2025-08-07T09:00:00+07:00", procedure="2.000001", unit="313"),
        422,
        "unit_code",
    ),
    ("no offset", received("E5", "2023-08-07T09:00:00"), 422, "occurred_at"),
    ("in the future", received("E6", "2099-01-01T09:00:00+07:00"), 422, "occurred_at"),
    (
        "online without level",
        received("E7", "2023-08-07T09:00:00+07:00", online_level=None),
        422,
        "online_level",
    ),
    (
        "reception field later",
        step("E9", "resolved", "2023-08-07T09:00:00+07:00", unit_code="11680"),
        422,
        "unit_code",
    ),
    ("unknown type", step("E10", "archived", "2023-08-07T09:00:00+07:00"), 422, "type"),
]


@pytest.mark.parametrize(("case", "event", "status", "field"), ERRORS, ids=[e[0] for e in ERRORS])
async def test_rejected_events_store_nothing(
    portal: AsyncClient, case: str, event: dict[str, Any], status: int, field: str
) -> None:
    if event.get("online_level", "") is None:
        del event["online_level"]
    (result,) = await send(portal, event)
    assert result["status"] == "error", case
    assert result["problem"]["status"] == status
    if field:
        assert field in [error["field"] for error in result["problem"]["errors"]]
    assert (await portal.get(f"/api/v1/dossiers/{event['dossier_code']}")).status_code == 404
    # The event id was not used up: the corrected event goes through.
    if event["type"] == "received" and status == 422:
        fixed = received(event["dossier_code"], "2023-08-07T09:00:00+07:00", event_id=event["event_id"])
        assert (await send(portal, fixed))[0]["status"] == "created"


async def test_events_that_can_never_take_their_place_are_conflicts(portal: AsyncClient) -> None:
    await send(portal, received("HS-10", "2023-08-07T09:15:00+07:00"))
    results = await send(
        portal,
        step("HS-10", "processing", "2023-08-07T09:00:00+07:00"),
        received("HS-10", "2023-08-07T10:00:00+07:00", event_id="again"),
        step("HS-10", "supplement_received", "2023-08-07T10:00:00+07:00"),
        step("HS-10", "processing", "2023-08-08T10:00:00+07:00"),
        step("HS-10", "processing", "2023-08-08T09:00:00+07:00"),
    )
    # Before the reception, or a second reception: never valid. A supplement received before its
    # request is kept: the request may still arrive. An older event takes its place in time.
    assert [r["status"] for r in results] == ["error", "error", "pending", "created", "created"]
    assert [r["problem"]["status"] for r in results if r["problem"]] == [409, 409]
    timeline = (await dossier(portal, "HS-10"))["timeline"]
    assert [(e["type"], e["status"]) for e in timeline] == [
        ("received", "applied"),
        ("supplement_received", "pending"),
        ("processing", "applied"),
        ("processing", "applied"),
    ]


async def test_single_event_endpoint(portal: AsyncClient) -> None:
    event = received("HS-11", "2023-08-07T09:15:00+07:00")
    created = await portal.post("/api/v1/dossier-events", json=event)
    assert created.status_code == 201
    assert created.json() == {"event_id": "HS-11-received", "status": "created"}
    again = await portal.post("/api/v1/dossier-events", json=event)
    assert again.status_code == 200
    assert again.json()["status"] == "duplicate"
    conflict = await portal.post("/api/v1/dossier-events", json={**event, "event_id": "other"})
    assert conflict.status_code == 409
    assert conflict.headers["content-type"] == "application/problem+json"
    early = await portal.post(
        "/api/v1/dossier-events", json=step("NONE", "resolved", "2023-08-07T09:00:00+07:00")
    )
    assert early.status_code == 202
    assert early.json()["status"] == "pending"
    naive = await portal.post("/api/v1/dossier-events", json={**event, "occurred_at": "2023-08-07T09:15:00"})
    assert naive.status_code == 422
