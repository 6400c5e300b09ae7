"""Events late, out of order, before their reception, corrected; DVCQG records (SPEC §4)."""

import asyncio
from typing import Any

import pytest
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient

from tests.conftest import KeyFactory, assert_counters_equal_a_rebuild
from tests.dossiers.conftest import dossier, received, send, step

pytestmark = pytest.mark.usefixtures("world")

SYNC = "/api/v1/sync/dvcqg"
STATE = (
    "status",
    "due_at",
    "original_due_at",
    "finished_at",
    "returned_at",
    "on_time",
    "early",
    "supplement_count",
)


def history(code: str) -> list[dict[str, Any]]:
    """A dossier whose supplement pause makes it on time: sent in another order, it must stay so."""
    return [
        received(code, "2023-08-07T08:00:00+07:00", channel="direct"),
        step(code, "processing", "2023-08-07T09:00:00+07:00"),
        step(code, "supplement_requested", "2023-08-08T10:00:00+07:00"),
        step(code, "supplement_received", "2023-08-11T10:00:00+07:00"),
        step(code, "resolved", "2023-08-14T16:00:00+07:00"),
        step(code, "returned", "2023-08-15T09:00:00+07:00"),
    ]


def state_of(body: dict[str, Any]) -> dict[str, Any]:
    return {name: body[name] for name in STATE}


async def quarter(client: AsyncClient) -> dict[str, Any]:
    response = await client.get("/api/v1/stats/dossiers", params={"period": "2023-Q3", "group_by": "unit"})
    assert response.status_code == 200
    return dict(response.json())


@pytest.mark.parametrize("order", [[5, 4, 3, 2, 1, 0], [4, 0, 2, 5, 1, 3], [1, 2, 3, 0, 5, 4]])
async def test_any_arrival_order_makes_the_dossier_of_the_time_order(
    app: FastAPI, portal: AsyncClient, order: list[int]
) -> None:
    assert {r["status"] for r in await send(portal, *history("IN-ORDER"))} == {"created"}
    scrambled = history("LATE")
    statuses = [(await send(portal, scrambled[n]))[0]["status"] for n in order]
    assert "error" not in statuses
    late = await dossier(portal, "LATE")
    assert state_of(late) == state_of(await dossier(portal, "IN-ORDER"))
    assert late["on_time"] is True  # the pause moved the due date past the finish
    assert [e["status"] for e in late["timeline"]] == ["applied"] * 6
    assert [e["type"] for e in late["timeline"]] == [e["type"] for e in history("x")]
    total = (await quarter(portal))["total"]["counts"]
    assert (total["received"], total["resolved_on_time"], total["resolved_late"]) == (2, 2, 0)
    await assert_counters_equal_a_rebuild(app)
    # Resent in yet another order, every event is a duplicate.
    assert {r["status"] for r in await send(portal, *reversed(scrambled))} == {"duplicate"}


async def test_a_late_supplement_request_turns_a_late_finish_into_an_on_time_one(
    app: FastAPI, portal: AsyncClient
) -> None:
    events = history("FLIP")
    await send(portal, events[0], events[4])
    assert (await dossier(portal, "FLIP"))["on_time"] is False
    assert (await quarter(portal))["total"]["counts"]["resolved_late"] == 1
    await send(portal, events[3], events[2])  # the pause arrives backwards, weeks later
    flipped = await dossier(portal, "FLIP")
    assert (flipped["on_time"], flipped["supplement_count"]) == (True, 1)
    counts = (await quarter(portal))["total"]["counts"]
    assert (counts["resolved_on_time"], counts["resolved_late"]) == (1, 0)
    await assert_counters_equal_a_rebuild(app)


