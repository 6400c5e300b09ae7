"""Statistics tables as CSV for spreadsheets: one header row, of field names or Vietnamese terms."""

import csv
import io

from app.core.downloads import HeaderLabels
from app.core.export import safe_row
from app.stats.answers import Columns
from app.stats.definitions import VIETNAMESE
from app.stats.schemas import DossierStats, ProposalStats

CSV_MEDIA_TYPE = "text/csv; charset=utf-8"
GROUP_NAMES = {
    "unit_level": "Cấp",
    "unit": "Đơn vị",
    "sector": "Lĩnh vực",
    "procedure": "Thủ tục",
    "kind": "Loại phương án",
    "level": "Cấp thực hiện",
    "state": "Trạng thái",
}
"""The Vietnamese headers of the group_by columns."""
_VIETNAMESE_HEADERS = {**VIETNAMESE, **GROUP_NAMES, "scheme": "Cách tính kỳ"}


def stats_csv(stats: DossierStats | ProposalStats, columns: Columns, labels: HeaderLabels) -> bytes:
    """One header row, one row per group and a total row, with a byte order mark for spreadsheets.

    A single header row, so that pandas, BI tools and ``csv.DictReader`` take it as the column names.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    rate_headers = [f"{name}_rate" if name == "online" else name for name in columns.rates]
    header = ["period", "scheme", *stats.group_by, *columns.counts, *rate_headers]
    writer.writerow([_VIETNAMESE_HEADERS[name] for name in header] if labels == "vi" else header)
    lines = [(row.key, row.counts.model_dump(), row.rates.model_dump()) for row in stats.rows]
    # Keys name units, sectors and procedures: text a spreadsheet must not run (app.core.export).
    total = stats.total
    lines.append(
        ({name: "TOTAL" for name in stats.group_by}, total.counts.model_dump(), total.rates.model_dump())
    )
    for key, counts, row_rates in lines:
        writer.writerow(
            safe_row(
                [stats.period.label, stats.period.scheme.value, *(key.get(g, "") for g in stats.group_by)]
                + [counts[name] for name in columns.counts]
                + ["" if row_rates[name] is None else f"{row_rates[name]:.2f}" for name in columns.rates]
            )
        )
    return ("\ufeff" + buffer.getvalue()).encode()
