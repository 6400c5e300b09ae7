"""The Decision 766/QĐ-TTg scorecard: the groups this service's data supports, each explained."""

from dataclasses import dataclass
from typing import Any

from app.core.config import Index766Settings


@dataclass(frozen=True)
class Inputs:
    """What the formulas need, for one unit subtree and period."""

    on_time_766_rate: float | None
    received: int
    received_online_full: int
    fee_payable: int
    paid_online: int
    resolved: int
    resolved_late: int
    digitized: int
    e_result: int
    feedback_closed: int
    feedback_closed_in_time: int
    feedback_received: int
    feedback_answered: int
    ratings: int
    ratings_unsatisfied: int


def _share(part: int, whole: int) -> float | None:
    return None if whole == 0 else 100 * part / whole


def _scaled(value: float | None, threshold: float, maximum: float) -> float | None:
    """Full points at ``threshold`` % or more, proportionally below it."""
    if value is None:
        return None
    return round(min(1.0, value / threshold) * maximum, 2)


def _group(
    name: str,
    maximum: float,
    score: float | None,
    inputs: dict[str, Any],
    formula: str,
    reason: str | None = None,
) -> dict[str, Any]:
    group: dict[str, Any] = {"group": name, "max": maximum, "score": score, "computable": score is not None}
    group |= {"inputs": inputs, "formula": formula}
    if score is None:
        group["reason"] = reason or "No data in the period"
    return group


def scorecard(data: Inputs, weights: Index766Settings) -> list[dict[str, Any]]:
    online_share = _share(data.received_online_full, data.received)
    paid_share = _share(data.paid_online, data.fee_payable)
    handled = _share(data.feedback_closed_in_time, data.feedback_closed)
    answered = _share(data.feedback_answered, data.feedback_received)
    late_rate = _share(data.resolved_late, data.resolved)
    unsatisfied = _share(data.ratings_unsatisfied, data.ratings)
    dossier_satisfaction = (
        None if late_rate is None and unsatisfied is None else 100 - (late_rate or 0) - (unsatisfied or 0)
    )
    part = weights.satisfaction / 3
    satisfaction_parts = [
        # No feedback at all is no fault: full points.
        part if data.feedback_closed == 0 else _scaled(handled, 100, part),
        part if data.feedback_received == 0 else _scaled(answered, 100, part),
        _scaled(dossier_satisfaction, weights.satisfaction_threshold, part),
    ]
    satisfaction = None if None in satisfaction_parts else round(sum(p for p in satisfaction_parts if p), 2)
    digitised = _share(data.digitized, data.received)
    e_results = _share(data.e_result, data.resolved)
    digitisation = (
        None
        if digitised is None or e_results is None
        else round((digitised / 100 + e_results / 100) * weights.digitisation / 2, 2)
    )
    progress = (
        None if data.on_time_766_rate is None else round(data.on_time_766_rate / 100 * weights.progress, 2)
    )
    return [
        _group(
            "publicity",
            weights.publicity,
            None,
            {},
            "Publication of procedures and results on the national portal",
            "This service does not record publication on the national portal",
        ),
        _group(
            "progress",
            weights.progress,
            progress,
            {"on_time_766_rate": data.on_time_766_rate},
            f"on_time_766 % / 100 × {weights.progress}",
        ),
        _group(
            "online_service",
            weights.online_service,
            _scaled(online_share, weights.online_full_threshold, weights.online_service),
            {
                "received": data.received,
                "received_online_full": data.received_online_full,
                "share": online_share,
            },
            f"min(1, share of received dossiers online with full service / {weights.online_full_threshold} %)"
            f" × {weights.online_service}",
        ),
        _group(
            "digitisation",
            weights.digitisation,
            digitisation,
            {
                "received": data.received,
                "digitized": data.digitized,
                "resolved": data.resolved,
                "e_result": data.e_result,
            },
            f"(digitized / received + e_result / resolved) / 2 × {weights.digitisation}",
        ),
        _group(
            "satisfaction",
            weights.satisfaction,
            satisfaction,
            {
                "feedback_closed": data.feedback_closed,
                "feedback_closed_in_time": data.feedback_closed_in_time,
                "feedback_received": data.feedback_received,
                "feedback_answered": data.feedback_answered,
                "resolved": data.resolved,
                "resolved_late": data.resolved_late,
                "ratings": data.ratings,
                "ratings_unsatisfied": data.ratings_unsatisfied,
                "dossier_satisfaction": dossier_satisfaction,
                "parts": satisfaction_parts,
            },
            f"three parts of {part:g}: feedback closed within its deadlines (share × {part:g}); feedback "
            f"answered and not reopened (share × {part:g}); dossier satisfaction = 100 % − late % − "
            f"unsatisfied-or-worse %, full points at {weights.satisfaction_threshold} %",
        ),
        _group(
            "online_payment",
            weights.online_payment,
            _scaled(paid_share, weights.online_payment_threshold, weights.online_payment),
            {"fee_payable": data.fee_payable, "paid_online": data.paid_online, "share": paid_share},
            f"min(1, paid online / fee payable / {weights.online_payment_threshold} %)"
            f" × {weights.online_payment}",
        ),
    ]