async def test_events_before_their_reception_wait_and_are_listed(
    app: FastAPI, portal: AsyncClient, api_key: KeyFactory
) -> None:
    events = history("EARLY")
    wrong = step("EARLY", "processing", "2023-08-06T09:00:00+07:00", event_id="before-reception")
    results = await send(portal, events[4], events[2], wrong)
    assert [r["status"] for r in results] == ["pending", "pending", "pending"]
    listing = await portal.get("/api/v1/dossier-events", params={"pending": "true"})
    assert listing.status_code == 200
    items = listing.json()["items"]
    assert {i["event_id"] for i in items} == {
        events[4]["event_id"],
        events[2]["event_id"],
        "before-reception",
    }
    assert all(i["age_seconds"] >= 0 and i["dossier_code"] == "EARLY" for i in items)
    assert (await portal.get("/api/v1/dossiers/EARLY")).status_code == 404
    assert (await portal.get("/api/v1/dossier-events", params={"pending": "false"})).status_code == 422

    assert (await send(portal, events[0]))[0]["status"] == "created"
    body = await dossier(portal, "EARLY")
    # Finished while waiting for papers: the pause ends at the finish.
    assert (body["status"], body["supplement_count"], body["finished_at"]) == (9, 1, "2023-08-14T09:00:00Z")
    verdicts = {e["event_id"]: (e["status"], e["reason"]) for e in body["timeline"]}
    assert verdicts[events[4]["event_id"]] == ("applied", None)
    status, reason = verdicts["before-reception"]
    assert status == "rejected" and "before" in reason
    assert (await portal.get("/api/v1/dossier-events", params={"pending": "true"})).json()["items"] == []
    await assert_counters_equal_a_rebuild(app)

    # A reader bound elsewhere sees none of another unit's waiting events.
    await send(portal, step("ELSEWHERE", "resolved", "2023-08-14T16:00:00+07:00"))
    headers = await api_key("dossiers:read", unit="314", name="tien-lang-reader")
    bound = await portal.get("/api/v1/dossier-events", params={"pending": "true"}, headers=headers)
    assert bound.status_code == 200 and bound.json()["items"] == []


async def test_corrections_replace_and_cancellations_withdraw(app: FastAPI, portal: AsyncClient) -> None:
    events = history("FIX")
    await send(portal, *events)
    finish = events[4]
    late_finish = {**finish, "occurred_at": "2023-08-15T08:30:00+07:00", "revision": 2}
    assert (await send(portal, late_finish))[0]["status"] == "updated"
    corrected = await dossier(portal, "FIX")
    assert (corrected["finished_at"], corrected["on_time"]) == ("2023-08-15T01:30:00Z", False)
    entry = next(e for e in corrected["timeline"] if e["event_id"] == finish["event_id"])
    assert entry["revision"] == 2
    (correction,) = entry["corrections"]
    assert correction["changes"]["occurred_at"] == ["2023-08-14T09:00:00Z", "2023-08-15T01:30:00Z"]
    assert (correction["from_revision"], correction["to_revision"], correction["client_name"]) == (
        1,
        2,
        "national-portal",
    )
    counts = (await quarter(portal))["total"]["counts"]
    assert (counts["resolved_on_time"], counts["resolved_late"]) == (0, 1)

    # The same payload again is a duplicate; an older revision changes nothing; the same
    # revision with another payload is refused.
    assert (await send(portal, late_finish))[0]["status"] == "duplicate"
    assert (await send(portal, finish))[0]["status"] == "duplicate"
    other = {**late_finish, "occurred_at": "2023-08-15T08:45:00+07:00"}
    (refused,) = await send(portal, other)
    assert (refused["status"], refused["problem"]["status"]) == ("error", 422)

    # Withdrawing the finish reopens the dossier; the return then stands as the finish.
    cancel = {**finish, "revision": 3, "cancelled": True}
    assert (await send(portal, cancel))[0]["status"] == "updated"
    reopened = await dossier(portal, "FIX")
    assert (reopened["status"], reopened["finished_at"]) == (10, "2023-08-15T02:00:00Z")
    assert (
        next(e for e in reopened["timeline"] if e["event_id"] == finish["event_id"])["status"] == "cancelled"
    )
    moved = {**finish, "event_id": "FIX-moved", "dossier_code": "OTHER", "revision": 4}
    await send(portal, received("OTHER", "2023-08-07T08:00:00+07:00"))
    assert (await send(portal, {**moved, "event_id": finish["event_id"]}))[0]["problem"]["status"] == 422
    await assert_counters_equal_a_rebuild(app)


async def test_a_cancellation_before_its_event_makes_the_event_a_duplicate(portal: AsyncClient) -> None:
    events = history("CANCEL-FIRST")
    bogus = step("CANCEL-FIRST", "stopped", "2023-08-09T09:00:00+07:00", event_id="bogus")
    results = await send(portal, {**bogus, "revision": 2, "cancelled": True}, *events, bogus)
    assert results[0]["status"] == "updated" and results[-1]["status"] == "duplicate"
    assert (await dossier(portal, "CANCEL-FIRST"))["status"] == 10


