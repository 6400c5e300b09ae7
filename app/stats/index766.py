"""The Decision 766/QĐ-TTg scorecard: the groups this service's data supports, each explained.

Every score is exact (SPEC §8): its formula is a rational number of the counts and the settings
(each setting taken as the decimal written), computed in integers and rounded once, half up, to a
``Decimal`` with two decimals — 3/64 × 24 = 1.125 gives 1.13, where a binary float gives 1.12. The
satisfaction group is the sum of its three rounded parts, as the national portal adds them.
"""

from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
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


def hundredths(numerator: int, denominator: int) -> int:
    """The exact ``numerator / denominator`` (≥ 0, denominator > 0) in hundredths, rounded half up:
    ⌊100 n / d + ½⌋ = ⌊(200 n + d) / 2 d⌋ in integers, so nothing is rounded before this."""
    return (200 * numerator + denominator) // (2 * denominator)


def points(score: int) -> Decimal:
    """A score in hundredths as the ``Decimal`` it is: 113 → 1.13, 600 → 6.00."""
    return Decimal(score).scaleb(-2)


def exact(setting: float) -> Fraction:
    """A weight or threshold as the decimal it was written as: 0.9 is 9/10, not the binary float."""
    return Fraction(repr(setting))


Ratio = tuple[int, int]
"""An exact rational number as its numerator and denominator."""


def _ratio(value: Fraction) -> Ratio:
    return value.numerator, value.denominator


class Formulas:
    """The scores of SPEC §8 under one set of weights and thresholds, in hundredths of a point
    (113 is 1.13): each formula exact in integers, then rounded half up once.

    A share ``part / whole`` scores ``weight × share``, or ``weight × min(1, share / threshold)``
    where a group has full points from a threshold on. Counts are non-negative. The docstrings
    give the national weights and thresholds; the settings may change them."""

    def __init__(self, weights: Index766Settings) -> None:
        # Numerators and denominators of the exact settings: a score is then a few integer operations.
        self._progress = _ratio(exact(weights.progress))
        self._online_service = _ratio(exact(weights.online_service))
        self._online_payment = _ratio(exact(weights.online_payment))
        self._half_digitisation = _ratio(exact(weights.digitisation) / 2)
        self._part = _ratio(exact(weights.satisfaction) / 3)
        self._online_full_at = _ratio(exact(weights.online_full_threshold) / 100)
        self._paid_online_at = _ratio(exact(weights.online_payment_threshold) / 100)
        self._satisfied_at = _ratio(exact(weights.satisfaction_threshold) / 100)

    def progress(self, on_time_766: int, handled: int) -> int:
        """20 × on time / received; 0 when nothing was received."""
        if handled == 0:
            return 0
        weight, scale = self._progress
        return hundredths(weight * on_time_766, scale * handled)

    def online_service(self, online_full: int, received: int) -> int | None:
        """12 × min(1, online with full service / received / 50 %); none without dossiers."""
        if received == 0:
            return None
        return _capped(self._online_service, online_full, received, self._online_full_at)

    def online_payment(self, paid_online: int, fee_payable: int) -> int | None:
        """10 × min(1, paid online / fee payable / 50 %); none without fees to pay."""
        if fee_payable == 0:
            return None
        return _capped(self._online_payment, paid_online, fee_payable, self._paid_online_at)

    def digitisation(self, digitized: int, received: int, e_result: int, resolved: int) -> int | None:
        """(digitized / received + e_result / resolved) / 2 × 22; none unless both shares exist."""
        if received == 0 or resolved == 0:
            return None
        weight, scale = self._half_digitisation
        return hundredths(weight * (digitized * resolved + e_result * received), scale * received * resolved)

    def satisfaction_parts(
        self, closed_in_time: int, answered: int, feedback_received: int, satisfied: int, received: int
    ) -> tuple[int, int, int]:
        """6 × feedback handled on time / feedback received and 6 × feedback satisfied / feedback
        received, a full 6 each without feedback; min(6, 6 × r / 90 %), r = dossiers satisfied /
        dossiers received, 0 when none were received. Each rounded on its own."""
        weight, scale = self._part
        if feedback_received == 0:
            on_time = satisfying = hundredths(weight, scale)
        else:
            on_time = hundredths(weight * closed_in_time, scale * feedback_received)
            satisfying = hundredths(weight * answered, scale * feedback_received)
        dossiers = 0 if received == 0 else _capped(self._part, satisfied, received, self._satisfied_at)
        return on_time, satisfying, dossiers

    def satisfaction(
        self, closed_in_time: int, answered: int, feedback_received: int, satisfied: int, received: int
    ) -> int:
        """The sum of the three rounded parts, as the national portal adds them."""
        return sum(self.satisfaction_parts(closed_in_time, answered, feedback_received, satisfied, received))


