"""Import (all or nothing) and export (streamed CSV and JSON) that round-trip."""

import csv
import io
import json
from typing import Any

import pytest
from httpx import AsyncClient

from app.procedures.exchange import CSV_LABELS_VI
from tests.procedures.conftest import procedure

PROCEDURES = "/api/v1/procedures"


def many(count: int) -> list[dict[str, Any]]:
    names = ["Đăng ký kết hôn", "Cấp bản sao trích lục", "Chứng thực chữ ký", "Đăng ký khai tử"]
    return [
        procedure(
            f"1.{number:06d}",
            f"{names[number % len(names)]} {number}",
            sector_code=["ho-tich", "tu-phap"][number % 2],
            fees=[
                {"name": 'Lệ phí, "đặc biệt"; có dấu', "amount_vnd": number * 1000, "note": "Dòng 1\nDòng 2"}
            ],
            description=None if number % 3 else 'Mô tả; có dấu phẩy, và "ngoặc"',
        )
        for number in range(count)
    ]


async def all_codes(client: AsyncClient) -> list[str]:
    return [p["code"] for p in (await client.get(PROCEDURES, params={"limit": 500})).json()["items"]]


async def export_csv(client: AsyncClient, **params: Any) -> bytes:
    response = await client.get(f"{PROCEDURES}/export", params={"format": "csv", **params})
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    return response.content


@pytest.mark.usefixtures("sectors")
async def test_csv_round_trip(writer: AsyncClient, client: AsyncClient) -> None:
    created = await writer.post(f"{PROCEDURES}/import", json=many(300))
    assert created.status_code == 200, created.text
    assert created.json() == {"created": 300, "updated": 0, "unchanged": 0, "errors": []}

    exported = await export_csv(client)
    assert exported.startswith("\ufeff".encode())
    rows = list(csv.DictReader(io.StringIO(exported.decode("utf-8-sig"))))
    assert len(rows) == 300
    assert rows[1]["name"] == "Cấp bản sao trích lục 1"
    assert rows[0]["levels"] == "commune" and rows[0]["channels"] == "direct;online"

    again = await writer.post(f"{PROCEDURES}/import", content=exported, headers={"content-type": "text/csv"})
    assert again.json() == {"created": 0, "updated": 0, "unchanged": 300, "errors": []}
    assert await export_csv(client) == exported


@pytest.mark.usefixtures("sectors")
async def test_csv_with_vietnamese_labels_imports_back(writer: AsyncClient, client: AsyncClient) -> None:
    await writer.post(f"{PROCEDURES}/import", json=many(4))
    names = (await export_csv(client)).decode("utf-8-sig")
    vietnamese = (await export_csv(client, labels="vi")).decode("utf-8-sig")
    header, _, rows = vietnamese.partition("\r\n")
    assert next(csv.reader([header])) == list(CSV_LABELS_VI.values())
    assert header.startswith("Mã thủ tục,Tên thủ tục,") and rows == names.partition("\r\n")[2]
    again = await writer.post(
        f"{PROCEDURES}/import", content=vietnamese.encode(), headers={"content-type": "text/csv"}
    )
    assert again.json() == {"created": 0, "updated": 0, "unchanged": 4, "errors": []}


@pytest.mark.usefixtures("sectors")
async def test_a_file_with_the_old_second_header_row_imports(
    writer: AsyncClient, client: AsyncClient
) -> None:
    # Spreadsheets kept from the days of two header rows (names, then the Vietnamese terms).
    await writer.post(f"{PROCEDURES}/import", json=many(2))
    header, _, rows = (await export_csv(client)).decode("utf-8-sig").partition("\r\n")
    labels = ",".join(f'"{label}"' for label in CSV_LABELS_VI.values())
    two_rows = f"{header}\r\n{labels}\r\n{rows.replace('Đăng ký kết hôn 0', '')}"
    response = await writer.post(
        f"{PROCEDURES}/import", content=two_rows.encode(), headers={"content-type": "text/csv"}
    )
    # Both header rows are row 0: the blanked name is on row 1.
    assert [(e["row"], e["field"]) for e in response.json()["errors"]] == [(1, "name")]
    fixed = two_rows.replace(",,ho-tich,", ",Đăng ký kết hôn 0,ho-tich,", 1)
    response = await writer.post(
        f"{PROCEDURES}/import", content=fixed.encode(), headers={"content-type": "text/csv"}
    )
    assert response.json() == {"created": 0, "updated": 0, "unchanged": 2, "errors": []}


