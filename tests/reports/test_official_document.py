"""The report as a district sends it: a Word document in the form of Decree 30/2020/NĐ-CP, laid out as
the decree says once printed (LibreOffice, then pdftotext), and the HTML page printing the same
heading and closing (issue 30)."""

import asyncio
import io
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from docx import Document
from docx.document import Document as WordDocument
from docx.oxml.ns import qn
from httpx import AsyncClient

from app.reports.router import DOCX
from tests.reports.test_browser import chromium
from tests.reports.test_reform_report import QUARTER, REFERENCE_FIGURES, REPORT

FORM = {
    "issuer": "Phòng Nội vụ",
    "superior": "UBND huyện Kiến Thụy",
    "code": "BC-PNV",
    "place": "Kiến Thụy",
    "issued_on": "2023-10-05",
    "signer": "TRƯỞNG PHÒNG",
    "recipient": ["Sở Nội vụ thành phố Hải Phòng", "Thường trực Huyện ủy"],
}
# One millimetre in PDF points, and what a rendering may be off by.
MM = 72 / 25.4
SLACK_MM = 1.5


def word_document(content: bytes) -> WordDocument:
    return Document(io.BytesIO(content))


def table_rows(document: WordDocument, index: int) -> list[list[str]]:
    return [[cell.text for cell in row.cells] for row in document.tables[index].rows]


def all_text(document: WordDocument) -> str:
    parts = [paragraph.text for paragraph in document.paragraphs]
    parts += [cell.text for table in document.tables for row in table.rows for cell in row.cells]
    return "\n".join(parts)


@pytest.mark.usefixtures("kien_thuy")
async def test_the_docx_has_each_part_of_the_form_with_the_seed_figures(client: AsyncClient) -> None:
    response = await client.get(REPORT, params={**QUARTER, "format": "docx", **FORM})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == DOCX
    assert response.headers["content-disposition"].startswith("attachment;")
    assert ".docx" in response.headers["content-disposition"]
    document = word_document(response.content)

    # A4, the decree's margins, Times New Roman.
    section = document.sections[0]
    # Word keeps lengths in twentieths of a point: to the nearest tenth of a millimetre.
    lengths = (
        section.page_width,
        section.page_height,
        section.top_margin,
        section.bottom_margin,
        section.left_margin,
        section.right_margin,
    )
    assert [None if length is None else round(length.mm, 1) for length in lengths] == [
        210,
        297,
        20,
        20,
        30,
        15,
    ]
    normal = document.styles["Normal"].font
    assert normal.name == "Times New Roman" and normal.size.pt == 14

    # The heading: issuing body beside the national title and motto, number beside place and date.
    heading = table_rows(document, 0)
    assert heading[0][0].splitlines() == ["UBND HUYỆN KIẾN THỤY", "PHÒNG NỘI VỤ"]
    assert heading[0][1].splitlines() == ["CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM", "Độc lập - Tự do - Hạnh phúc"]
    assert heading[1] == ["Số: …/BC-PNV", "Kiến Thụy, ngày 05 tháng 10 năm 2023"]
    issuer_runs = document.tables[0].cell(0, 0).paragraphs[1].runs
    assert all(run.bold for run in issuer_runs)
    # The short rules under the issuing body and under the motto.
    for cell in document.tables[0].rows[0].cells:
        assert cell.paragraphs[-1]._p.find(qn("w:pPr")).find(qn("w:pBdr")).find(qn("w:bottom")) is not None
    # Page numbers at the top from the second page: the header has a PAGE field, the first page none.
    assert section.different_first_page_header_footer
    assert "PAGE" in "".join(node.text or "" for node in section.header._element.iter(qn("w:instrText")))
    assert not section.first_page_header.paragraphs[0].text

    paragraphs = [paragraph.text for paragraph in document.paragraphs if paragraph.text]
    assert paragraphs[0] == "BÁO CÁO"
    assert paragraphs[1] == "Kết quả thực hiện cải cách thủ tục hành chính quý III năm 2023"

    # The body: the narrative and tables of the report, figure for figure.
    text = all_text(document)
    missing = [figure for figure in REFERENCE_FIGURES if figure not in text]
    assert not missing
    assert "Năm 2023, huyện Kiến Thụy đã đề xuất phương án đơn giản hóa 21 thủ tục hành chính" in text
    assert "trên địa bàn huyện Kiến Thụy" in text
    # In tables, counts are plain numbers: no leading zero.
    proposals = table_rows(document, 1)
    assert proposals[0] == ["Loại phương án", "Số thủ tục", "Cấp huyện", "Cấp xã"]
    assert proposals[1:] == [
        ["Đơn giản hóa", "21", "19", "2"],
        ["Bãi bỏ", "9", "9", "0"],
        ["Giảm phí, lệ phí", "3", "3", "0"],
    ]
    dossiers = table_rows(document, 2)
    assert dossiers[1] == ["Cấp huyện", "1.473", "1.463", "10", "1.465", "99,46%", "3", "5"]
    assert dossiers[2] == ["Cấp xã", "19.497", "19.460", "37", "19.486", "99,94%", "9", "2"]
    online = table_rows(document, 3)
    assert online[1] == ["Cấp huyện", "1.462", "99,25%", "553", "909"]

    # The closing: recipients, the archive last; the signer's title with room to sign by hand.
    closing = document.tables[4].cell(0, 0).text.splitlines()
    assert closing == [
        "Nơi nhận:",
        "- Sở Nội vụ thành phố Hải Phòng;",
        "- Thường trực Huyện ủy;",
        "- Lưu: VT.",
    ]
    signature = [paragraph.text for paragraph in document.tables[4].cell(0, 1).paragraphs]
    assert signature == ["TRƯỞNG PHÒNG", "", "", "", ""]


