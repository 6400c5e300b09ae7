"""No text from the catalogue becomes a live formula in an export (OWASP "CSV injection")."""

import csv
import io

from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient
from openpyxl import load_workbook

from app.core.export import FORMULA_STARTS
from tests.conftest import KeyFactory
from tests.proposals.test_proposals import move, procedure, proposal

EVIL_SECTOR = '=HYPERLINK("http://evil.example","Tư pháp")'
EVIL_NAMES = ["=1+2", "+SUM(A1)", "-2+3", "@cmd", "\tTab", "\rCR"]


async def test_exports_neutralise_formula_cells(
    app: FastAPI, writer: AsyncClient, api_key: KeyFactory
) -> None:
    for unit in (
        {"code": "31", "name": "Hải Phòng", "level": "province"},
        {
            "code": "313",
            "name": "=Kiến Thụy",
            "level": "district",
            "parent_code": "31",
            "valid_to": "2025-06-30",
        },
    ):
        assert (await writer.post("/api/v1/units", json=unit)).status_code == 201
    assert (
        await writer.post("/api/v1/sectors", json={"code": "evil", "name": EVIL_SECTOR})
    ).status_code == 201
    for number, name in enumerate(EVIL_NAMES):
        body = procedure(f"P-{number}", "evil", ["district"]) | {"name": name}
        assert (await writer.post("/api/v1/procedures", json=body)).status_code == 201, name
    headers = await api_key("proposals:write", unit="313", name="kien-thuy")
    async with AsyncClient(
        transport=ASGITransport(app=app), base_url="http://t", headers=headers
    ) as district:
        made = await district.post("/api/v1/proposals", json=proposal("simplify", code="P-0"))
        assert made.status_code == 201, made.text
        await move(district, made.json()["id"], "submitted", occurred_at="2023-07-10T09:00:00+07:00")

    exported = await writer.get("/api/v1/procedures/export", params={"format": "csv"})
    cells = [cell for row in csv.reader(io.StringIO(exported.text.removeprefix("\ufeff"))) for cell in row]
    assert not [cell for cell in cells if cell.startswith(FORMULA_STARTS)]
    assert "'=1+2" in cells
    # The export still round-trips: importing it gives the names back.
    again = await writer.post(
        "/api/v1/procedures/import", content=exported.content, headers={"content-type": "text/csv"}
    )
    assert again.status_code == 200, again.text
    assert (await writer.get("/api/v1/procedures/P-0")).json()["name"] == "=1+2"

    report = await writer.get(
        "/api/v1/reports/reform", params={"unit": "313", "period": "2023-Q3", "format": "xlsx"}
    )
    assert report.status_code == 200, report.text
    workbook = load_workbook(io.BytesIO(report.content))
    texts = [
        cell for sheet in workbook for row in sheet.iter_rows() for cell in row if cell.value is not None
    ]
    assert [cell.coordinate for cell in texts if cell.data_type == "f"] == []
    strings = [cell.value for cell in texts if isinstance(cell.value, str)]
    assert not [value for value in strings if value.startswith(FORMULA_STARTS)]
    assert any("HYPERLINK" in value for value in strings)  # the sector is there, as text

    stats = await writer.get(
        "/api/v1/stats/proposals",
        params={"unit": "313", "period": "2023", "group_by": "sector", "format": "csv"},
    )
    if stats.status_code == 200 and stats.headers["content-type"].startswith("text/csv"):
        rows = list(csv.reader(io.StringIO(stats.text.removeprefix("\ufeff"))))
        assert not [cell for row in rows for cell in row if cell.startswith(FORMULA_STARTS)]