@pytest.mark.usefixtures("sectors")
async def test_csv_upload_as_a_file_creates_and_updates(writer: AsyncClient, client: AsyncClient) -> None:
    await writer.post(f"{PROCEDURES}/import", json=many(3))
    text = (await export_csv(client)).decode("utf-8-sig")
    changed = text.replace("Chứng thực chữ ký 2", "Chứng thực chữ ký (sửa) 2")
    extra = procedure("2.000001", "Đăng ký thường trú", channels=["direct"])
    body = changed + (
        f"2.000001,{extra['name']},ho-tich,commune,,,direct,3,working_days,,none,,,,active,,,\r\n"
    )
    files = {"file": ("catalogue.csv", body.encode("utf-8-sig"), "text/csv")}
    result = await writer.post(f"{PROCEDURES}/import", files=files)
    assert result.status_code == 200, result.text
    assert result.json() == {"created": 1, "updated": 1, "unchanged": 2, "errors": []}
    updated = (await client.get(f"{PROCEDURES}/1.000002")).json()
    assert (updated["name"], updated["version"]) == ("Chứng thực chữ ký (sửa) 2", 2)
    found = (await client.get(PROCEDURES, params={"q": "dang ky thuong tru"})).json()["items"]
    assert [p["code"] for p in found] == ["2.000001"]


@pytest.mark.usefixtures("sectors")
async def test_import_with_one_bad_row_changes_nothing_and_names_row_and_field(writer: AsyncClient) -> None:
    rows = many(5)
    rows[2]["fees"] = [{"name": "Lệ phí", "amount_vnd": -10}]
    rows[4]["sector_code"] = "khong-co"
    rows.append(dict(rows[0]))
    response = await writer.post(f"{PROCEDURES}/import", json=rows)
    assert response.status_code == 422
    errors = [(e["row"], e["field"], e["type"]) for e in response.json()["errors"]]
    assert errors == [
        (3, "fees.0.amount_vnd", "greater_than_equal"),
        (5, "sector_code", "unknown_reference"),
        (6, "code", "duplicate"),
    ]
    assert await all_codes(writer) == []


@pytest.mark.usefixtures("sectors")
async def test_bad_csv_rows_are_reported(writer: AsyncClient) -> None:
    header = "code,name,sector_code,levels,channels,processing_time_value,processing_time_unit,fees\r\n"
    body = (
        header
        + "1.1,Đăng ký kết hôn,ho-tich,commune,direct,3,working_days,\r\n"
        + "1.2,,ho-tich,commune,direct,3,working_days,\r\n"
        + "1.3,Khai sinh,ho-tich,commune,direct,0,working_days,\r\n"
        + '1.4,Khai tử,ho-tich,commune,direct,3,working_days,"[{""name"": ""x"""\r\n'
        + "1.5,Khai tử,ho-tich,commune,direct,3,fortnights,\r\n"
    )
    response = await writer.post(
        f"{PROCEDURES}/import", content=body.encode(), headers={"content-type": "text/csv"}
    )
    assert response.status_code == 422
    errors = {(e["row"], e["field"]) for e in response.json()["errors"]}
    assert errors == {(2, "name"), (3, "processing_time.value"), (4, "fees"), (5, "processing_time.unit")}
    assert await all_codes(writer) == []


@pytest.mark.parametrize(
    ("content", "content_type", "status"),
    [
        (b'{"code": "1"}', "application/json", 422),
        (b"[1, 2", "application/json", 422),
        (b"\xff\xfe\x00", "text/csv", 422),
        (b"code;name\n", "application/xml", 415),
        (b"nothing,here\r\n1,2\r\n", "text/csv", 422),
    ],
)
async def test_unreadable_uploads(
    writer: AsyncClient, content: bytes, content_type: str, status: int
) -> None:
    response = await writer.post(
        f"{PROCEDURES}/import", content=content, headers={"content-type": content_type}
    )
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"


@pytest.mark.usefixtures("catalogue")
async def test_json_export_round_trips_and_honours_filters(writer: AsyncClient, client: AsyncClient) -> None:
    response = await client.get(f"{PROCEDURES}/export", params={"format": "json"})
    assert response.status_code == 200
    exported = json.loads(response.content)
    assert [p["code"] for p in exported] == await all_codes(client)
    assert "version" not in exported[0]
    result = await writer.post(f"{PROCEDURES}/import", json=exported)
    assert result.json()["unchanged"] == len(exported)

    filtered = json.loads(
        (await client.get(f"{PROCEDURES}/export", params={"format": "json", "sector": "tu-phap"})).content
    )
    assert [p["code"] for p in filtered] == ["2.000908"]
    empty = await export_csv(client, sector="none")
    assert empty.decode("utf-8-sig").count("\r\n") == 1


@pytest.mark.usefixtures("sectors")
async def test_import_is_audited_per_procedure(writer: AsyncClient) -> None:
    await writer.post(f"{PROCEDURES}/import", json=many(3))
    records = (await writer.get("/api/v1/audit", params={"resource_type": "procedure"})).json()["items"]
    assert sorted((r["action"], r["resource_id"]) for r in records) == [
        ("create", "1.000000"),
        ("create", "1.000001"),
        ("create", "1.000002"),
    ]