def _capped(weight: Ratio, part: int, whole: int, full_at: Ratio) -> int:
    """``weight × min(1, part / whole / full_at)`` in hundredths, exact, then half up (``whole`` > 0)."""
    numerator, denominator = part * full_at[1], whole * full_at[0]
    if numerator >= denominator:
        return hundredths(*weight)
    return hundredths(weight[0] * numerator, weight[1] * denominator)


def _share(part: int, whole: int) -> float | None:
    return None if whole == 0 else 100 * part / whole


def _group(
    name: str,
    maximum: float,
    score: int | None,
    inputs: dict[str, Any],
    formula: str,
    reason: str | None = None,
) -> dict[str, Any]:
    """A group, its score (given in hundredths) as a ``Decimal`` with two decimals."""
    scored = None if score is None else points(score)
    group: dict[str, Any] = {"group": name, "max": maximum, "score": scored, "computable": score is not None}
    group |= {"inputs": inputs, "formula": formula}
    if score is None:
        group["reason"] = reason or "No data in the period"
    return group


def scorecard(data: Inputs, weights: Index766Settings) -> list[dict[str, Any]]:
    """The six groups, scores as ``Decimal`` with two decimals (JSON numbers once rendered)."""
    formulas = Formulas(weights)
    online_share = _share(data.received_online_full, data.received)
    paid_share = _share(data.paid_online, data.fee_payable)
    # The national portal's scoring (SPEC §8): 6 points each; no feedback is no fault.
    part = weights.satisfaction / 3
    satisfied_dossiers = max(0, data.received - data.resolved_late - data.ratings_unsatisfied)
    satisfaction = (
        data.feedback_closed_in_time,
        data.feedback_answered,
        data.feedback_received,
        satisfied_dossiers,
        data.received,
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
            formulas.progress(data.on_time_766, data.handled),
            {"on_time_766": data.on_time_766, "received": data.handled},
            f"{weights.progress} × on_time_766 / received, where on_time_766 = finished on time + open "
            "within the deadline and received = all dossiers of the period (carried over, new); 0 when none",
        ),
        _group(
            "online_service",
            weights.online_service,
            formulas.online_service(data.received_online_full, data.received),
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
            formulas.digitisation(data.digitized, data.received, data.e_result, data.resolved),
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
            formulas.satisfaction(*satisfaction),
            {
                "feedback_received": data.feedback_received,
                "feedback_handled_on_time": data.feedback_closed_in_time,
                "feedback_satisfied": data.feedback_answered,
                "dossiers_received": data.received,
                "dossiers_satisfied": satisfied_dossiers,
                "resolved_late": data.resolved_late,
                "ratings_unsatisfied": data.ratings_unsatisfied,
                "parts": [points(part) for part in formulas.satisfaction_parts(*satisfaction)],
            },
            f"{part:g} × feedback handled on time / feedback received + {part:g} × feedback satisfied "
            f"(answered, not reopened) / feedback received — each a full {part:g} without feedback — + "
            f"min({part:g}, {part:g} × r / {weights.satisfaction_threshold / 100:g}), r = dossiers "
            "satisfied / dossiers received, where dossiers satisfied = received − finished late − rated "
            "unsatisfied or worse (0 when none received); each part two decimals, half up on the exact "
            "value",
        ),
        _group(
            "online_payment",
            weights.online_payment,
            formulas.online_payment(data.paid_online, data.fee_payable),
            {"fee_payable": data.fee_payable, "paid_online": data.paid_online, "share": paid_share},
            f"min(1, paid online / fee payable / {weights.online_payment_threshold} %)"
            f" × {weights.online_payment}",
        ),
    ]
