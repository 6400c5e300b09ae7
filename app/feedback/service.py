"""Citizen feedback with its 766 deadlines, and dossier satisfaction ratings."""

import hashlib
import json
from datetime import UTC, datetime

from sqlalchemy import ColumnElement, and_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from app.calendar.working_time import TimeUnit, WorkingCalendar
from app.core.audit import record
from app.core.db import load_for_update, take_write_lock
from app.core.errors import Conflict, InvalidInput, NotFound
from app.core.filters import before, equal, given, where_given
from app.core.pagination import PageParams, SortKey, Window, keyset_window
from app.core.security import Principal
from app.core.timezone import utcnow
from app.core.workflow import Workflow, apply, ensure_in_order, moment
from app.dossiers.lifecycle import Status
from app.dossiers.models import Dossier, DossierRating
from app.feedback.models import Feedback, FeedbackState, FeedbackSubject, FeedbackTransition
from app.feedback.schemas import (
    FeedbackCreate,
    FeedbackQuery,
    FeedbackRead,
    FeedbackTransitionIn,
    FeedbackTransitionRead,
    RatingIn,
)
from app.procedures.models import Procedure
from app.units.models import Unit

# The 766 deadlines, in working days: reject 2, ask for information 5, answer 15, publish 2 after.
REJECT_DAYS, INFO_DAYS, ANSWER_DAYS, PUBLISH_DAYS = 2, 5, 15, 2
WORKFLOW = Workflow[FeedbackState](
    "Feedback",
    {
        FeedbackState.received: {
            FeedbackState.processing,
            FeedbackState.info_requested,
            FeedbackState.rejected,
            FeedbackState.answered,
        },
        FeedbackState.processing: {
            FeedbackState.info_requested,
            FeedbackState.rejected,
            FeedbackState.answered,
        },
        FeedbackState.info_requested: {
            FeedbackState.processing,
            FeedbackState.rejected,
            FeedbackState.answered,
        },
        FeedbackState.answered: {FeedbackState.published},
    },
)
OPEN = {FeedbackState.received, FeedbackState.processing, FeedbackState.info_requested}


def _deadline(calendar: WorkingCalendar, start: datetime, days: int) -> datetime:
    return calendar.due_at(start, days, TimeUnit.working_days).astimezone(UTC)


def _content_hash(data: FeedbackCreate) -> str:
    payload = data.model_dump(mode="json", exclude={"received_at"})
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def is_overdue(feedback: Feedback, now: datetime) -> bool:
    if feedback.state in OPEN:
        return feedback.answer_due_at < now
    if feedback.state == FeedbackState.answered and feedback.publish_due_at is not None:
        return feedback.publish_due_at < now
    return False


def to_read(feedback: Feedback, now: datetime) -> FeedbackRead:
    """The feedback as the API shows it; its transitions must have been loaded with it."""
    return FeedbackRead.model_validate(
        {
            **{c.name: getattr(feedback, c.name) for c in Feedback.__table__.c},
            "overdue": is_overdue(feedback, now),
            "transitions": [FeedbackTransitionRead.model_validate(t) for t in feedback.transitions],
        }
    )


async def read(session: AsyncSession, feedback: Feedback) -> FeedbackRead:
    """One feedback as the API shows it, its transitions read afresh (after a transition)."""
    await session.refresh(feedback, ["transitions"])
    return to_read(feedback, utcnow())


async def ensure_unit_known(session: AsyncSession, data: FeedbackCreate) -> None:
    """The unit the feedback is addressed to exists (422 otherwise, before any question of reach)."""
    if await session.get(Unit, data.unit_code) is None:
        raise InvalidInput.for_field(
            "body.unit_code", f"Unit {data.unit_code!r} does not exist", "unknown_reference"
        )


async def receive(
    session: AsyncSession, data: FeedbackCreate, calendar: WorkingCalendar, actor: Principal
) -> tuple[Feedback, bool]:
    """The feedback and whether it is new (audited then); the same external reference again is the
    same feedback. Its unit is known and within the sender's reach (``deps.reachable_new_feedback``)."""
    digest = _content_hash(data)
    # SQLite: the one writer from here on, so the reference is read as it stands (and the savepoint
    # below nests in a real transaction). PostgreSQL: the unique key settles a race, below.
    await take_write_lock(session)
    known = await _by_reference(session, data)
    if known is not None:
        return _resent(known, digest), False
    if data.procedure_code is not None and await session.get(Procedure, data.procedure_code) is None:
        raise InvalidInput.for_field(
            "body.procedure_code", f"Procedure {data.procedure_code!r} does not exist", "unknown_reference"
        )
    if data.subject is FeedbackSubject.procedure and data.procedure_code is None:
        raise InvalidInput.for_field("body.procedure_code", "Feedback on a procedure names it", "missing")
    if data.subject is FeedbackSubject.officer and data.officer is None:
        raise InvalidInput.for_field("body.officer", "Feedback on an officer names the officer", "missing")
    received_at = moment(data.received_at, "received_at")
    feedback = Feedback(
        **data.model_dump(mode="json", exclude={"received_at"}),
        content_hash=digest,
        state=FeedbackState.received.value,
        received_at=received_at,
        reject_due_at=_deadline(calendar, received_at, REJECT_DAYS),
        info_due_at=_deadline(calendar, received_at, INFO_DAYS),
        answer_due_at=_deadline(calendar, received_at, ANSWER_DAYS),
    )
    try:
        async with session.begin_nested():
            session.add(feedback)
            await session.flush()
    except IntegrityError as exc:
        # A concurrent request stored the same reference after our read and committed (PostgreSQL's
        # unique index waits for the other insert's outcome), so it is visible now: answer as a
        # resend after it would — the same content is that item, other content a 422.
        known = await _by_reference(session, data)
        if known is None:
            raise Conflict("The same external reference is being received concurrently; retry") from exc
        return _resent(known, digest), False
    await record(session, actor, "create", "feedback", feedback.id)
    return feedback, True