@pytest.mark.usefixtures("kien_thuy")
async def test_what_the_unit_did_not_give_is_left_blank_to_fill_in(client: AsyncClient) -> None:
    response = await client.get(REPORT, params={**QUARTER, "format": "docx"})
    assert response.status_code == 200, response.text
    document = word_document(response.content)
    heading = table_rows(document, 0)
    # The unit's people's committee issues it; number, code, place, day and signer are blanks.
    assert heading[0][0].splitlines() == ["ỦY BAN NHÂN DÂN HUYỆN KIẾN THỤY"]
    assert heading[1] == ["Số: …/BC-…", "…, ngày … tháng … năm …"]
    closing = document.tables[4]
    assert closing.cell(0, 0).text.splitlines() == ["Nơi nhận:", "- Lưu: VT."]
    assert closing.cell(0, 1).text.splitlines()[0] == "…"
    # Another signer is another document: its ETag differs.
    signed = await client.get(REPORT, params={**QUARTER, "format": "docx", "signer": "CHỦ TỊCH"})
    assert signed.headers["etag"] != response.headers["etag"]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"signer": "x" * 201}, "signer"),
        ({"issuer": "   "}, "issuer"),
        ({"issued_on": "2023-02-30"}, "issued_on"),
        ({"recipient": [f"Nơi {n}" for n in range(21)]}, "recipient"),
        # Refused at the edge, as in any query: the form is printed into XML, which cannot hold it.
        ({"signer": "TRƯỞNG\x00PHÒNG"}, "query"),
    ],
)
async def test_a_form_that_cannot_be_printed_is_422(
    client: AsyncClient, writer: AsyncClient, params: dict[str, str | list[str]], field: str
) -> None:
    unit = {"code": "31", "name": "Thành phố Hải Phòng", "level": "province"}
    assert (await writer.post("/api/v1/units", json=unit)).status_code == 201
    response = await client.get(
        REPORT, params={"unit": "31", "period": "2023-Q3", "format": "docx", **params}
    )
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert any(error["field"].endswith(field) for error in response.json()["errors"])


