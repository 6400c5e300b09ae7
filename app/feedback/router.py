from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response, status
from fastapi.security import HTTPAuthorizationCredentials, SecurityScopes

from app.audit.service import record
from app.clients.deps import authenticate, bearer_scheme, require
from app.core.db import RowId, SessionDep
from app.core.errors import problem_responses
from app.core.http_caching import cached_json
from app.core.limits import pin_attempt
from app.core.pagination import Page, PageDep
from app.core.security import Principal, Scope
from app.dossiers.router import CalendarDep
from app.dossiers.schemas import DossierCode
from app.feedback import service
from app.feedback.schemas import (
    FeedbackChannel,
    FeedbackCreate,
    FeedbackRead,
    FeedbackState,
    FeedbackSubject,
    FeedbackTransitionIn,
    RatingIn,
    RatingRead,
)
from app.units.access import ensure_reach, listing_scope

router = APIRouter(prefix="/api/v1/feedback", tags=["feedback"])
ratings_router = APIRouter(prefix="/api/v1/dossiers", tags=["feedback"])

FeedbackWriter = Annotated[Principal, require(Scope.feedback_write)]
FeedbackId = RowId


@router.post(
    "",
    operation_id="receive_feedback",
    status_code=status.HTTP_201_CREATED,
    response_model=FeedbackRead,
    responses={
        200: {"model": FeedbackRead, "description": "Already received (same reference)"},
        **problem_responses(422),
    },
    summary="Record citizen feedback (phản ánh, kiến nghị); idempotent on external_ref",
)
async def receive_feedback(
    session: SessionDep, writer: FeedbackWriter, calendar: CalendarDep, data: FeedbackCreate, request: Request
) -> Response:
    feedback, created = await service.receive(session, data, writer, calendar)
    if created:
        await record(session, writer, "create", "feedback", feedback.id)
    body = await service.read(session, feedback)
    return cached_json(request, body, status_code=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


@router.get(
    "",
    operation_id="list_feedback",
    response_model=Page[FeedbackRead],
    responses=problem_responses(422),
    summary="List feedback",
)
async def list_feedback(
    session: SessionDep,
    writer: FeedbackWriter,
    page: PageDep,
    state: FeedbackState | None = None,
    subject: FeedbackSubject | None = None,
    channel: FeedbackChannel | None = None,
    unit: str | None = None,
    overdue: bool = False,
) -> Page[FeedbackRead]:
    units = await listing_scope(session, writer, unit)
    filters = {"state": state, "subject": subject, "channel": channel, "overdue": overdue}
    items, next_cursor = await service.list_feedback(session, filters, units, page)
    return Page[FeedbackRead](items=[await service.read(session, f) for f in items], next_cursor=next_cursor)


@router.get(
    "/{feedback_id}",
    operation_id="get_feedback",
    response_model=FeedbackRead,
    responses=problem_responses(404),
    summary="One feedback with its deadlines and transitions",
)
async def get_feedback(
    session: SessionDep, writer: FeedbackWriter, feedback_id: FeedbackId, request: Request
) -> Response:
    feedback = await service.get_feedback(session, feedback_id)
    await ensure_reach(session, writer, feedback.unit_code, conceal=True)
    return cached_json(request, await service.read(session, feedback))


@router.post(
    "/{feedback_id}/transitions",
    operation_id="transition_feedback",
    response_model=FeedbackRead,
    responses=problem_responses(404, 409, 422),
    summary="Process, ask for information, reject, answer or publish feedback",
)
async def transition_feedback(
    session: SessionDep,
    writer: FeedbackWriter,
    calendar: CalendarDep,
    feedback_id: FeedbackId,
    data: FeedbackTransitionIn,
) -> FeedbackRead:
    feedback = await service.get_feedback(session, feedback_id, for_update=True)
    await ensure_reach(session, writer, feedback.unit_code, conceal=True)
    await service.transition(session, feedback, data, writer, calendar)
    await record(session, writer, data.to.value, "feedback", feedback.id)
    return await service.read(session, feedback)


async def optional_rater(
    request: Request,
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> Principal | None:
    """A client with dossiers:write, or nobody (a citizen with the receipt PIN)."""
    if credentials is None:
        return None
    return await authenticate(SecurityScopes([Scope.dossiers_write.value]), request, session, credentials)


@ratings_router.post(
    "/{code}/rating",
    operation_id="rate_dossier",
    status_code=status.HTTP_201_CREATED,
    response_model=RatingRead,
    responses=problem_responses(401, 403, 404, 409, 422, 429),
    summary="Rate a finished dossier once (đánh giá sự hài lòng): receipt PIN or a dossiers:write key",
)
async def rate_dossier(
    session: SessionDep,
    request: Request,
    code: DossierCode,
    data: RatingIn,
    rater: Annotated[Principal | None, Depends(optional_rater)],
) -> RatingRead:
    secret_key = request.app.state.settings.secret_key
    if rater is None:  # a citizen with the receipt's PIN
        async with pin_attempt(request, code):
            rating = await service.rate(session, code, data, rater, secret_key)
    else:
        rating = await service.rate(session, code, data, rater, secret_key)
    await record(session, rater, "rate", "dossier", code, {"level": data.level.value})
    return RatingRead.model_validate(rating)
