"""Statistics of citizen feedback (its 766 deadlines) and of dossier satisfaction ratings."""

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.calendar.periods import Period
from app.dossiers.models import Dossier, DossierRating, SatisfactionLevel
from app.feedback.models import Feedback
from app.stats.groups import Key, group_key
from app.stats.index766 import Inputs
from app.stats.schemas import FeedbackCounts
from app.stats.service import as_of

UNSATISFIED = {SatisfactionLevel.unsatisfied.value, SatisfactionLevel.very_unsatisfied.value}
SATISFIED = {SatisfactionLevel.very_satisfied.value, SatisfactionLevel.satisfied.value}
FEEDBACK_GROUPS = ("subject", "channel")


async def feedback_counts(
    session: AsyncSession, units: set[str], period: Period, group_by: Sequence[str], now: datetime
) -> tuple[dict[Key, dict[str, int]], dict[str, int]]:
    """Feedback received in the period, answered on time or late in it, open at its end, and of those
    open the `overdue`: the ones whose answer deadline lies before E′ = min(E, ``now``) (SPEC §8).

    A period still running is judged as of now, like dossiers: an item received an hour ago is not
    overdue, one whose deadline passed a minute ago is. What happened in the period (received,
    answered, rejected, still open) is counted as recorded, as the dossier counters count it."""
    start, end = period.start_at, period.end_at
    judged_at = as_of(period, now)
    feedback = (
        await session.scalars(
            select(Feedback).where(Feedback.unit_code.in_(units), Feedback.received_at < end)
        )
    ).all()
    names = tuple(FeedbackCounts.model_fields)
    groups: dict[Key, dict[str, int]] = defaultdict(lambda: dict.fromkeys(names, 0))
    total = dict.fromkeys(names, 0)
    for item in feedback:
        values = {"subject": item.subject, "channel": item.channel}
        key = group_key(values, group_by)
        closed_at = item.answered_at or item.rejected_at
        counts = {
            "received": start <= item.received_at,
            "answered_on_time": item.answered_at is not None
            and start <= item.answered_at < end
            and item.answered_at <= item.answer_due_at,
            "answered_late": item.answered_at is not None
            and start <= item.answered_at < end
            and item.answered_at > item.answer_due_at,
            "rejected": item.rejected_at is not None and start <= item.rejected_at < end,
            "open": closed_at is None or closed_at >= end,
            "overdue": (closed_at is None or closed_at >= end) and item.answer_due_at < judged_at,
        }
        for target in (groups[key], total):
            for name, flag in counts.items():
                target[name] += int(flag)
    return dict(sorted(groups.items())), total


async def satisfaction_counts(session: AsyncSession, units: set[str], period: Period) -> dict[str, Any]:
    levels = (
        await session.scalars(
            select(DossierRating.level).where(
                DossierRating.unit_code.in_(units),
                DossierRating.rated_at >= period.start_at,
                DossierRating.rated_at < period.end_at,
            )
        )
    ).all()
    by_level = {
        level.value: sum(1 for found in levels if found == level.value) for level in SatisfactionLevel
    }
    return {"ratings": len(levels), "by_level": by_level}


async def index_inputs(
    session: AsyncSession, units: set[str], period: Period, counts: dict[str, int]
) -> Inputs:
    """The data of the 766 formulas, counted from dossiers, feedback and ratings of the period.

    The dossiers' on-time count comes judged at E′ (``counts``). Feedback here is judged only once
    closed, by its closing instant against its deadline ("closed within its deadline"): an item still
    open is neither on time nor overdue, so no instant of judgement enters these inputs."""
    start, end = period.start_at, period.end_at
    received = and_(Dossier.received_at >= start, Dossier.received_at < end)
    finished = and_(Dossier.finished_at >= start, Dossier.finished_at < end)

    def count(condition: Any) -> Any:
        return func.sum(case((condition, 1), else_=0))

    row = (
        await session.execute(
            select(
                count(received),
                count(and_(received, Dossier.channel == "online", Dossier.online_level == "full")),
                count(and_(received, Dossier.fee_payable.is_(True))),
                count(and_(received, Dossier.fee_payable.is_(True), Dossier.paid_online.is_(True))),
                count(and_(received, Dossier.digitized.is_(True))),
                count(finished),
                count(and_(finished, Dossier.on_time.is_(False))),
                count(and_(finished, Dossier.e_result.is_(True))),
            ).where(Dossier.unit_code.in_(units))
        )
    ).one()
    dossiers = [int(value or 0) for value in row]
    feedback = (
        await session.scalars(
            select(Feedback).where(Feedback.unit_code.in_(units), Feedback.received_at < end)
        )
    ).all()
    closed = in_time = received_feedback = answered = 0
    for item in feedback:
        closed_at, due = (
            (item.answered_at, item.answer_due_at)
            if item.answered_at
            else (item.rejected_at, item.reject_due_at)
        )
        if closed_at is not None and start <= closed_at < end:
            closed += 1
            in_time += closed_at <= due
        if start <= item.received_at:
            received_feedback += 1
            answered += item.answered_at is not None and item.answered_at < end
    ratings = await satisfaction_counts(session, units, period)
    return Inputs(
        on_time_766=counts["resolved_on_time"] + counts["in_progress"] - counts["in_progress_overdue"],
        handled=counts["total"],
        received=dossiers[0],
        received_online_full=dossiers[1],
        fee_payable=dossiers[2],
        paid_online=dossiers[3],
        digitized=dossiers[4],
        resolved=dossiers[5],
        resolved_late=dossiers[6],
        e_result=dossiers[7],
        feedback_closed=closed,
        feedback_closed_in_time=in_time,
        feedback_received=received_feedback,
        feedback_answered=answered,
        ratings=ratings["ratings"],
        ratings_unsatisfied=sum(ratings["by_level"][level] for level in UNSATISFIED),
    )
