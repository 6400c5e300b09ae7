"""DongBoHoSoMC records as portals really send them (SPEC §4): loose optional fields, status 10 that
ends at NgayTra, a HoSoBoSungId repeated within one record — each the record's own affair."""

import json
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from httpx import AsyncClient
from sqlalchemy import func, select

from app.clients.service import get_client_by_name
from app.core.security import Principal
from app.dossiers.bulk import Source, import_file
from app.dossiers.ingestion.work import Ingestion
from app.dossiers.models import Dossier
from tests.conftest import KeyFactory, assert_counters_equal_a_rebuild
from tests.dossiers.conftest import dossier, received, send, step

pytestmark = pytest.mark.usefixtures("world")

SYNC = "/api/v1/sync/dvcqg"
RECEIVED = "20230807080000"
RETURNED = "20230809160000"  # 09:00 UTC, within the 3 working days
RETURNED_UTC = "2023-08-09T09:00:00Z"


def record(code: str, status: int, **fields: Any) -> dict[str, Any]:
    return {
        "MaHoSo": code,
        "MaTTHC": "1.000894",
        "DonViXuLy": "11680",
        "KenhThucHien": 1,
        "NgayNopHoSo": "20230807075500",
        "NgayTiepNhan": RECEIVED,
        "TrangThaiHoSo": status,
        **fields,
    }


def pause(key: Any, asked: str, back: str | None = None) -> dict[str, Any]:
    found: dict[str, Any] = {"HoSoBoSungId": key, "NgayBoSung": asked}
    if back is not None:
        found["NgayTiepNhanBoSung"] = back
    return found


