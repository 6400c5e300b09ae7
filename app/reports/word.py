"""The reform report as a Word document in the form of Decree 30/2020/NĐ-CP (app.reports.official):
the file a district office finishes, signs and sends."""

import io
from collections.abc import Sequence

from docx import Document
from docx.document import Document as WordDocument
from docx.enum.table import WD_TABLE_ALIGNMENT
from docx.enum.text import WD_ALIGN_PARAGRAPH
from docx.oxml import OxmlElement
from docx.oxml.ns import qn
from docx.shared import Cm, Length, Mm, Pt
from docx.table import Table, _Cell
from docx.text.paragraph import Paragraph

from app.reports import formatting, official, tables
from app.reports.official import FormLines
from app.reports.service import ReformReport

# Sizes within the decree's ranges (Appendix I): the national title and the bodies 12–13, the motto
# 13–14, the text 13–14.
BODY_PT = 14
HEADER_PT = 12
MOTTO_PT = 13
TABLE_PT = 11


def _fonts(document: WordDocument) -> None:
    style = document.styles["Normal"]
    style.font.name = official.FONT
    style.font.size = Pt(BODY_PT)
    # Word reads the font of each script from rFonts: Vietnamese is set in the Latin ones.
    fonts = style.element.get_or_add_rPr().get_or_add_rFonts()
    for script in ("w:ascii", "w:hAnsi", "w:cs", "w:eastAsia"):
        fonts.set(qn(script), official.FONT)
    style.paragraph_format.space_after = Pt(0)


def _page(document: WordDocument) -> None:
    section = document.sections[0]
    section.page_width, section.page_height = (Mm(side) for side in official.PAGE_MM)
    section.top_margin = Mm(official.MARGINS_MM["top"])
    section.bottom_margin = Mm(official.MARGINS_MM["bottom"])
    section.left_margin = Mm(official.MARGINS_MM["left"])
    section.right_margin = Mm(official.MARGINS_MM["right"])


def _line(
    paragraph: Paragraph,
    text: str,
    *,
    size: int = BODY_PT,
    bold: bool = False,
    italic: bool = False,
    align: WD_ALIGN_PARAGRAPH = WD_ALIGN_PARAGRAPH.CENTER,
) -> Paragraph:
    paragraph.alignment = align
    run = paragraph.add_run(text)
    run.font.size = Pt(size)
    run.bold = bold
    run.italic = italic
    return paragraph


def _cell_lines(table: Table, row: int, column: int, lines: Sequence[tuple[str, dict[str, object]]]) -> None:
    cell = table.cell(row, column)
    for index, (text, style) in enumerate(lines):
        paragraph = cell.paragraphs[0] if index == 0 else cell.add_paragraph()
        _line(paragraph, text, **style)  # type: ignore[arg-type]


def _borderless(table: Table) -> None:
    properties = table._tbl.tblPr
    borders = properties.find(qn("w:tblBorders"))
    if borders is not None:
        properties.remove(borders)


def _widths(table: Table, *widths: Length) -> None:
    """Fixed column widths, in the table's grid (which LibreOffice reads) and in each cell (Word)."""
    table.autofit = False
    for column, width in zip(table.columns, widths, strict=True):
        column.width = width
        for cell in column.cells:
            cell.width = width


def _rule(cell: _Cell, inset: Length) -> None:
    """A centred rule under the cell's text: an empty paragraph's bottom border, ``inset`` from
    each side."""
    paragraph = cell.add_paragraph()
    paragraph.paragraph_format.left_indent = inset
    paragraph.paragraph_format.right_indent = inset
    paragraph.paragraph_format.space_after = Pt(4)
    paragraph.paragraph_format.line_spacing = Pt(4)  # the rule sits close under the text
    borders = OxmlElement("w:pBdr")
    bottom = OxmlElement("w:bottom")
    for name, value in (("w:val", "single"), ("w:sz", "6"), ("w:space", "1"), ("w:color", "auto")):
        bottom.set(qn(name), value)
    borders.append(bottom)
    # In the schema's order (CT_PPr): the borders come before shading, tabs, spacing and the rest.
    paragraph._p.get_or_add_pPr().insert_element_before(
        borders, "w:shd", "w:tabs", "w:suppressAutoHyphens", "w:kinsoku", "w:wordWrap", "w:overflowPunct",
        "w:topLinePunct", "w:autoSpaceDE", "w:autoSpaceDN", "w:bidi", "w:adjustRightInd", "w:snapToGrid",
        "w:spacing", "w:ind", "w:contextualSpacing", "w:mirrorIndents", "w:suppressOverlap", "w:jc",
        "w:textDirection", "w:textAlignment", "w:textboxTightWrap", "w:outlineLvl", "w:divId", "w:cnfStyle",
        "w:rPr", "w:sectPr", "w:pPrChange",
    )  # fmt: skip


def _page_numbers(document: WordDocument) -> None:
    """The page number centred at the top of every page but the first (the decree's rule)."""
    section = document.sections[0]
    section.different_first_page_header_footer = True
    paragraph = section.header.paragraphs[0]
    paragraph.alignment = WD_ALIGN_PARAGRAPH.CENTER
    run = paragraph.add_run()
    run.font.size = Pt(MOTTO_PT)
    for kind, text in (("begin", None), (None, "PAGE"), ("end", None)):
        if kind is None:
            instruction = OxmlElement("w:instrText")
            instruction.set(qn("xml:space"), "preserve")
            instruction.text = text
            run._r.append(instruction)
        else:
            field = OxmlElement("w:fldChar")
            field.set(qn("w:fldCharType"), kind)
            run._r.append(field)


