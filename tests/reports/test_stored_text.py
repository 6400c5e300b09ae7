"""Names in the report are the users' text: printed as they read in every format, never as markup,
and never the reason a report cannot be rendered (issue 27, findings 4 and 13)."""

import io
from html.parser import HTMLParser

import pytest
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient
from markdown_it import MarkdownIt
from openpyxl import load_workbook
from sqlalchemy import update

from app.core.text import CONTROL_CHARACTERS
from app.procedures.models import Sector
from app.reports.formatting import markdown_text
from app.units.models import Unit
from tests.conftest import KeyFactory
from tests.proposals.test_proposals import move, procedure, proposal
from tests.reports.test_two_tiers import docx_text

HOSTILE_UNIT = "<script>alert(1)</script> *x* [a](b) _y_ `z` ~~s~~ a|b &lt; \\"
HOSTILE_SECTOR = "Tư pháp\n\n# Chèn\n- mục <img src=x onerror=alert(1)> &amp; ![i](http://evil.example/i.png)"
REPORT = "/api/v1/reports/reform"
PERIOD = {"unit": "313", "period": "2023-Q3"}


async def district_with_a_proposal(
    app: FastAPI, writer: AsyncClient, api_key: KeyFactory, unit_name: str, sector_name: str
) -> None:
    """Unit 313 and one submitted proposal in a sector, so both names are in every format."""
    for unit in (
        {"code": "31", "name": "Hải Phòng", "level": "province"},
        {
            "code": "313",
            "name": unit_name,
            "level": "district",
            "parent_code": "31",
            "valid_to": "2025-06-30",
        },
    ):
        assert (await writer.post("/api/v1/units", json=unit)).status_code == 201
    sector = {"code": "tu-phap", "name": sector_name}
    assert (await writer.post("/api/v1/sectors", json=sector)).status_code == 201
    assert (
        await writer.post("/api/v1/procedures", json=procedure("P-1", "tu-phap", ["district"]))
    ).status_code == 201
    headers = await api_key("proposals:write", unit="313", name="kien-thuy")
    async with AsyncClient(
        transport=ASGITransport(app=app), base_url="http://t", headers=headers
    ) as district:
        made = await district.post("/api/v1/proposals", json=proposal("simplify", code="P-1"))
        assert made.status_code == 201, made.text
        await move(district, made.json()["id"], "submitted", occurred_at="2023-07-10T09:00:00+07:00")