async def _by_reference(session: AsyncSession, data: FeedbackCreate) -> Feedback | None:
    """The feedback already received under the unit's reference, if any (none without a reference)."""
    if data.external_ref is None:
        return None
    found: Feedback | None = await session.scalar(
        select(Feedback).where(
            Feedback.unit_code == data.unit_code, Feedback.external_ref == data.external_ref
        )
    )
    return found


def _resent(known: Feedback, digest: str) -> Feedback:
    """The item a resend names; a reference received with other content is a 422."""
    if known.content_hash != digest:
        raise InvalidInput.for_field(
            "body.external_ref", "This reference was received with other content", "external_ref_reused"
        )
    return known


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
    WORKFLOW.ensure_allowed(feedback.state, data.to)
    at = moment(data.occurred_at)
    ensure_in_order(at, feedback.received_at, "occurred_at is before the reception")
    deadline: datetime | None = {
        FeedbackState.rejected: feedback.reject_due_at,
        FeedbackState.info_requested: feedback.info_due_at,
        FeedbackState.answered: feedback.answer_due_at,
        FeedbackState.published: feedback.publish_due_at,
    }.get(data.to)
    if data.to is FeedbackState.rejected:
        feedback.rejected_at = at
    elif data.to is FeedbackState.info_requested:
        feedback.info_requested_at = at
    elif data.to is FeedbackState.answered:
        feedback.answered_at = at
        feedback.publish_due_at = _deadline(calendar, at, PUBLISH_DAYS)
    elif data.to is FeedbackState.published:
        feedback.published_at = at
    row = FeedbackTransition(
        feedback_id=feedback.id,
        from_state=feedback.state,
        to_state=data.to,
        client_name=actor.name,
        occurred_at=at,
        comment=data.comment,
        within_deadline=None if deadline is None else at <= deadline,
    )
    await apply(session, feedback, row)
    await record(session, actor, data.to.value, "feedback", feedback.id)
    return feedback


_BY_ID = SortKey([Feedback.id])


def _overdue_at(now: datetime) -> ColumnElement[bool]:
    return and_(Feedback.state.in_([s.value for s in OPEN]), Feedback.answer_due_at < now)


async def list_feedback(
    session: AsyncSession, filters: FeedbackQuery, units: set[str] | None, page: PageParams
) -> Window[Feedback]:
    query = where_given(
        select(Feedback).options(selectinload(Feedback.transitions)),
        equal(Feedback.state, filters.state),
        equal(Feedback.subject, filters.subject),
        equal(Feedback.channel, filters.channel),
        given(units, Feedback.unit_code.in_),
        given(utcnow() if filters.overdue else None, _overdue_at),
    )
    return await keyset_window(session, query, _BY_ID, page, lambda feedback: [feedback.id])


# --- ratings ---------------------------------------------------------------------------------


async def dossier_to_rate(session: AsyncSession, code: str) -> Dossier:
    """The dossier a key rates; absent, the same answer as a dossier outside the key's reach."""
    dossier = await session.get(Dossier, code)
    if dossier is None:
        raise NotFound("Not found")
    return dossier


async def rate(
    session: AsyncSession, dossier: Dossier, data: RatingIn, actor: Principal | None
) -> DossierRating:
    """Record the citizen's rating of a finished dossier, once. The rater may rate it
    (``deps.permitted_rating``); None: a citizen with the receipt's PIN."""
    code = dossier.code
    if dossier.finished_at is None or dossier.status not in (
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
    await record(session, actor, "rate", "dossier", code, {"level": data.level.value})
    return rating


async def recount_deadlines(
    session: AsyncSession, calendar: WorkingCalendar, received_before: datetime | None
) -> int:
    """The 766 deadlines of the feedback received before ``received_before`` (all: None) counted
    again on ``calendar``, after a change of working calendar (SPEC §3); returns how many items."""
    query = where_given(select(Feedback).order_by(Feedback.id), before(Feedback.received_at, received_before))
    counted = 0
    for feedback in await session.scalars(query):
        feedback.reject_due_at = _deadline(calendar, feedback.received_at, REJECT_DAYS)
        feedback.info_due_at = _deadline(calendar, feedback.received_at, INFO_DAYS)
        feedback.answer_due_at = _deadline(calendar, feedback.received_at, ANSWER_DAYS)
        if feedback.answered_at is not None:
            feedback.publish_due_at = _deadline(calendar, feedback.answered_at, PUBLISH_DAYS)
        counted += 1
    await session.flush()
    return counted