def _heading(document: WordDocument, form: FormLines) -> None:
    """Issuer and national title side by side, then number and place-date side by side."""
    table = document.add_table(rows=2, cols=2)
    _borderless(table)
    table.alignment = WD_TABLE_ALIGNMENT.CENTER
    _widths(table, Cm(6.5), Cm(10))
    # The issuing body in bold under its superior.
    last = len(form.bodies) - 1
    bodies: list[tuple[str, dict[str, object]]] = [
        (body, {"size": HEADER_PT, "bold": index == last}) for index, body in enumerate(form.bodies)
    ]
    _cell_lines(table, 0, 0, bodies)
    _cell_lines(
        table,
        0,
        1,
        [
            (official.NATIONAL_TITLE, {"size": HEADER_PT, "bold": True}),
            (official.MOTTO, {"size": MOTTO_PT, "bold": True}),
        ],
    )
    # The decree's short rules under the issuing body and under the motto.
    _rule(table.cell(0, 0), Cm(2))
    _rule(table.cell(0, 1), Cm(2.2))
    _cell_lines(table, 1, 0, [(form.number, {"size": MOTTO_PT})])
    _cell_lines(table, 1, 1, [(form.place_and_date, {"size": BODY_PT, "italic": True})])
    document.add_paragraph()
    _line(document.add_paragraph(), official.DOCUMENT_KIND, bold=True)
    _line(document.add_paragraph(), form.subject, bold=True)
    document.add_paragraph()


def _text(document: WordDocument, text: str, *, bold: bool = False) -> None:
    paragraph = _line(document.add_paragraph(), text, bold=bold, align=WD_ALIGN_PARAGRAPH.JUSTIFY)
    paragraph.paragraph_format.first_line_indent = Cm(1)
    paragraph.paragraph_format.space_after = Pt(6)


def _table(document: WordDocument, headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """A grid table: headers bold and centred, the first column left, the figures right."""
    table = document.add_table(rows=1 + len(rows), cols=len(headers))
    table.style = "Table Grid"
    table.alignment = WD_TABLE_ALIGNMENT.CENTER
    for row_index, values in enumerate([headers, *rows]):
        for column_index, value in enumerate(values):
            align = (
                WD_ALIGN_PARAGRAPH.CENTER
                if row_index == 0
                else WD_ALIGN_PARAGRAPH.LEFT
                if column_index == 0
                else WD_ALIGN_PARAGRAPH.RIGHT
            )
            paragraph = table.cell(row_index, column_index).paragraphs[0]
            _line(paragraph, value, size=TABLE_PT, bold=row_index == 0, align=align)
    document.add_paragraph()


def _closing(document: WordDocument, form: FormLines) -> None:
    """``Nơi nhận`` on the left, the signer's title on the right, room to sign under it."""
    document.add_paragraph()
    table = document.add_table(rows=1, cols=2)
    _borderless(table)
    _widths(table, Cm(7.5), Cm(9))
    recipients: list[tuple[str, dict[str, object]]] = [
        ("Nơi nhận:", {"size": 12, "bold": True, "italic": True, "align": WD_ALIGN_PARAGRAPH.LEFT})
    ]
    recipients += [(line, {"size": 11, "align": WD_ALIGN_PARAGRAPH.LEFT}) for line in form.recipients]
    _cell_lines(table, 0, 0, recipients)
    # The name is written by hand under the signature: four empty lines of room.
    _cell_lines(table, 0, 1, [(form.signer, {"size": BODY_PT, "bold": True}), *[("", {})] * 4])


def _shown(value: tables.Cell) -> str:
    """A cell as the document prints it: counts ``1.473``, rates ``99,46%``, text as it is."""
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return formatting.number(value)
    return formatting.percent(value)


def _value_table(
    document: WordDocument, headers: Sequence[str], rows: Sequence[Sequence[tables.Cell]]
) -> None:
    _table(
        document,
        [header.removesuffix(" (%)") for header in headers],
        [[_shown(v) for v in row] for row in rows],
    )


def document(report: ReformReport, form: FormLines, sentences: dict[str, str]) -> bytes:
    """The report in the decree's form: ``sentences`` are the report's narrative (app.reports.render),
    by part: ``proposals``, ``dossiers``, ``tiers`` (empty unless the period spans the 2025 reform),
    ``online``, ``feedback``."""
    word = Document()
    _fonts(word)
    _page(word)
    _page_numbers(word)
    _heading(word, form)
    phrase = formatting.period_phrase(report.period)

    _text(word, f"1. Phương án cải cách thủ tục hành chính năm {report.year}", bold=True)
    _text(word, sentences["proposals"])
    _value_table(word, *tables.proposal_rows(report))

    _text(word, f"2. Giải quyết hồ sơ thủ tục hành chính {phrase}", bold=True)
    _text(word, sentences["dossiers"])
    if sentences["tiers"]:
        _text(word, sentences["tiers"])
    _value_table(word, tables.DOSSIER_HEADERS, tables.dossier_rows(report))
    _text(word, sentences["online"])
    _value_table(word, tables.ONLINE_HEADERS, tables.online_rows(report))

    _text(word, "3. Tiếp nhận, xử lý phản ánh, kiến nghị", bold=True)
    _text(word, sentences["feedback"])
    _closing(word, form)
    buffer = io.BytesIO()
    word.save(buffer)
    return buffer.getvalue()
