from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response, status
from fastapi.security import HTTPAuthorizationCredentials, SecurityScopes

from app.calendar.deps import CalendarDep
from app.clients.deps import authenticate, bearer_scheme
from app.core.audit import record
from app.core.db import SessionDep
from app.core.errors import problem_responses
from app.core.http_caching import ETAG_HEADER, TAGGED_CREATED, TAGGED_READ, TAGGED_WRITE, Route
from app.core.limits import pin_attempt
from app.core.links import locate
from app.core.pagination import Page, PageDep
from app.core.security import Principal, Scope
from app.core.timezone import utcnow
from app.dossiers.schemas import DossierCode
from app.feedback import service
from app.feedback.deps import FeedbackWriter, ReachableFeedback, ReachableNewFeedback
from app.feedback.schemas import (
    FeedbackQuery,
    FeedbackRead,
    FeedbackTransitionIn,
    RatingIn,
    RatingRead,
)
from app.units.access import listing_scope

router = APIRouter(prefix="/feedback", tags=["feedback"], route_class=Route)
ratings_router = APIRouter(prefix="/dossiers", tags=["feedback"], route_class=Route)


@router.post(
    "",
    operation_id="receive_feedback",
    status_code=status.HTTP_201_CREATED,
    response_model=FeedbackRead,
    responses={
        **TAGGED_CREATED,
        200: {
            "model": FeedbackRead,
            "description": "Already received (same reference)",
            "headers": ETAG_HEADER,
        },
        **problem_responses(422),
    },
    summary="Record citizen feedback (phản ánh, kiến nghị); idempotent on external_ref",
)
async def receive_feedback(
    session: SessionDep,
    writer: FeedbackWriter,
    calendar: CalendarDep,
    data: ReachableNewFeedback,
    request: Request,
    response: Response,
) -> FeedbackRead:
    feedback, created = await service.receive(session, data, calendar)
    if created:
        await record(session, writer, "create", "feedback", feedback.id)
        locate(request, response, "get_feedback", feedback_id=feedback.id)
    else:
        response.status_code = status.HTTP_200_OK
    return await service.read(session, feedback)


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
    filters: Annotated[FeedbackQuery, Query()],
) -> Page[FeedbackRead]:
    units = await listing_scope(session, writer, filters.unit)
    now = utcnow()
    window = await service.list_feedback(session, filters, units, page)
    return window.page(lambda feedback: service.to_read(feedback, now))


@router.get(
    "/{feedback_id}",
    operation_id="get_feedback",
    response_model=FeedbackRead,
    responses={**TAGGED_READ, **problem_responses(404)},
    summary="One feedback with its deadlines and transitions",
)
async def get_feedback(session: SessionDep, feedback: ReachableFeedback) -> FeedbackRead:
    return await service.read(session, feedback)


@router.post(
    "/{feedback_id}/transitions",
    operation_id="transition_feedback",
    response_model=FeedbackRead,
    responses={**TAGGED_WRITE, **problem_responses(404, 409, 422)},
    summary="Process, ask for information, reject, answer or publish feedback",
)
async def transition_feedback(
    session: SessionDep,
    writer: FeedbackWriter,
    calendar: CalendarDep,
    feedback: ReachableFeedback,
    data: FeedbackTransitionIn,
) -> FeedbackRead:
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
    # No Location: a rating has no URL of its own (nothing reads one rating back).
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