def pdf_layout(pdf: Path) -> tuple[str, str, list[tuple[float, float]]]:
    """(pdfinfo's page size line, pdftotext -layout's text, each word's left and right edge in points)."""
    if shutil.which("pdftotext") is None:
        pytest.fail("pdftotext is required: apt-get install poppler-utils (scripts/ensure-libreoffice does)")
    info = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True, check=True).stdout
    size = next(line for line in info.splitlines() if line.startswith("Page size:"))
    layout = subprocess.run(
        ["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, check=True
    ).stdout
    boxes = subprocess.run(
        ["pdftotext", "-bbox", str(pdf), "-"], capture_output=True, text=True, check=True
    ).stdout
    edges = [
        (float(left), float(right))
        for left, right in re.findall(r'xMin="([0-9.]+)" [^>]*xMax="([0-9.]+)"', boxes)
    ]
    return size, layout, edges


def assert_the_decree_layout(size: str, layout: str, edges: list[tuple[float, float]], issuer: str) -> None:
    assert "(A4)" in size
    first = [line for line in layout.splitlines() if line.strip()][:2]
    # The issuing body and the national title side by side on the first lines.
    assert (
        "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM" in first[0] or "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM" in first[1]
    )
    assert any(issuer in line and "CỘNG HÒA" in line for line in first) or any(
        issuer in line and "Độc lập - Tự do - Hạnh phúc" in line for line in first
    )
    # Every word inside the decree's margins: 30 mm on the left, 15 mm on the right.
    assert edges
    assert min(left for left, _ in edges) >= (30 - SLACK_MM) * MM
    assert max(right for _, right in edges) <= (210 - 15 + SLACK_MM) * MM


def to_pdf(soffice: str, source: Path) -> None:
    """``source`` as PDF beside it, by LibreOffice (with a profile of its own: concurrent
    conversions must not share one)."""
    profile = source.parent / "profile"
    subprocess.run(
        [
            soffice,
            f"-env:UserInstallation=file://{profile}",
            "--headless",
            "--convert-to",
            "pdf",
            "--outdir",
            str(source.parent),
            str(source),
        ],
        capture_output=True,
        check=True,
        timeout=300,
    )


@pytest.mark.usefixtures("kien_thuy")
async def test_the_docx_printed_to_pdf_keeps_the_decrees_layout(client: AsyncClient, tmp_path: Path) -> None:
    soffice = shutil.which("soffice") or shutil.which("libreoffice")
    if soffice is None:
        pytest.fail(
            "LibreOffice is required: apt-get install libreoffice-writer-nogui (scripts/ensure-libreoffice)"
        )
    response = await client.get(REPORT, params={**QUARTER, "format": "docx", **FORM})
    source = tmp_path / "bao-cao.docx"
    source.write_bytes(response.content)
    await asyncio.to_thread(to_pdf, soffice, source)
    size, layout, edges = pdf_layout(tmp_path / "bao-cao.pdf")
    assert_the_decree_layout(size, layout, edges, "UBND HUYỆN KIẾN THỤY")
    assert "Kiến Thụy, ngày 05 tháng 10 năm 2023" in layout and "Nơi nhận:" in layout
    assert "1.473" in layout and "99,46%" in layout
    # The page number at the top of every page but the first.
    pages = [page for page in layout.split("\f") if page.strip()]
    assert len(pages) >= 2
    assert [page.strip().splitlines()[0].strip() for page in pages[1:]] == [
        str(n) for n in range(2, len(pages) + 1)
    ]


@pytest.mark.usefixtures("kien_thuy")
def test_the_html_page_prints_with_the_same_heading_and_closing(live_server: str, tmp_path: Path) -> None:
    query = "&".join(
        f"{name}={value}"
        for name, values in FORM.items()
        for value in (values if isinstance(values, list) else [values])
    )
    url = f"{live_server}{REPORT}?unit=313&period=2023-Q3&format=html&{query}"
    pdf = tmp_path / "page.pdf"
    chromium(f"--print-to-pdf={pdf}", "--no-pdf-header-footer", url)
    size, layout, edges = pdf_layout(pdf)
    assert_the_decree_layout(size, layout, edges, "UBND HUYỆN KIẾN THỤY")
    assert "BÁO CÁO" in layout and "Nơi nhận:" in layout and "TRƯỞNG PHÒNG" in layout
    # On screen, the page is the plain report.
    dom = chromium("--dump-dom", url)
    assert "huyện Kiến Thụy" in dom