async def test_concurrent_batches_on_one_dossier_serialise(app: FastAPI, portal: AsyncClient) -> None:
    events = [
        *history("RACE"),
        step(
            "RACE", "apology_issued", "2023-08-16T09:00:00+07:00", new_return_at="2023-08-20T09:00:00+07:00"
        ),
    ]
    headers = dict(portal.headers)

    async def push(event: dict[str, Any]) -> str:
        async with AsyncClient(
            transport=ASGITransport(app=app), base_url="http://t", headers=headers
        ) as http:
            return str((await send(http, event))[0]["status"])

    outcomes = await asyncio.gather(*(push(event) for event in reversed(events)))
    assert "error" not in outcomes
    await send(portal, *history("CALM"))
    race, calm = await dossier(portal, "RACE"), await dossier(portal, "CALM")
    assert state_of(race) == state_of(calm)
    assert [e["status"] for e in race["timeline"]] == ["applied"] * 7
    await assert_counters_equal_a_rebuild(app)


# --- DongBoHoSoMC ---------------------------------------------------------------------------------


def record(code: str, status: int, **fields: Any) -> dict[str, Any]:
    return {
        "MaHoSo": code,
        "MaTTHC": "1.000894",
        "DonViXuLy": "11680",
        "KenhThucHien": 1,
        "NgayNopHoSo": "20230807075500",
        "NgayTiepNhan": "20230807080000",
        "TrangThaiHoSo": status,
        "TenTTHC": "Đăng ký kết hôn",  # the portal's other fields are accepted and ignored
        **fields,
    }


PAUSE_OPEN = {"HoSoBoSungId": "1", "NgayBoSung": "20230808100000"}
PAUSE_DONE = {**PAUSE_OPEN, "NgayTiepNhanBoSung": "20230811100000"}


async def sync(client: AsyncClient, *records: dict[str, Any], updating: bool = False) -> list[dict[str, Any]]:
    response = await client.post(
        SYNC, json={"service": "DongBoHoSoMC", "isUpdating": updating, "data": list(records)}
    )
    assert response.status_code == 200, response.text
    return list(response.json()["results"])


async def test_records_sent_mid_way_and_final_equal_the_same_dossier_as_events(
    app: FastAPI, portal: AsyncClient
) -> None:
    await send(portal, *history("EVENTS"))
    mid_way = record("RECORD", 5, DanhSachHoSoBoSung=[PAUSE_OPEN])
    assert await sync(portal, mid_way) == [{"MaHoSo": "RECORD", "status": "created", "problem": None}]
    waiting = await dossier(portal, "RECORD")
    assert (waiting["status"], waiting["national_status"], waiting["waiting_supplement"]) == (5, 5, True)

    final = record(
        "RECORD",
        10,
        DanhSachHoSoBoSung=[PAUSE_DONE],
        NgayKetThucXuLy="20230814160000",
        NgayTra="20230815090000",
    )
    assert (await sync(portal, final, updating=True))[0]["status"] == "updated"
    assert (await sync(portal, final, updating=True))[0]["status"] == "unchanged"
    body = await dossier(portal, "RECORD")
    assert state_of(body) == state_of(await dossier(portal, "EVENTS"))
    assert (body["national_status"], body["national_status_vi"]) == (10, "Đã trả kết quả")
    rows = {row["key"]["unit"]: row["counts"] for row in (await quarter(portal))["rows"]}
    assert rows["11680"]["resolved_on_time"] == 2 and rows["11680"]["resolved_late"] == 0
    await assert_counters_equal_a_rebuild(app)

    # A later record that takes the supplement away withdraws its events.
    plain = record("RECORD", 9, NgayKetThucXuLy="20230814160000")
    assert (await sync(portal, plain))[0]["status"] == "updated"
    redone = await dossier(portal, "RECORD")
    assert (redone["supplement_count"], redone["on_time"], redone["status"]) == (0, False, 9)
    assert {e["status"] for e in redone["timeline"] if "bs" in e["event_id"]} == {"cancelled"}
    await assert_counters_equal_a_rebuild(app)


