"""The quarterly reform report, generated from the data of Kiến Thụy's press release."""

import io

import pytest
from httpx import AsyncClient
from openpyxl import load_workbook

from app.reports.router import XLSX

REPORT = "/api/v1/reports/reform"
QUARTER = {"unit": "313", "period": "2023-Q3"}

# As the press release prints them (shared/reference/kien-thuy-2023-q3-report.txt).
REFERENCE_FIGURES = [
    "1.473 hồ sơ",
    "1.463",
    "10 hồ sơ chuyển sang từ kỳ trước",
    "99,46%",
    "19.497",
    "99,94%",
    "1.462",
    "99,25%",
    "553",
    "909",
    "18.762",
    "96,23%",
    "16.509",
    "2.253",
    "21 thủ tục",
    "09 thủ tục",
    "03 thủ tục",
]


@pytest.mark.usefixtures("kien_thuy")
async def test_the_reference_report_in_markdown_html_and_xlsx(client: AsyncClient) -> None:
    response = await client.get(REPORT, params=QUARTER)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/markdown; charset=utf-8"
    text = response.text
    missing = [figure for figure in REFERENCE_FIGURES if figure not in text]
    assert not missing, text
    # The reference's sentences, figure for figure.
    assert (
        "cấp huyện tiếp nhận tổng số hồ sơ là 1.473 hồ sơ (gồm 1.463 hồ sơ tiếp nhận trong kỳ, 10 hồ sơ "
        "chuyển sang từ kỳ trước), trong đó: giải quyết đúng hạn là 1.465 hồ sơ (đạt tỷ lệ 99,46%), giải "
        "quyết quá hạn là 03 hồ sơ, đang giải quyết là 05 hồ sơ." in text
    )
    assert "Cấp xã tiếp nhận tổng số hồ sơ là 19.497 hồ sơ" in text
    assert "giải quyết đúng hạn là 19.486 hồ sơ (đạt tỷ lệ 99,94%), giải quyết quá hạn là 09 hồ sơ" in text
    assert "Tổng số hồ sơ trực tuyến cấp huyện là 1.462 hồ sơ (đạt tỷ lệ 99,25%)" in text
    assert "mức độ 3 (một phần) là 16.509 hồ sơ, mức độ 4 (toàn trình) là 2.253 hồ sơ." in text
    assert (
        "Năm 2023, huyện Kiến Thụy đã đề xuất phương án đơn giản hóa 21 thủ tục hành chính (trong đó có "
        "19 thủ tục cấp huyện, 02 thủ tục cấp xã): 08 thủ tục thuộc lĩnh vực nội vụ; 05 thủ tục thuộc lĩnh "
        "vực Tư pháp; 04 thủ tục" in text
    )
    assert "đề xuất bãi bỏ 09 thủ tục hành chính (trong đó có 09 thủ tục cấp huyện): 04 thủ tục thuộc" in text
    assert "03 thủ tục (trong đó có 03 thủ tục cấp huyện): 03 thủ tục thuộc lĩnh vực Tư pháp." in text
    assert "không nhận được ý kiến phản ánh, kiến nghị" in text
    assert "quý III năm 2023" in text

    page = await client.get(REPORT, params=QUARTER, headers={"Accept": "text/html"})
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert all(figure in page.text for figure in REFERENCE_FIGURES)
    assert page.text.count("<svg") == 2 and 'class="bar"' in page.text
    assert "<script" not in page.text

    sheet = await client.get(REPORT, params={**QUARTER, "format": "xlsx"})
    assert sheet.headers["content-type"] == XLSX
    workbook = load_workbook(io.BytesIO(sheet.content))
    assert workbook.sheetnames == [
        "Phương án cải cách",
        "Giải quyết hồ sơ",
        "Hồ sơ trực tuyến",
        "Phản ánh kiến nghị",
    ]
    dossiers = [list(row) for row in workbook["Giải quyết hồ sơ"].iter_rows(values_only=True)]
    assert dossiers[0][:3] == ["Cấp", "Tổng số hồ sơ", "Tiếp nhận trong kỳ"]
    assert dossiers[1] == ["Cấp huyện", 1473, 1463, 10, 1465, 99.46, 3, 5]
    assert dossiers[2] == ["Cấp xã", 19497, 19460, 37, 19486, 99.94, 9, 2]
    online = [list(row) for row in workbook["Hồ sơ trực tuyến"].iter_rows(values_only=True)]
    assert online[1] == ["Cấp huyện", 1462, 99.25, 553, 909]
    proposals = [list(row) for row in workbook["Phương án cải cách"].iter_rows(values_only=True)]
    assert ["Đơn giản hóa", "Tổng", "", 21] in [[*row[:2], row[2] or "", row[3]] for row in proposals]


@pytest.mark.usefixtures("kien_thuy")
async def test_the_report_is_revalidated_by_etag(client: AsyncClient) -> None:
    first = await client.get(REPORT, params=QUARTER)
    again = await client.get(REPORT, params=QUARTER, headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304
    other = await client.get(
        REPORT, params={**QUARTER, "format": "html"}, headers={"If-None-Match": first.headers["etag"]}
    )
    assert other.status_code == 200


async def test_a_unit_without_data_gets_a_report_that_says_so(
    client: AsyncClient, writer: AsyncClient
) -> None:
    unit = {"code": "31", "name": "Thành phố Hải Phòng", "level": "province"}
    assert (await writer.post("/api/v1/units", json=unit)).status_code == 201
    text = (await client.get(REPORT, params={"unit": "31", "period": "2024-07"})).text
    assert "tháng 7 năm 2024" in text
    assert "chưa tiếp nhận hồ sơ thủ tục hành chính nào" in text
    assert "chưa đề xuất phương án" in text
    page = await client.get(REPORT, params={"unit": "31", "period": "2024", "format": "html"})
    assert page.status_code == 200 and 'class="bar"' not in page.text


@pytest.mark.parametrize(
    ("params", "headers", "status"),
    [
        ({"unit": "nowhere", "period": "2023-Q3"}, {}, 404),
        ({"unit": "31", "period": "2023-Q5"}, {}, 422),
        ({"unit": "31"}, {}, 422),
        ({"period": "2023-Q3"}, {}, 422),
        ({"unit": "31", "period": "2023-Q3"}, {"Accept": "application/json"}, 406),
        ({"unit": "31", "period": "2023-Q3"}, {"Accept": "text/html;q=0, text/markdown;q=0"}, 406),
        ({"unit": "31", "period": "2023-Q3", "format": "pdf"}, {}, 406),
    ],
)
async def test_bad_requests(
    client: AsyncClient, writer: AsyncClient, params: dict[str, str], headers: dict[str, str], status: int
) -> None:
    unit = {"code": "31", "name": "Thành phố Hải Phòng", "level": "province"}
    assert (await writer.post("/api/v1/units", json=unit)).status_code == 201
    response = await client.get(REPORT, params=params, headers=headers)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
