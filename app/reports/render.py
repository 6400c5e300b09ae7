"""The reform report as Markdown, HTML (with inline SVG charts), an XLSX workbook and a Word document."""

import dataclasses
import io
from collections.abc import Callable
from functools import cache
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined
from openpyxl import Workbook
from openpyxl.styles import Font

from app.calendar.periods import Scheme
from app.core.export import safe_row
from app.core.text import printable
from app.reports import formatting, official, tables, word
from app.reports.charts import Chart, bar_chart
from app.reports.official import DocumentForm
from app.reports.service import ReformReport

SCHEME_NAMES = {Scheme.calendar: "kỳ theo lịch", Scheme.report: "kỳ báo cáo từ ngày 15 đến ngày 14"}


@cache
def _environment(html: bool) -> Environment:
    # Two environments over the same templates: escaping is decided when a template is compiled,
    # and the shared sentences must be escaped in HTML and left alone in Markdown.
    environment = Environment(
        loader=PackageLoader("app.reports", "templates"),
        autoescape=html,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=StrictUndefined,
        keep_trailing_newline=True,
    )
    environment.filters.update(
        number=formatting.number,
        count=formatting.count,
        percent=formatting.percent,
        capitalize_first=formatting.capitalize_first,
        in_sentence=formatting.in_sentence,
    )
    return environment


def _with_texts(report: ReformReport, write: Callable[[str], str]) -> ReformReport:
    """The report with its stored texts (the unit's code and name, the sectors' names) passed through
    ``write``; everything else in it is the report's own wording."""
    return dataclasses.replace(
        report,
        unit_code=write(report.unit_code),
        unit_name=write(report.unit_name),
        proposals=[
            dataclasses.replace(item, by_sector=[(write(name), n) for name, n in item.by_sector])
            for item in report.proposals
        ],
    )


def _context(report: ReformReport) -> dict[str, Any]:
    return {
        "report": report,
        "phrase": formatting.period_phrase(report.period),
        "level_names": [level.name for level in report.levels],
        "kind_names": tables.KIND_NAMES,
        "scheme_name": SCHEME_NAMES[report.period.scheme],
    }


def charts(report: ReformReport) -> list[Chart]:
    """On-time and online rates per level over the last four quarters."""
    labels = [formatting.quarter_label(quarter.label) for quarter in report.quarters]
    names = {level.level: level.name for level in report.levels}
    return [
        bar_chart(
            title,
            labels,
            # A level that did not exist in a quarter (the district level after June 2025) has no bar.
            {level: [getattr(quarter, rate).get(level) for quarter in report.quarters] for level in names},
            names,
        )
        for title, rate in (
            ("Tỷ lệ hồ sơ giải quyết đúng hạn", "on_time"),
            ("Tỷ lệ hồ sơ trực tuyến", "online"),
        )
    ]


def markdown(report: ReformReport) -> str:
    # Names are the users' text: printed as they read, never as Markdown or HTML of their own.
    printed = _with_texts(report, lambda text: formatting.markdown_text(printable(text)))
    return _environment(html=False).get_template("reform.md.j2").render(_context(printed))


def html(report: ReformReport, form: DocumentForm) -> str:
    """The page, which prints with the heading and closing of the official document (``form``)."""
    # The templates escape (autoescape); control characters have no place in a page either.
    printed = _with_texts(report, printable)
    return (
        _environment(html=True)
        .get_template("reform.html.j2")
        .render(
            _context(printed),
            charts=charts(printed),
            official=official,
            form=official.lines(_printed_form(form), printed.unit_name, printed.period),
        )
    )


def docx(report: ReformReport, form: DocumentForm) -> bytes:
    """The report as a Word document in the form of Decree 30/2020 (app.reports.word)."""
    printed = _with_texts(report, printable)
    # The narrative's sentences as plain text: the Markdown environment leaves them unescaped.
    say: Any = _environment(html=False).get_template("_narrative.j2").make_module()
    phrase = formatting.period_phrase(printed.period)
    sentences = {
        "proposals": say.proposals(printed),
        "dossiers": say.dossiers(printed, phrase),
        "tiers": say.tiers(printed),
        "online": say.online(printed),
        "feedback": say.feedback(printed, phrase),
    }
    form_lines = official.lines(_printed_form(form), printed.unit_name, printed.period)
    return word.document(printed, form_lines, {part: str(text).strip() for part, text in sentences.items()})


def _printed_form(form: DocumentForm) -> DocumentForm:
    """The form's texts with control characters replaced: they are the caller's text."""

    def text(value: str | None) -> str | None:
        return None if value is None else printable(value)

    return dataclasses.replace(
        form,
        issuer=text(form.issuer),
        superior=text(form.superior),
        code=text(form.code),
        place=text(form.place),
        signer=text(form.signer),
        recipients=tuple(printable(recipient) for recipient in form.recipients),
    )


def xlsx(report: ReformReport) -> bytes:
    """One sheet per table of the report, Vietnamese headers, numbers stored as numbers."""
    workbook = Workbook()
    proposals = workbook.active
    assert proposals is not None
    proposals.title = "Phương án cải cách"
    _table(
        proposals,
        ["Loại phương án", "Cấp", "Lĩnh vực", "Số thủ tục"],
        [
            [tables.KIND_NAMES[item.kind], formatting.capitalize_first(level), "", n]
            for item in report.proposals
            for level, n in item.by_level
        ]
        + [
            [tables.KIND_NAMES[item.kind], "", sector, n]
            for item in report.proposals
            for sector, n in item.by_sector
        ]
        + [[tables.KIND_NAMES[item.kind], "Tổng", "", item.total] for item in report.proposals],
    )
    _table(workbook.create_sheet("Giải quyết hồ sơ"), tables.DOSSIER_HEADERS, tables.dossier_rows(report))
    _table(workbook.create_sheet("Hồ sơ trực tuyến"), tables.ONLINE_HEADERS, tables.online_rows(report))
    feedback = report.feedback
    _table(
        workbook.create_sheet("Phản ánh kiến nghị"),
        ["Tiếp nhận", "Trả lời đúng hạn", "Trả lời quá hạn", "Từ chối", "Đang xử lý", "Quá hạn"],
        [
            [
                feedback[name]
                for name in ("received", "answered_on_time", "answered_late", "rejected", "open", "overdue")
            ]
        ],
    )
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def _cells(values: list[Any]) -> list[Any]:
    # openpyxl raises on control characters (XML cannot hold them): stored text must not break the
    # workbook. Replaced before the formula check, which then sees the text as it will be read.
    return safe_row([printable(value) if isinstance(value, str) else value for value in values])


def _table(sheet: Any, headers: list[str], rows: list[list[Any]]) -> None:
    sheet.append(_cells(headers))
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    for row in rows:
        sheet.append(_cells(row))
        for cell in sheet[sheet.max_row]:
            if isinstance(cell.value, str):
                cell.data_type = "s"  # text stays text, whatever it starts with
            elif isinstance(cell.value, float):
                cell.number_format = "0.00"
            elif isinstance(cell.value, int):
                cell.number_format = "#,##0"
    for column in sheet.columns:
        width = max(len(str(cell.value or "")) for cell in column)
        sheet.column_dimensions[column[0].column_letter].width = min(max(width + 2, 10), 50)
