"""The reform report as Markdown, HTML (with inline SVG charts) and an XLSX workbook."""

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
from app.reports import formatting
from app.reports.charts import Chart, bar_chart
from app.reports.service import ReformReport

KIND_NAMES = {"simplify": "Đơn giản hóa", "abolish": "Bãi bỏ", "reduce_fee": "Giảm phí, lệ phí"}
SCHEME_NAMES = {Scheme.calendar: "kỳ theo lịch", Scheme.report: "kỳ báo cáo từ ngày 15 đến ngày 14"}


def _capitalize_first(text: str) -> str:
    return text[:1].upper() + text[1:]


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
        capitalize_first=_capitalize_first,
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
        "kind_names": KIND_NAMES,
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
            {level: [getattr(quarter, rate)[level] for quarter in report.quarters] for level in names},
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


def html(report: ReformReport) -> str:
    # The templates escape (autoescape); control characters have no place in a page either.
    printed = _with_texts(report, printable)
    return (
        _environment(html=True)
        .get_template("reform.html.j2")
        .render(_context(printed), charts=charts(printed))
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
            [KIND_NAMES[item.kind], _capitalize_first(level), "", n]
            for item in report.proposals
            for level, n in item.by_level
        ]
        + [
            [KIND_NAMES[item.kind], "", sector, n]
            for item in report.proposals
            for sector, n in item.by_sector
        ]
        + [[KIND_NAMES[item.kind], "Tổng", "", item.total] for item in report.proposals],
    )
    rows = [*report.levels, report.total]
    _table(
        workbook.create_sheet("Giải quyết hồ sơ"),
        [
            "Cấp",
            "Tổng số hồ sơ",
            "Tiếp nhận trong kỳ",
            "Chuyển từ kỳ trước",
            "Giải quyết đúng hạn",
            "Tỷ lệ đúng hạn (%)",
            "Giải quyết quá hạn",
            "Đang giải quyết",
        ],
        [
            [
                _capitalize_first(level.name),
                *(level.counts[name] for name in ("total", "received", "carried_over", "resolved_on_time")),
                level.rates["on_time"],
                level.counts["resolved_late"],
                level.counts["in_progress"],
            ]
            for level in rows
        ],
    )
    _table(
        workbook.create_sheet("Hồ sơ trực tuyến"),
        ["Cấp", "Hồ sơ trực tuyến", "Tỷ lệ trực tuyến (%)", "Mức độ 3 (một phần)", "Mức độ 4 (toàn trình)"],
        [
            [
                _capitalize_first(level.name),
                level.counts["online"],
                level.rates["online"],
                level.counts["online_partial"],
                level.counts["online_full"],
            ]
            for level in rows
        ],
    )
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