async def post_records(client: AsyncClient, *records: Any) -> list[dict[str, Any]]:
    # As JSON text with \u escapes, so that a lone surrogate can be sent as a portal might.
    body = json.dumps({"service": "DongBoHoSoMC", "isUpdating": True, "data": list(records)})
    response = await client.post(SYNC, content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 200, response.text
    results = list(response.json()["results"])
    assert len(results) == len(records)
    return results


async def unit_counts(client: AsyncClient, unit: str = "11680") -> dict[str, Any]:
    response = await client.get("/api/v1/stats/dossiers", params={"period": "2023-Q3", "group_by": "unit"})
    assert response.status_code == 200, response.text
    rows = {row["key"]["unit"]: row["counts"] for row in response.json()["rows"]}
    return dict(rows.get(unit, {}))


def assert_timeline_explained(body: dict[str, Any]) -> None:
    """A pending or rejected event always says why."""
    for entry in body["timeline"]:
        if entry["status"] in ("pending", "rejected"):
            assert entry["reason"], entry


def fields_of(result: dict[str, Any]) -> list[str]:
    assert result["status"] == "error", result
    problem = result["problem"]
    assert problem["status"] == 422, problem
    return [error["field"] for error in problem["errors"] or []]


# --- (a) TrangThaiHoSo 10 with NgayTra and no NgayKetThucXuLy ---------------------------------------


@pytest.mark.parametrize("finish", ["missing", "", None], ids=["absent", "empty", "null"])
async def test_status_10_without_ngay_ket_thuc_xu_ly_finishes_at_ngay_tra(
    app: FastAPI, portal: AsyncClient, finish: Any
) -> None:
    extra = {} if finish == "missing" else {"NgayKetThucXuLy": finish}
    (result,) = await post_records(portal, record("S10", 10, NgayTra=RETURNED, **extra))
    assert (result["status"], result["problem"]) == ("created", None)

    body = await dossier(portal, "S10")
    assert (body["status"], body["national_status"]) == (10, 10)
    assert (body["finished_at"], body["returned_at"]) == (RETURNED_UTC, RETURNED_UTC)
    assert body["on_time"] is True  # 3 working days from Monday 7 August
    assert_timeline_explained(body)
    counts = await unit_counts(portal)
    assert (counts["received"], counts["resolved"], counts["resolved_on_time"], counts["in_progress"]) == (
        1,
        1,
        1,
        0,
    )
    await assert_counters_equal_a_rebuild(app)

    # Sent again it changes nothing; a later record naming NgayKetThucXuLy moves the finish there.
    assert (await post_records(portal, record("S10", 10, NgayTra=RETURNED, **extra)))[0]["status"] == (
        "unchanged"
    )
    named = record("S10", 10, NgayTra=RETURNED, NgayKetThucXuLy="20230809110000")
    assert (await post_records(portal, named))[0]["status"] == "updated"
    body = await dossier(portal, "S10")
    assert (body["finished_at"], body["returned_at"]) == ("2023-08-09T04:00:00Z", RETURNED_UTC)
    assert_timeline_explained(body)
    await assert_counters_equal_a_rebuild(app)


async def test_status_10_ending_at_ngay_tra_with_a_supplement_and_late(
    app: FastAPI, portal: AsyncClient
) -> None:
    supplemented = record(
        "S10-BS",
        10,
        NgayTra="20230814160000",  # on time: the pause moved the due date
        NgayKetThucXuLy=None,
        DanhSachHoSoBoSung=[pause("7", "20230808100000", "20230811100000")],
    )
    late = record("S10-LATE", 10, NgayTra="20230825090000", NgayKetThucXuLy="")
    assert [r["status"] for r in await post_records(portal, supplemented, late)] == ["created", "created"]
    body = await dossier(portal, "S10-BS")
    assert (body["status"], body["finished_at"], body["supplement_count"]) == (10, "2023-08-14T09:00:00Z", 1)
    assert body["on_time"] is True
    assert_timeline_explained(body)
    assert (await dossier(portal, "S10-LATE"))["on_time"] is False
    counts = await unit_counts(portal)
    assert (counts["resolved"], counts["resolved_late"]) == (2, 1)
    await assert_counters_equal_a_rebuild(app)


STATUS_10_REFUSED: list[tuple[str, dict[str, Any], str]] = [
    ("neither date", record("N1", 10), "NgayKetThucXuLy"),
    ("both empty", record("N2", 10, NgayKetThucXuLy="", NgayTra=""), "NgayKetThucXuLy"),
    ("both null", record("N3", 10, NgayKetThucXuLy=None, NgayTra=None), "NgayKetThucXuLy"),
    ("returned before received", record("N4", 10, NgayTra="20230806090000"), "NgayTra"),
    ("returned in the future", record("N5", 10, NgayTra="20991231090000"), "NgayTra"),
    ("status 9 has no NgayTra fallback", record("N6", 9, NgayTra=RETURNED), "NgayKetThucXuLy"),
    (
        "supplement after NgayTra",
        record("N7", 10, NgayTra=RETURNED, DanhSachHoSoBoSung=[pause("1", "20230811100000")]),
        "DanhSachHoSoBoSung.0.NgayBoSung",
    ),
]


@pytest.mark.parametrize(
    ("case", "bad", "field"), STATUS_10_REFUSED, ids=[c for c, _, _ in STATUS_10_REFUSED]
)
async def test_status_10_still_needs_an_end(
    portal: AsyncClient, case: str, bad: dict[str, Any], field: str
) -> None:
    results = await post_records(portal, bad, record("FINE", 10, NgayTra=RETURNED))
    assert results[1]["status"] == "created", results
    assert field in fields_of(results[0]), (case, results[0])
    assert (await portal.get(f"/api/v1/dossiers/{bad['MaHoSo']}")).status_code == 404


# --- Loose optional fields ------------------------------------------------------------------------

OPTIONAL = (
    "MaTTHC",
    "DonViXuLy",
    "NgayNopHoSo",
    "NgayHenTra",
    "NgayKetThucXuLy",
    "NgayTra",
    "NgayTuChoi",
    "KenhThucHien",
    "MucDo",
    "DanhSachHoSoBoSung",
)


@pytest.mark.parametrize("empty", ["", None], ids=["empty", "null"])
async def test_every_optional_field_takes_empty_and_null_as_absent(portal: AsyncClient, empty: Any) -> None:
    # Status 1 (registered online) needs none of them: each one empty is the same as absent.
    results = await post_records(portal, *(record(f"OPT-{name}", 1, **{name: empty}) for name in OPTIONAL))
    assert [r["status"] for r in results] == ["unchanged"] * len(OPTIONAL), results
    # Status 2 needs MaTTHC, DonViXuLy and KenhThucHien: empty is "missing", a 422 naming it.
    needed = ("MaTTHC", "DonViXuLy", "KenhThucHien")
    results = await post_records(portal, *(record(f"OPT2-{name}", 2, **{name: empty}) for name in OPTIONAL))
    for name, result in zip(OPTIONAL, results, strict=True):
        if name in needed:
            assert name in fields_of(result), result
        else:
            assert result["status"] == "created", (name, result)
    # The supplement request's optional dates too; and the body's isUpdating.
    entry = {"HoSoBoSungId": "1", "NgayBoSung": "20230808100000"}
    loose = [{**entry, "NgayTiepNhanBoSung": empty, "NgayHenTraTruoc": empty, "NgayHenTraMoi": empty}]
    response = await portal.post(
        SYNC,
        json={
            "service": "DongBoHoSoMC",
            "isUpdating": empty,
            "data": [record("OPT-BS", 5, DanhSachHoSoBoSung=loose)],
        },
    )
    assert response.status_code == 200, response.text
    assert response.json()["results"][0]["status"] == "created"
    assert (await dossier(portal, "OPT-BS"))["waiting_supplement"] is True


async def test_strange_values_are_the_records_422_never_a_500(portal: AsyncClient) -> None:
    strange: list[Any] = [
        None,
        [],
        "MaHoSo",
        {"MaHoSo": None, "TrangThaiHoSo": 2},
        {**record("W1", 2), "TrangThaiHoSo": "²"},
        record("W2", 2, KenhThucHien="١"),
        record("W3", 2, NgayTiepNhan="²" * 14),
        record("W4", 2, NgayTiepNhan=20230807080000.0),
        record("W5", 2, NgayTiepNhan="99991231235959"),
        record("W6", 2, MaTTHC="\ud800"),
        record("W7", 2, MucDo=[], KenhThucHien=2),
        record("W8", 4, DanhSachHoSoBoSung=[None]),
        record("W9", 4, DanhSachHoSoBoSung="x"),
        record("W10", 4, DanhSachHoSoBoSung=[{"HoSoBoSungId": None, "NgayBoSung": "20230808100000"}]),
        record("W11", 2, TrangThaiHoSo=10**40),
        record("W12", 2, NgayHenTra="20230807080000"),
        {**record("W13", 2), "MaHoSo": "\ud800"},
    ]
    results = await post_records(portal, *strange, record("W-GOOD", 2))
    assert results[-1]["status"] == "created"
    for value, result in zip(strange, results, strict=False):
        assert result["status"] == "error", (value, result)
        assert result["problem"]["status"] == 422, (value, result)
        assert result["problem"]["errors"], (value, result)
    assert [r["MaHoSo"] for r in results[:5]] == [None, None, None, None, "W1"]
    assert results[len(strange) - 1]["MaHoSo"] is None  # a lone surrogate is not echoed back
    assert fields_of(results[9]) == ["MaTTHC"]
    assert fields_of(results[8]) == ["NgayTiepNhan"]


# --- (b) A HoSoBoSungId repeated within one record -----------------------------------------------------


REPEATED: list[tuple[str, list[dict[str, Any]]]] = [
    ("same id", [pause("1", "20230808100000", "20230809100000"), pause("1", "20230809110000")]),
    ("number and text", [pause(1, "20230808100000", "20230809100000"), pause("1", "20230809110000")]),
    (
        "long ids",
        [pause("x" * 40, "20230808100000", "20230809100000"), pause("x" * 40, "20230809110000")],
    ),
    (
        "three, the last two alike",
        [
            pause("a", "20230808100000", "20230808110000"),
            pause("b", "20230808120000", "20230809100000"),
            pause("b", "20230809110000"),
        ],
    ),
]


@pytest.mark.parametrize(("case", "requests"), REPEATED, ids=[c for c, _ in REPEATED])
async def test_a_repeated_ho_so_bo_sung_id_is_that_records_422(
    app: FastAPI, portal: AsyncClient, case: str, requests: list[dict[str, Any]]
) -> None:
    repeated = record("DUP", 5, DanhSachHoSoBoSung=requests)
    response = await portal.post(
        SYNC, json={"service": "DongBoHoSoMC", "isUpdating": False, "data": [repeated, record("BESIDE", 4)]}
    )
    assert response.status_code == 200, response.text
    bad, good = response.json()["results"]
    assert good == {"MaHoSo": "BESIDE", "status": "created", "problem": None}
    where = f"DanhSachHoSoBoSung.{len(requests) - 1}.HoSoBoSungId"
    assert fields_of(bad) == [where], bad
    assert "HoSoBoSungId" in bad["problem"]["errors"][0]["message"]
    assert (await portal.get("/api/v1/dossiers/DUP")).status_code == 404
    assert (await dossier(portal, "BESIDE"))["status"] == 4

    # The same record whatever its status (1: nothing to store; 3: refused) is refused the same.
    for status in (1, 3, 10):
        again = record(f"DUP-{status}", status, NgayTuChoi="20230807090000", NgayTra="20230818090000")
        again["DanhSachHoSoBoSung"] = requests
        (result,) = await post_records(portal, again)
        assert fields_of(result) == [where], (status, result)

    # A dossier already there keeps its state when a later record repeats an id.
    assert (await post_records(portal, record("DUP", 4)))[0]["status"] == "created"
    before = await dossier(portal, "DUP")
    (result,) = await post_records(portal, repeated)
    assert fields_of(result) == [where]
    assert await dossier(portal, "DUP") == before
    await assert_counters_equal_a_rebuild(app)


# --- (c) the bulk import ----------------------------------------------------------------------------


@pytest.fixture
async def one_stop(app: FastAPI, api_key: KeyFactory) -> Principal:
    """The client the import runs as (`--client one-stop`)."""
    await api_key("dossiers:write", "dossiers:read", name="one-stop")
    async with app.state.sessionmaker() as session:
        client = await get_client_by_name(session, "one-stop")
    return Principal(client.id, client.name, frozenset(client.scopes), client.unit_code)


@pytest.mark.parametrize("chunk_size", [2000, 4], ids=["one-chunk", "chunks-of-4"])
async def test_an_import_of_11_records_loads_the_10_and_rejects_the_repeated_one(
    app: FastAPI, one_stop: Principal, tmp_path: Path, chunk_size: int
) -> None:
    records: list[dict[str, Any]] = [
        record(
            f"IMP-{n:02}",
            10,
            NgayTra=f"202308{10 + n:02}090000",
            NgayKetThucXuLy="" if n % 2 else None,
            MucDo="",
            DanhSachHoSoBoSung=[pause(f"{n}", "20230808100000", "20230809100000")],
        )
        for n in range(11)
    ]
    records[6]["DanhSachHoSoBoSung"] = [
        pause("6", "20230808100000", "20230809100000"),
        pause("6", "20230809110000", "20230809120000"),
    ]
    path = tmp_path / "records.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))

    def ingestion_of(session: Any) -> Ingestion:
        return Ingestion(session, one_stop, app.state.calendar, app.state.settings.secret_key)

    source = Source.of(path)
    done = await import_file(app.state.sessionmaker, ingestion_of, source, chunk_size=chunk_size)

    assert (done.kind, done.lines_done) == ("records", 11)
    assert (done.outcomes["created"], done.outcomes["error"]) == (10, 1)
    (rejected,) = [json.loads(line) for line in source.rejects.read_text().splitlines()]
    assert rejected["line"] == 7
    assert [e["field"] for e in rejected["problem"]["errors"]] == ["DanhSachHoSoBoSung.1.HoSoBoSungId"]
    async with app.state.sessionmaker() as session:
        codes = set(await session.scalars(select(Dossier.code)))
        finished = await session.scalar(select(func.count()).where(Dossier.finished_at.is_not(None)))
    assert codes == {f"IMP-{n:02}" for n in range(11) if n != 6}
    assert finished == 10
    await assert_counters_equal_a_rebuild(app)


async def test_a_part_id_taken_by_an_event_of_another_dossier_fails_that_record_only(
    portal: AsyncClient,
) -> None:
    """An event sent with the id a record's part takes, under another dossier: the record's own
    problem, never the request's 409 for ever."""
    taken = {
        "event_id": "dvcqg:CLASH#received",
        "dossier_code": "OTHER",
        "type": "received",
        "occurred_at": "2023-08-07T08:00:00+07:00",
        "procedure_code": "1.000894",
        "unit_code": "11680",
        "channel": "direct",
    }
    response = await portal.post("/api/v1/dossier-events/batch", json={"events": [taken]})
    assert response.status_code == 200, response.text
    assert response.json()["results"][0]["status"] == "created"
    clash, fine = await post_records(portal, record("CLASH", 4), record("NO-CLASH", 4))
    assert fine["status"] == "created", fine
    assert clash["status"] == "error" and clash["problem"]["status"] == 409, clash
    assert "OTHER" in clash["problem"]["detail"]
    assert (await portal.get("/api/v1/dossiers/CLASH")).status_code == 404


async def test_a_further_request_while_waiting_is_an_open_entry_before_the_next(
    app: FastAPI, portal: AsyncClient
) -> None:
    """SPEC §3: a further request while the dossier waits counts, and the pause runs on from the
    first request until papers come back; in a record, the first entry has no NgayTiepNhanBoSung."""
    events = [
        received("EV-AGAIN", "2023-08-07T08:00:00+07:00", channel="direct"),
        step("EV-AGAIN", "processing", "2023-08-07T08:00:00+07:00"),
        step("EV-AGAIN", "supplement_requested", "2023-08-08T10:00:00+07:00"),
        step("EV-AGAIN", "supplement_requested", "2023-08-09T10:00:00+07:00"),
        step("EV-AGAIN", "supplement_received", "2023-08-11T10:00:00+07:00"),
        step("EV-AGAIN", "resolved", "2023-08-14T16:00:00+07:00"),
        step("EV-AGAIN", "returned", "2023-08-14T16:00:00+07:00"),
    ]
    assert "error" not in {r["status"] for r in await send(portal, *events)}
    waiting = record(
        "RE-AGAIN",
        5,
        DanhSachHoSoBoSung=[pause("1", "20230808100000"), pause("2", "20230809100000")],
    )
    assert (await post_records(portal, waiting))[0]["status"] == "created"
    assert (await dossier(portal, "RE-AGAIN"))["waiting_supplement"] is True
    final = record(
        "RE-AGAIN",
        10,
        NgayTra="20230814160000",
        DanhSachHoSoBoSung=[pause("1", "20230808100000"), pause("2", "20230809100000", "20230811100000")],
    )
    assert (await post_records(portal, final))[0]["status"] == "updated"
    body, twin = await dossier(portal, "RE-AGAIN"), await dossier(portal, "EV-AGAIN")
    keys = ("status", "due_at", "finished_at", "returned_at", "on_time", "supplement_count")
    assert {k: body[k] for k in keys} == {k: twin[k] for k in keys}
    assert (body["supplement_count"], body["on_time"]) == (2, False)  # two requests: late (766 rule)
    assert_timeline_explained(body)
    await assert_counters_equal_a_rebuild(app)

    # Still refused: a request asked before the one before it, or one back before it was asked.
    backwards = record(
        "RE-BACK",
        4,
        DanhSachHoSoBoSung=[pause("1", "20230809100000"), pause("2", "20230808100000", "20230811100000")],
    )
    (result,) = await post_records(portal, backwards)
    assert fields_of(result) == ["DanhSachHoSoBoSung.1.NgayBoSung"]