class _Page(HTMLParser):
    """The elements of a page, its text and the text of its first heading."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.text = ""
        self.heading = ""
        self._in_heading = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self._in_heading = tag == "h1" and self.tags.count("h1") == 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "h1":
            self._in_heading = False

    def handle_data(self, data: str) -> None:
        self.text += data
        if self._in_heading:
            self.heading += data


def page(markup: str) -> _Page:
    parsed = _Page()
    parsed.feed(markup)
    parsed.close()
    return parsed


def rendered_markdown(text: str) -> str:
    # CommonMark with raw HTML allowed (as most renderers do), plus GitHub's tables and strikethrough.
    return MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"]).render(text)


async def test_names_are_printed_as_text_not_as_markdown_or_html(
    app: FastAPI, writer: AsyncClient, api_key: KeyFactory
) -> None:
    await district_with_a_proposal(app, writer, api_key, HOSTILE_UNIT, HOSTILE_SECTOR)

    markdown = await writer.get(REPORT, params={**PERIOD, "format": "markdown"})
    assert markdown.status_code == 200, markdown.text
    assert "<script" not in markdown.text and "<img" not in markdown.text
    assert "\\*x\\* \\[a\\](b) \\_y\\_ \\`z\\` \\~\\~s\\~\\~ a\\|b \\&lt; \\\\" in markdown.text
    assert "\n# Chèn" not in markdown.text  # the sector's line breaks start no heading of their own
    html_of_markdown = page(rendered_markdown(markdown.text))
    # The Markdown, rendered, is the template's own structure and nothing the names brought in.
    assert set(html_of_markdown.tags) <= {
        "h1",
        "h2",
        "p",
        "table",
        "thead",
        "tbody",
        "tr",
        "th",
        "td",
        "hr",
        "em",
    }
    assert html_of_markdown.tags.count("h1") == 1 and html_of_markdown.tags.count("em") == 1  # the footer
    assert html_of_markdown.heading == f"{HOSTILE_UNIT}: kết quả cải cách thủ tục hành chính quý III năm 2023"
    # The sector's name is in the text as written, its line breaks read as spaces.
    assert " ".join(HOSTILE_SECTOR.split()) in " ".join(html_of_markdown.text.split())

    html = await writer.get(REPORT, params={**PERIOD, "format": "html"})
    assert html.status_code == 200, html.text
    assert "<script" not in html.text and "<img" not in html.text
    html_page = page(html.text)
    assert "script" not in html_page.tags and "img" not in html_page.tags
    assert html_page.heading == f"{HOSTILE_UNIT}: kết quả cải cách thủ tục hành chính quý III năm 2023"


STORED_CONTROLS = "\x01\x08\x0b\x0c\x1b\x1f\x7f"


async def test_control_characters_already_stored_never_break_the_report(
    app: FastAPI, writer: AsyncClient, api_key: KeyFactory, database_url: str
) -> None:
    await district_with_a_proposal(app, writer, api_key, "Kiến Thụy", "Tư pháp")
    # Written before the edge refused them (or by hand): PostgreSQL cannot hold NUL, SQLite can.
    controls = STORED_CONTROLS + ("\x00" if database_url.startswith("sqlite") else "")
    async with app.state.engine.begin() as connection:
        await connection.execute(update(Unit).where(Unit.code == "313").values(name=f"Kiến{controls}Thụy"))
        await connection.execute(
            update(Sector).where(Sector.code == "tu-phap").values(name=f"Tư{controls}pháp")
        )
    replaced = "\ufffd" * len(controls)

    workbook = await writer.get(REPORT, params={**PERIOD, "format": "xlsx"})
    assert workbook.status_code == 200, workbook.text
    cells = [
        cell.value
        for sheet in load_workbook(io.BytesIO(workbook.content))
        for row in sheet.iter_rows()
        for cell in row
        if isinstance(cell.value, str)
    ]
    assert f"Tư{replaced}pháp" in cells
    assert not [cell for cell in cells if CONTROL_CHARACTERS.search(cell)]

    # The Word document too: XML cannot hold control characters either, nor may its form's fields.
    document = await writer.get(REPORT, params={**PERIOD, "format": "docx"})
    assert document.status_code == 200, document.text
    text = docx_text(document.content)
    assert f"Tư{replaced}pháp" in text and f"KIẾN{replaced}THỤY" in text  # the default issuer
    assert not CONTROL_CHARACTERS.search(text)

    for format, name in (("markdown", f"Kiến{replaced}Thụy"), ("html", f"Kiến{replaced}Thụy")):
        answer = await writer.get(REPORT, params={**PERIOD, "format": format})
        assert answer.status_code == 200, answer.text
        assert not CONTROL_CHARACTERS.search(answer.text), format
        assert name in answer.text and f"Tư{replaced}pháp" in answer.text


@pytest.mark.parametrize(
    ("text", "printed"),
    [
        ("Huyện Kiến Thụy", "Huyện Kiến Thụy"),
        ("văn hóa - thể thao, 1. gia đình (mới)", "văn hóa - thể thao, 1. gia đình (mới)"),
        ("<b>x</b>", "&lt;b&gt;x&lt;/b&gt;"),
        ("a\r\n\tb\n- c", "a b - c"),
        ("[a](b) ![i](c)", "\\[a\\](b) !\\[i\\](c)"),
        ("&amp; \\* `", "\\&amp; \\\\\\* \\`"),
    ],
)
def test_markdown_text(text: str, printed: str) -> None:
    assert markdown_text(text) == printed