async def test_record_mapping(portal: AsyncClient) -> None:
    results = await sync(
        portal,
        record("R-REFUSED", 3, NgayTuChoi="20230807090000", NgayTiepNhan=""),
        record("R-ONLINE", 2, KenhThucHien=2),
        record("R-MUCDO", 4, KenhThucHien="2", MucDo="3", NgayHenTra="20230830170000"),
        record("R-NEW", 1),
    )
    assert [r["status"] for r in results] == ["created", "created", "created", "unchanged"]
    assert (await dossier(portal, "R-REFUSED"))["status"] == 3
    assert (await dossier(portal, "R-ONLINE"))["online_level"] == "full"  # the procedure's online service
    partial = await dossier(portal, "R-MUCDO")
    assert (partial["online_level"], partial["status"], partial["due_at"]) == (
        "partial",
        4,
        "2023-08-30T10:00:00Z",
    )
    assert (await portal.get("/api/v1/dossiers/R-NEW")).status_code == 404


BAD_RECORDS: list[tuple[str, dict[str, Any], str]] = [
    ("not yyyyMMddHHmmss", record("B1", 2, NgayTiepNhan="2023-08-07 08:00"), "NgayTiepNhan"),
    ("impossible date", record("B2", 2, NgayTiepNhan="20230231080000"), "NgayTiepNhan"),
    ("status outside 1-10", record("B3", 11), "TrangThaiHoSo"),
    ("finished without its date", record("B4", 9), "NgayKetThucXuLy"),
    (
        "supplement back before asked",
        record("B5", 4, DanhSachHoSoBoSung=[{**PAUSE_OPEN, "NgayTiepNhanBoSung": "20230808090000"}]),
        "DanhSachHoSoBoSung.0.NgayTiepNhanBoSung",
    ),
    ("unknown procedure", record("B6", 2, MaTTHC="9.999999"), "MaTTHC"),
    ("unknown unit", record("B7", 2, DonViXuLy="99999"), "DonViXuLy"),
    ("wrong level", record("B8", 2, MaTTHC="2.000001"), "DonViXuLy"),
    ("waiting without an open request", record("B9", 5), "TrangThaiHoSo"),
    ("ended before received", record("B10", 9, NgayKetThucXuLy="20230801080000"), "NgayKetThucXuLy"),
    ("no channel", record("B11", 2, KenhThucHien=None), "KenhThucHien"),
    ("in the future", record("B12", 2, NgayTiepNhan="20991231080000"), "NgayTiepNhan"),
    ("NUL in a code", record("B13\x00", 2), "MaHoSo"),
]


@pytest.mark.parametrize(("case", "bad", "field"), BAD_RECORDS, ids=[c for c, _, _ in BAD_RECORDS])
async def test_bad_records_are_per_record_422s_that_change_nothing(
    portal: AsyncClient, case: str, bad: dict[str, Any], field: str
) -> None:
    results = await sync(portal, bad, record("GOOD", 2))
    assert results[1]["status"] == "created"
    assert results[0]["status"] == "error", case
    problem = results[0]["problem"]
    assert problem["status"] == 422
    assert field in [error["field"] for error in problem["errors"]], problem
    if "\x00" not in bad["MaHoSo"]:
        assert (await portal.get(f"/api/v1/dossiers/{bad['MaHoSo']}")).status_code == 404


async def test_a_contradicting_update_never_half_applies(portal: AsyncClient) -> None:
    await sync(portal, record("HALF", 4))
    before = await dossier(portal, "HALF")
    contradicting = record("HALF", 9, NgayKetThucXuLy="20230810090000", NgayTiepNhan="20230811080000")
    (result,) = await sync(portal, contradicting)
    assert result["status"] == "error"
    assert await dossier(portal, "HALF") == before


async def test_records_respect_the_unit_binding_and_the_body_shape(
    app: FastAPI, portal: AsyncClient, api_key: KeyFactory
) -> None:
    headers = await api_key("dossiers:write", unit="314", name="tien-lang")
    async with AsyncClient(
        transport=ASGITransport(app=app), base_url="http://t", headers=headers
    ) as tien_lang:
        results = await sync(tien_lang, record("KT", 2), record("TL", 2, DonViXuLy="11737"))
    assert [r["problem"]["status"] if r["problem"] else r["status"] for r in results] == [403, "created"]
    for body in ({"service": "Other", "data": [record("X", 2)]}, {"service": "DongBoHoSoMC", "data": []}):
        assert (await portal.post(SYNC, json=body)).status_code == 422
    too_many = {"service": "DongBoHoSoMC", "data": [record(f"M{n}", 2) for n in range(1001)]}
    assert (await portal.post(SYNC, json=too_many)).status_code == 422
    reader = await api_key("dossiers:read")
    assert (
        await portal.post(SYNC, json={"service": "DongBoHoSoMC", "data": [record("Y", 2)]}, headers=reader)
    ).status_code == 403
