"""Hostile strings, forged cursors, extreme dates and oversized cells: a 422 that changes nothing,
never a 500."""

from typing import Any

import pytest
from httpx import AsyncClient

from tests.dossiers.conftest import received, send
from tests.procedures.conftest import procedure

pytestmark = pytest.mark.usefixtures("world")


def assert_problem(response: Any, status: int = 422) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    return dict(response.json())


@pytest.mark.parametrize(
    "text", ["Xã\u0000Mới", "Xã\u0007Mới", "\u001b[31mXã", "Xã\u007f", "Xã\bMới", "Xã\fMới"]
)
async def test_control_characters_in_a_body_are_422(writer: AsyncClient, text: str) -> None:
    unit = {"code": "99001", "name": text, "level": "commune", "parent_code": "313", "valid_to": "2025-06-30"}
    problem = assert_problem(await writer.post("/api/v1/units", json=unit))
    assert problem["errors"][0]["type"] == "control_character"
    assert (await writer.get("/api/v1/units/99001")).status_code == 404
    # Tabs and line breaks are text; an escaped backslash before "u0000" or "b" is text too.
    fine = {**unit, "name": "Xã\tMới\\u0000\\b"}
    assert (await writer.post("/api/v1/units", json=fine)).status_code == 201


@pytest.mark.parametrize(
    "url",
    [
        "/api/v1/units?q=%00",
        "/api/v1/procedures/search?q=k%C3%AA%00t",
        "/api/v1/units/31%00",
        "/api/v1/stats/dossiers?unit=31%1F&period=2023",
    ],
)
async def test_control_characters_in_a_url_are_422(client: AsyncClient, url: str) -> None:
    assert_problem(await client.get(url))


async def test_a_nul_inside_a_batch_fails_its_event_only(portal: AsyncClient) -> None:
    bad = received("NUL", "2023-08-07T09:00:00+07:00", event_id="a\u0000b")
    worse = received("NUL\u0000", "2023-08-07T09:00:00+07:00")
    good = received("FINE", "2023-08-07T09:00:00+07:00")
    results = await send(portal, bad, worse, good)
    assert [r["status"] for r in results] == ["error", "error", "created"]
    assert {r["problem"]["status"] for r in results if r["problem"]} == {422}
    assert (await portal.get("/api/v1/dossiers/NUL")).status_code == 404
    # A lone event is its request: refused at the edge.
    assert_problem(await portal.post("/api/v1/dossier-events", json=bad))


async def test_deep_json_is_422(writer: AsyncClient) -> None:
    nested: Any = "x"
    for _ in range(200):
        nested = [nested]
    assert_problem(await writer.post("/api/v1/units", json={"code": "1", "name": nested}))


async def test_tampered_cursors_are_422(client: AsyncClient, portal: AsyncClient) -> None:
    first = (await client.get("/api/v1/units", params={"limit": 1})).json()
    cursor = first["next_cursor"]
    assert (await client.get("/api/v1/units", params={"limit": 1, "cursor": cursor})).status_code == 200
    body, _, signature = cursor.partition(".")
    forged = [
        body + "." + signature[::-1],
        body[:-2] + "AA." + signature,
        "WzFlMTAwXQ",  # [1e100], unsigned
        "Wzk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5XQ.AAAAAAAAAAAAAAAA",
        ".",
    ]
    for bad in forged:
        for url in ("/api/v1/units", "/api/v1/procedures", "/api/v1/sectors"):
            assert_problem(await client.get(url, params={"cursor": bad}))
    for url in ("/api/v1/dossiers", "/api/v1/dossier-events?pending=true"):
        assert_problem(await portal.get(url, params={"cursor": forged[3]}))


@pytest.mark.parametrize("day", ["0001-01-01", "9999-12-31", "1899-12-31", "2201-01-01"])
async def test_dates_outside_1900_2200_are_422(writer: AsyncClient, portal: AsyncClient, day: str) -> None:
    assert_problem(await writer.get("/api/v1/stats/dossiers", params={"from": day, "to": "2023-12-31"}))
    assert_problem(await writer.get("/api/v1/stats/dossiers", params={"from": "2023-01-01", "to": day}))
    assert_problem(await portal.get("/api/v1/dossiers", params={"received_from": day}))
    unit = {"code": "99002", "name": "Xã", "level": "commune", "parent_code": "313", "valid_from": day}
    assert_problem(await writer.post("/api/v1/units", json=unit))
    etag = (await writer.get("/api/v1/procedures/1.000894")).headers["etag"]
    change = {"name": "Đổi tên", "in_force_from": day}
    assert_problem(await writer.patch("/api/v1/procedures/1.000894", json=change, headers={"If-Match": etag}))
    results = await send(
        portal,
        received("EXTREME", f"{day}T09:00:00+07:00"),
        received("FINE", "2023-08-07T09:00:00+07:00"),
        received("DUE", "2023-08-07T09:00:00+07:00", due_at=f"{day}T09:00:00+07:00"),
    )
    assert [r["status"] for r in results] == ["error", "created", "error"]
    assert {r["problem"]["status"] for r in results if r["problem"]} == {422}


async def test_processing_times_no_procedure_has_are_422(writer: AsyncClient) -> None:
    for value, unit in (
        (10000, "working_days"),
        (366, "working_days"),
        (3000, "working_hours"),
        (731, "days"),
    ):
        body = procedure("9.000009", "Thủ tục dài", processing_time={"value": value, "unit": unit})
        assert_problem(await writer.post("/api/v1/procedures", json=body))
    body = procedure("9.000009", "Thủ tục dài", processing_time={"value": 365, "unit": "working_days"})
    assert (await writer.post("/api/v1/procedures", json=body)).status_code == 201


async def test_oversized_and_nested_csv_cells_are_422(writer: AsyncClient) -> None:
    header = "code,name,sector_code,levels,channels,processing_time_value,processing_time_unit,fees\r\n"
    huge = "1.9,Đăng ký," + "x" * (200 * 1024) + ",commune,direct,3,working_days,\r\n"
    deep = '1.8,Khai sinh,ho-tich,commune,direct,3,working_days,"' + "[" * 5000 + "]" * 5000 + '"\r\n'
    for body in (
        header + huge,
        header + deep,
        header + "1.7,Khai\x00sinh,ho-tich,commune,direct,3,working_days,\r\n",
    ):
        response = await writer.post(
            "/api/v1/procedures/import", content=body.encode(), headers={"content-type": "text/csv"}
        )
        assert_problem(response)
        files = {"file": ("catalogue.csv", body.encode(), "text/csv")}
        assert_problem(await writer.post("/api/v1/procedures/import", files=files))
    assert (await writer.get("/api/v1/procedures/1.9")).status_code == 404


async def test_a_cursor_is_good_for_its_own_list_only(writer: AsyncClient) -> None:
    cursor = (await writer.get("/api/v1/units", params={"limit": 1})).json()["next_cursor"]
    for url in ("/api/v1/clients", "/api/v1/audit", "/api/v1/proposals", "/api/v1/sectors"):
        assert_problem(await writer.get(url, params={"cursor": cursor}))
