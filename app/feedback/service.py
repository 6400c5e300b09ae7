"""Citizen feedback with its 766 deadlines, dossier satisfaction ratings, and their statistics."""

import hashlib
import hmac
import json
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.calendar.working_time import TimeUnit, WorkingCalendar
from app.core.db import load_for_update, utcnow
from app.core.errors import Conflict, InvalidInput, NotFound
from app.core.pagination import PageParams, encode_cursor
from app.core.security import Principal
from app.dossiers.lifecycle import Status
from app.dossiers.models import Dossier
from app.feedback.models import DossierRating, Feedback, FeedbackTransition
from app.feedback.schemas import (
    FeedbackCreate,
    FeedbackRead,
    FeedbackState,
    FeedbackSubject,
    FeedbackTransitionIn,
    FeedbackTransitionRead,
    RatingIn,
    SatisfactionLevel,
)
from app.procedures.models import Procedure
from app.stats.periods import Period
from app.units.access import ensure_reach
from app.units.models import Unit

if TYPE_CHECKING:
    from app.stats.index766 import Inputs

F = FeedbackState
# The 766 deadlines, in working days: reject 2, ask for information 5, answer 15, publish 2 after.
REJECT_DAYS, INFO_DAYS, ANSWER_DAYS, PUBLISH_DAYS = 2, 5, 15, 2
ALLOWED: dict[FeedbackState, set[FeedbackState]] = {
    F.received: {F.processing, F.info_requested, F.rejected, F.answered},
    F.processing: {F.info_requested, F.rejected, F.answered},
    F.info_requested: {F.processing, F.rejected, F.answered},
    F.answered: {F.published},
}
OPEN = {F.received, F.processing, F.info_requested}
UNSATISFIED = {SatisfactionLevel.unsatisfied.value, SatisfactionLevel.very_unsatisfied.value}
SATISFIED = {SatisfactionLevel.very_satisfied.value, SatisfactionLevel.satisfied.value}
FUTURE_TOLERANCE = timedelta(minutes=5)


def _deadline(calendar: WorkingCalendar, start: datetime, days: int) -> datetime:
    return calendar.due_at(start, days, TimeUnit.working_days).astimezone(UTC)


def _content_hash(data: FeedbackCreate) -> str:
    payload = data.model_dump(mode="json", exclude={"received_at"})
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def is_overdue(feedback: Feedback, now: datetime) -> bool:
    if F(feedback.state) in OPEN:
        return feedback.answer_due_at < now
    if feedback.state == F.answered and feedback.publish_due_at is not None:
        return feedback.publish_due_at < now
    return False


async def read(session: AsyncSession, feedback: Feedback) -> FeedbackRead:
    transitions = (
        await session.scalars(
            select(FeedbackTransition)
            .where(FeedbackTransition.feedback_id == feedback.id)
            .order_by(FeedbackTransition.occurred_at, FeedbackTransition.id)
        )
    ).all()
    return FeedbackRead.model_validate(
        {
            **{c.name: getattr(feedback, c.name) for c in Feedback.__table__.c},
            "overdue": is_overdue(feedback, utcnow()),
            "transitions": [FeedbackTransitionRead.model_validate(t) for t in transitions],
        }
    )


async def receive(
    session: AsyncSession, data: FeedbackCreate, actor: Principal, calendar: WorkingCalendar
) -> tuple[Feedback, bool]:
    """The feedback and whether it is new; the same external reference again is the same feedback."""
    digest = _content_hash(data)
    if await session.get(Unit, data.unit_code) is None:
        raise InvalidInput.for_field(
            "body.unit_code", f"Unit {data.unit_code!r} does not exist", "unknown_reference"
        )
    # The binding before the reference: a bound client cannot learn, or take, another unit's.
    await ensure_reach(session, actor, data.unit_code)
    if data.external_ref is not None:
        known = await session.scalar(
            select(Feedback).where(
                Feedback.unit_code == data.unit_code, Feedback.external_ref == data.external_ref
            )
        )
        if known is not None:
            if known.content_hash != digest:
                raise InvalidInput.for_field(
                    "body.external_ref",
                    "This reference was received with other content",
                    "external_ref_reused",
                )
            return known, False
    if data.procedure_code is not None and await session.get(Procedure, data.procedure_code) is None:
        raise InvalidInput.for_field(
            "body.procedure_code", f"Procedure {data.procedure_code!r} does not exist", "unknown_reference"
        )
    if data.subject is FeedbackSubject.procedure and data.procedure_code is None:
        raise InvalidInput.for_field("body.procedure_code", "Feedback on a procedure names it", "missing")
    if data.subject is FeedbackSubject.officer and data.officer is None:
        raise InvalidInput.for_field("body.officer", "Feedback on an officer names the officer", "missing")
    received_at = (data.received_at or utcnow()).astimezone(UTC)
    if received_at > utcnow() + FUTURE_TOLERANCE:
        raise InvalidInput.for_field("body.received_at", "received_at lies in the future", "in_future")
    feedback = Feedback(
        **data.model_dump(mode="json", exclude={"received_at"}),
        content_hash=digest,
        state=F.received.value,
        received_at=received_at,
        reject_due_at=_deadline(calendar, received_at, REJECT_DAYS),
        info_due_at=_deadline(calendar, received_at, INFO_DAYS),
        answer_due_at=_deadline(calendar, received_at, ANSWER_DAYS),
    )
    session.add(feedback)
    try:
        await session.flush()
    except IntegrityError as exc:
        raise Conflict("The same external reference is being received concurrently; retry") from exc
    return feedback, True


