"""The Decision 766/QĐ-TTg scorecard: the groups this service's data supports, each explained."""

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from app.core.config import Index766Settings


@dataclass(frozen=True)
class Inputs:
    """What the formulas need, for one unit subtree and period."""

    on_time_766: int
    """Finished on time, plus open and within their deadline (SPEC §5, as of E′)."""
    handled: int
    """The period's dossiers: carried over and received (`total`)."""
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


def _points(value: float) -> float:
    """A score with two decimals, rounded half up (as the portal publishes them)."""
    return float(Decimal(repr(value)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


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
    # The national portal's scoring (SPEC §8): 6 points each; no feedback is no fault.
    part = weights.satisfaction / 3
    satisfied_dossiers = max(0, data.received - data.resolved_late - data.ratings_unsatisfied)
    satisfaction_parts = [
        part
        if data.feedback_received == 0
        else _points(part * data.feedback_closed_in_time / data.feedback_received),
        part
        if data.feedback_received == 0
        else _points(part * data.feedback_answered / data.feedback_received),
        0.0 if data.received == 0 else _points(min(part, part * satisfied_dossiers / data.received / 0.9)),
    ]
    satisfaction = _points(sum(satisfaction_parts))
    digitised = _share(data.digitized, data.received)
    e_results = _share(data.e_result, data.resolved)
    digitisation = (
        None
        if digitised is None or e_results is None
        else round((digitised / 100 + e_results / 100) * weights.digitisation / 2, 2)
    )
    progress = 0.0 if data.handled == 0 else _points(weights.progress * data.on_time_766 / data.handled)
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
            {"on_time_766": data.on_time_766, "received": data.handled},
            f"{weights.progress} × on_time_766 / received, where on_time_766 = finished on time + open "
            "within the deadline and received = all dossiers of the period (carried over, new); 0 when none",
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
                "feedback_received": data.feedback_received,
                "feedback_handled_on_time": data.feedback_closed_in_time,
                "feedback_satisfied": data.feedback_answered,
                "dossiers_received": data.received,
                "dossiers_satisfied": satisfied_dossiers,
                "resolved_late": data.resolved_late,
                "ratings_unsatisfied": data.ratings_unsatisfied,
                "parts": satisfaction_parts,
            },
            f"{part:g} × feedback handled on time / feedback received + {part:g} × feedback satisfied "
            f"(answered, not reopened) / feedback received — each a full {part:g} without feedback — + "
            f"min({part:g}, {part:g} × r / 0.9), r = dossiers satisfied / dossiers received, where dossiers "
            "satisfied = received − finished late − rated unsatisfied or worse (0 when none received); "
            "two decimals, half up",
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
