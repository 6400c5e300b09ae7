"""Statistics tables as CSV for spreadsheets: English headers, then the Vietnamese terms."""

import csv
import io

from app.core.export import safe_row
from app.stats.answers import Columns
from app.stats.definitions import VIETNAMESE
from app.stats.schemas import DossierStats

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


def stats_csv(stats: DossierStats, columns: Columns) -> bytes:
    """One row per group and a total row, with a byte order mark for spreadsheets."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    rate_headers = [f"{name}_rate" if name == "online" else name for name in columns.rates]
    writer.writerow(["period", "scheme", *stats.group_by, *columns.counts, *rate_headers])
    writer.writerow(
        ["Kỳ báo cáo", "Cách tính kỳ", *(GROUP_NAMES[g] for g in stats.group_by)]
        + [VIETNAMESE[name] for name in (*columns.counts, *rate_headers)]
    )
    lines = [(row.key, row.counts, row.rates) for row in stats.rows]
    # Keys name units, sectors and procedures: text a spreadsheet must not run (app.core.export).
    lines.append(({name: "TOTAL" for name in stats.group_by}, stats.total.counts, stats.total.rates))
    for key, counts, row_rates in lines:
        writer.writerow(
            safe_row(
                [stats.period.label, stats.period.scheme.value, *(key.get(g, "") for g in stats.group_by)]
                + [counts[name] for name in columns.counts]
                + ["" if row_rates[name] is None else f"{row_rates[name]:.2f}" for name in columns.rates]
            )
        )
    return ("\ufeff" + buffer.getvalue()).encode()
