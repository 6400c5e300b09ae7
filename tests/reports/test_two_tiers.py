"""Levels as they exist in the period: since 1 July 2025 Vietnam has provinces and communes only, so
a report on a later period has no district level anywhere, and one spanning that day shows it with
a note (issue 30)."""

import io

import pytest
from docx import Document
from httpx import AsyncClient
from openpyxl import load_workbook

from app.calendar.periods import Scheme, parse_period
from app.reports.service import levels_in_force, spans_the_reform
from tests.dossiers.conftest import portal, received, send, step, world  # noqa: F401
from tests.reports.test_reform_report import REPORT

NEW_COMMUNE = {
    "code": "11690",
    "name": "Xã Kiến Thụy",
    "level": "commune",
    "parent_code": "31",
    "valid_from": "2025-07-01",
}
NOTE = "Từ ngày 01/07/2025, chính quyền địa phương được tổ chức theo mô hình hai cấp"


@pytest.fixture
async def two_tier_year(writer: AsyncClient, portal: AsyncClient) -> None:  # noqa: F811
    """A district dossier in May 2025 and a commune dossier in August 2025, in Hải Phòng (31)."""
    assert (await writer.post("/api/v1/units", json=NEW_COMMUNE)).status_code == 201
    await send(
        portal,
        received("D-2025", "2025-05-05T09:00:00+07:00", procedure="2.000001", unit="313", channel="direct"),
        step("D-2025", "resolved", "2025-05-07T09:00:00+07:00"),
        received("C-2025", "2025-08-04T09:00:00+07:00", unit="11690"),
        step("C-2025", "resolved", "2025-08-05T09:00:00+07:00"),
    )


def docx_text(content: bytes) -> str:
    document = Document(io.BytesIO(content))
    parts = [paragraph.text for paragraph in document.paragraphs]
    parts += [cell.text for table in document.tables for row in table.rows for cell in row.cells]
    return "\n".join(parts)


def xlsx_text(content: bytes) -> str:
    workbook = load_workbook(io.BytesIO(content))
    return "\n".join(
        str(cell) for sheet in workbook for row in sheet.iter_rows(values_only=True) for cell in row if cell
    )


async def every_format(client: AsyncClient, period: str) -> dict[str, str]:
    texts = {}
    for format in ("markdown", "html", "xlsx", "docx"):
        response = await client.get(REPORT, params={"unit": "31", "period": period, "format": format})
        assert response.status_code == 200, response.text
        texts[format] = (
            xlsx_text(response.content)
            if format == "xlsx"
            else docx_text(response.content)
            if format == "docx"
            else response.text
        )
    return texts


@pytest.mark.usefixtures("two_tier_year")
async def test_a_period_after_the_reform_has_no_district_level(client: AsyncClient) -> None:
    for format, text in (await every_format(client, "2025-Q3")).items():
        assert "huyện" not in text.lower(), format  # no column, row, sentence or chart series
        assert "cấp xã" in text.lower() and "cấp tỉnh" in text.lower(), format
        assert NOTE not in text, format
    markdown = (await every_format(client, "2025-Q3"))["markdown"]
    assert "Trong quý III năm 2025, cấp xã tiếp nhận tổng số hồ sơ là 01 hồ sơ" in markdown


@pytest.mark.usefixtures("two_tier_year")
async def test_a_period_spanning_the_reform_shows_both_with_a_note(client: AsyncClient) -> None:
    for format, text in (await every_format(client, "2025")).items():
        assert "cấp huyện" in text.lower(), format
        if format != "xlsx":  # the workbook is tables only
            assert NOTE in text, format
    # Before the reform, three levels and no note.
    for format, text in (await every_format(client, "2025-Q2")).items():
        assert "cấp huyện" in text.lower() and NOTE not in text, format
    # The charts of a year's page: a district series, with no bar in the quarters after June 2025.
    page = await client.get(REPORT, params={"unit": "31", "period": "2025", "format": "html"})
    assert "Cấp huyện" in page.text


@pytest.mark.parametrize(
    ("period", "levels", "spans"),
    [
        ("2025-Q2", ("province", "district", "commune"), False),
        ("2025-06", ("province", "district", "commune"), False),
        ("2025-Q3", ("province", "commune"), False),
        ("2025-07", ("province", "commune"), False),
        ("2025-H2", ("province", "commune"), False),
        ("2025", ("province", "district", "commune"), True),
        ("2025-H1", ("province", "district", "commune"), False),
    ],
)
def test_levels_in_force(period: str, levels: tuple[str, ...], spans: bool) -> None:
    chosen = parse_period(period, Scheme.calendar)
    assert levels_in_force(chosen) == levels
    assert spans_the_reform(chosen) is spans
