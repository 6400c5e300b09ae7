"""SPEC §5 as arithmetic on prefix sums of counters.

Every counter counts instants (a reception, a finish, the start of a pause …) by their local day.
For a period [S, E) between local midnights, with P(T) the sum of a counter over days before T:

- flows (received, finished, withdrawn, refused) are P(E) − P(S);
- stocks are differences of two counters: dossiers received and not yet ended at S
  (carried over) are P_received(S) − P_ended(S); dossiers waiting for a supplement at E are
  P_waiting_start(E) − P_waiting_end(E); dossiers open, not waiting and past due at E are
  P_overdue_start(E) − P_overdue_end(E), where each dossier marks the start and end of every
  span during which it is open, not waiting, and past its due date as it stood.

A span (a, b] is counted at E when a < E ≤ b; with S and E at midnight, "an instant before E" is
"a day before E's day", which is why day buckets suffice.
"""

from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from app.dossiers.counters import CHANNELS
from app.stats.schemas import DossierCounts, DossierRates

# The answers' models name the counts and rates, in the order the API and the CSV columns show them.
COUNT_NAMES = tuple(DossierCounts.model_fields)
RATE_NAMES = tuple(DossierRates.model_fields)

# The Vietnamese terms of the reports, for CSV headers and documentation.
VIETNAMESE = {
    "carried_over": "Kỳ trước chuyển sang",
    "received": "Tiếp nhận trong kỳ",
    "received_direct": "Trực tiếp",
    "received_online": "Trực tuyến",
    "received_postal": "Bưu chính",
    "total": "Tổng số hồ sơ",
    "resolved_on_time": "Giải quyết đúng hạn",
    "resolved_early": "Giải quyết trước hạn",
    "resolved_late": "Giải quyết quá hạn",
    "resolved": "Đã giải quyết",
    "withdrawn": "Công dân rút",
    "in_progress": "Đang giải quyết",
    "waiting_supplement": "Chờ bổ sung",
    "in_progress_overdue": "Đang giải quyết quá hạn",
    "online": "Hồ sơ trực tuyến",
    "online_partial": "Trực tuyến một phần",
    "online_full": "Trực tuyến toàn trình",
    "refused": "Không được tiếp nhận",
    "on_time": "Tỷ lệ đúng hạn (%)",
    "on_time_766": "Tỷ lệ đúng hạn theo QĐ 766 (%)",
    "on_time_of_resolved": "Tỷ lệ đúng hạn trên số đã giải quyết (%)",
    "on_time_of_due": "Tỷ lệ đúng hạn trên số đến hạn trong kỳ (%)",
    "due_in_period": "Hồ sơ đến hạn trong kỳ",
    "due_in_period_on_time": "Hồ sơ đến hạn trong kỳ đã giải quyết đúng hạn",
    "online_rate": "Tỷ lệ trực tuyến (%)",
    "period": "Kỳ báo cáo",
    "count": "Số phương án",
    "savings_vnd": "Chi phí tiết kiệm/năm (đồng)",
}


def counts_from_prefixes(before_start: dict[str, int], before_end: dict[str, int]) -> dict[str, int]:
    """The counts of SPEC §5 for [S, E) from the counters' prefix sums at S and at E."""

    def flow(counter: str) -> int:
        return before_end[counter] - before_start[counter]

    def still_open_at_start(channel: str) -> int:
        return before_start[f"received_{channel}"] - before_start[f"ended_{channel}"]

    received = {channel: flow(f"received_{channel}") for channel in CHANNELS}
    in_total = {channel: still_open_at_start(channel) + received[channel] for channel in CHANNELS}
    carried_over = sum(still_open_at_start(channel) for channel in CHANNELS)
    total = carried_over + sum(received.values())
    on_time = flow("finished_on_time")
    late = flow("finished_late")
    withdrawn = flow("withdrawn")
    return {
        "carried_over": carried_over,
        "received": sum(received.values()),
        "received_direct": received["direct"],
        "received_online": received["online_partial"] + received["online_full"],
        "received_postal": received["postal"],
        "total": total,
        "resolved_on_time": on_time,
        "resolved_early": flow("finished_early"),
        "resolved_late": late,
        "resolved": on_time + late,
        "withdrawn": withdrawn,
        "in_progress": total - on_time - late - withdrawn,
        "waiting_supplement": before_end["waiting_start"] - before_end["waiting_end"],
        "in_progress_overdue": before_end["overdue_start"] - before_end["overdue_end"],
        "online": in_total["online_partial"] + in_total["online_full"],
        "online_partial": in_total["online_partial"],
        "online_full": in_total["online_full"],
        "refused": flow("refused"),
        # Not kept in counters: filled in from the dossiers' due dates (app.stats.service).
        "due_in_period": 0,
        "due_in_period_on_time": 0,
    }


def percentage(part: int, whole: int) -> float | None:
    """A percentage with two decimals, rounded half up; None when there is nothing to divide."""
    if whole == 0:
        return None
    exact = Decimal(part) * 100 / Decimal(whole)
    return float(exact.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


def rates(counts: dict[str, int]) -> dict[str, float | None]:
    total = counts["total"]
    on_track = counts["in_progress"] - counts["in_progress_overdue"]
    return {
        "on_time": percentage(counts["resolved_on_time"], total),
        "on_time_766": percentage(counts["resolved_on_time"] + on_track, total),
        "online": percentage(counts["online"], total),
        # Reports that judge the work done divide by the dossiers finished, not by all of them.
        "on_time_of_resolved": percentage(counts["resolved_on_time"], counts["resolved"]),
        # Reports that judge the deadlines of the period divide by the dossiers due in it.
        "on_time_of_due": percentage(counts["due_in_period_on_time"], counts["due_in_period"]),
    }


def add(into: dict[str, Any], more: dict[str, Any]) -> None:
    for name, value in more.items():
        into[name] = into.get(name, 0) + value