async def get_feedback(session: AsyncSession, feedback_id: int, *, for_update: bool = False) -> Feedback:
    feedback = (
        await load_for_update(session, Feedback, feedback_id)
        if for_update
        else await session.get(Feedback, feedback_id)
    )
    if feedback is None:
        raise NotFound(f"Feedback {feedback_id} does not exist")
    return feedback


async def transition(
    session: AsyncSession,
    feedback: Feedback,
    data: FeedbackTransitionIn,
    actor: Principal,
    calendar: WorkingCalendar,
) -> Feedback:
    current = F(feedback.state)
    if data.to not in ALLOWED.get(current, set()):
        raise Conflict(f"Feedback cannot go from {current.value} to {data.to.value}")
    now = utcnow()
    at = (data.occurred_at or now).astimezone(UTC)
    if at > now + FUTURE_TOLERANCE:
        raise InvalidInput.for_field("body.occurred_at", "occurred_at lies in the future", "in_future")
    if at < feedback.received_at:
        raise InvalidInput.for_field(
            "body.occurred_at", "occurred_at is before the reception", "out_of_order"
        )
    deadline: datetime | None = {
        F.rejected: feedback.reject_due_at,
        F.info_requested: feedback.info_due_at,
        F.answered: feedback.answer_due_at,
        F.published: feedback.publish_due_at,
    }.get(data.to)
    if data.to is F.rejected:
        feedback.rejected_at = at
    elif data.to is F.info_requested:
        feedback.info_requested_at = at
    elif data.to is F.answered:
        feedback.answered_at = at
        feedback.publish_due_at = _deadline(calendar, at, PUBLISH_DAYS)
    elif data.to is F.published:
        feedback.published_at = at
    session.add(
        FeedbackTransition(
            feedback_id=feedback.id,
            from_state=current.value,
            to_state=data.to.value,
            client_name=actor.name,
            occurred_at=at,
            comment=data.comment,
            within_deadline=None if deadline is None else at <= deadline,
        )
    )
    feedback.state = data.to.value
    await session.flush()
    return feedback


async def list_feedback(
    session: AsyncSession, filters: dict[str, Any], units: set[str] | None, page: PageParams
) -> tuple[list[Feedback], str | None]:
    query = select(Feedback)
    for name in ("state", "subject", "channel"):
        if filters.get(name) is not None:
            query = query.where(getattr(Feedback, name) == filters[name])
    if units is not None:
        query = query.where(Feedback.unit_code.in_(units))
    if filters.get("overdue"):
        now = utcnow()
        query = query.where(Feedback.state.in_([s.value for s in OPEN]), Feedback.answer_due_at < now)
    if page.after:
        query = query.where(Feedback.id > int(page.after[0]))
    rows = list((await session.scalars(query.order_by(Feedback.id).limit(page.limit + 1))).all())
    return rows[: page.limit], encode_cursor([rows[page.limit - 1].id]) if len(rows) > page.limit else None


# --- ratings ---------------------------------------------------------------------------------


async def rate(
    session: AsyncSession, code: str, data: RatingIn, actor: Principal | None, secret_key: str
) -> DossierRating:
    """Record the citizen's rating of a finished dossier, once."""
    from app.dossiers.service import lookup_hash

    dossier = await session.get(Dossier, code)
    if actor is None:
        expected = lookup_hash(secret_key, code, data.secret or "")
        if (
            dossier is None
            or dossier.lookup_secret_hash is None
            or not hmac.compare_digest(dossier.lookup_secret_hash, expected)
        ):
            raise NotFound("No dossier matches this code and PIN")
    elif dossier is None:
        raise NotFound(f"Dossier {code!r} does not exist")
    else:
        await ensure_reach(session, actor, dossier.unit_code, conceal=True)
    if dossier.finished_at is None or Status(dossier.status) not in (
        Status.resolved,
        Status.returned,
        Status.stopped,
    ):
        raise Conflict(f"Dossier {code!r} has not finished; it can be rated once it has")
    if await session.get(DossierRating, code) is not None:
        raise Conflict(f"Dossier {code!r} has been rated already")
    rating = DossierRating(
        dossier_code=code,
        unit_code=dossier.unit_code,
        level=data.level.value,
        comment=data.comment,
        rated_by=actor.name if actor else "citizen",
    )
    session.add(rating)
    try:
        await session.flush()
    except IntegrityError as exc:
        raise Conflict(f"Dossier {code!r} has been rated already") from exc
    return rating


# --- statistics ------------------------------------------------------------------------------

FEEDBACK_GROUPS = ("subject", "channel")
Key = tuple[tuple[str, str], ...]


async def feedback_counts(
    session: AsyncSession, units: set[str], period: Period, group_by: Sequence[str]
) -> tuple[dict[Key, dict[str, int]], dict[str, int]]:
    """Feedback received in the period, answered on time or late in it, open and overdue at its end."""
    start, end = period.start_at, period.end_at
    feedback = (
        await session.scalars(
            select(Feedback).where(Feedback.unit_code.in_(units), Feedback.received_at < end)
        )
    ).all()
    names = ("received", "answered_on_time", "answered_late", "rejected", "open", "overdue")
    groups: dict[Key, dict[str, int]] = defaultdict(lambda: dict.fromkeys(names, 0))
    total = dict.fromkeys(names, 0)
    for item in feedback:
        values = {"subject": item.subject, "channel": item.channel}
        key: Key = tuple((name, values[name]) for name in group_by)
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
            "overdue": (closed_at is None or closed_at >= end) and item.answer_due_at < end,
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
) -> "Inputs":
    """The data of the 766 formulas, counted from dossiers, feedback and ratings of the period."""
    from sqlalchemy import and_, case, func

    from app.stats.index766 import Inputs

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
