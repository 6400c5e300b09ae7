"""The report's tables as values (counts as ints, rates as floats or None), for the workbook and the
Word document alike: each renders the cells in its own way."""

from app.reports.formatting import capitalize_first
from app.reports.service import LevelFigures, ReformReport

Cell = str | int | float | None

DOSSIER_HEADERS = [
    "Cấp",
    "Tổng số hồ sơ",
    "Tiếp nhận trong kỳ",
    "Chuyển từ kỳ trước",
    "Giải quyết đúng hạn",
    "Tỷ lệ đúng hạn (%)",
    "Giải quyết quá hạn",
    "Đang giải quyết",
]
ONLINE_HEADERS = [
    "Cấp",
    "Hồ sơ trực tuyến",
    "Tỷ lệ trực tuyến (%)",
    "Mức độ 3 (một phần)",
    "Mức độ 4 (toàn trình)",
]


def _rows(report: ReformReport) -> list[LevelFigures]:
    """Each level of the period, then all of them."""
    return [*report.levels, report.total]


def dossier_rows(report: ReformReport) -> list[list[Cell]]:
    return [
        [
            capitalize_first(level.name),
            *(level.counts[name] for name in ("total", "received", "carried_over", "resolved_on_time")),
            level.rates["on_time"],
            level.counts["resolved_late"],
            level.counts["in_progress"],
        ]
        for level in _rows(report)
    ]


def online_rows(report: ReformReport) -> list[list[Cell]]:
    return [
        [
            capitalize_first(level.name),
            level.counts["online"],
            level.rates["online"],
            level.counts["online_partial"],
            level.counts["online_full"],
        ]
        for level in _rows(report)
    ]


def proposal_rows(report: ReformReport) -> tuple[list[str], list[list[Cell]]]:
    """Headers and rows: each kind of proposal, its total and its count at each level."""
    level_names = [level.name for level in report.levels]
    headers = ["Loại phương án", "Số thủ tục", *(capitalize_first(name) for name in level_names)]
    rows: list[list[Cell]] = [
        [KIND_NAMES[item.kind], item.total, *(dict(item.by_level).get(name, 0) for name in level_names)]
        for item in report.proposals
    ]
    return headers, rows


KIND_NAMES = {"simplify": "Đơn giản hóa", "abolish": "Bãi bỏ", "reduce_fee": "Giảm phí, lệ phí"}
