from fastapi import APIRouter, Request, Response, status

from app.calendar.deps import CalendarDep
from app.core.db import SessionDep
from app.core.errors import problem_responses
from app.core.http_caching import ETAG_HEADER, TAGGED_CREATED, TAGGED_READ, TAGGED_WRITE, Route
from app.core.links import locate
from app.core.pagination import Page, PageDep
from app.core.timezone import utcnow
from app.feedback import service
from app.feedback.deps import (
    FeedbackListing,
    FeedbackWriter,
    RateableDossier,
    ReachableFeedback,
    ReachableNewFeedback,
)
from app.feedback.schemas import (
    FeedbackRead,
    FeedbackTransitionIn,
    RatingRead,
)

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
    feedback, created = await service.receive(session, data, calendar, writer)
    if created:
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
async def list_feedback(session: SessionDep, listing: FeedbackListing, page: PageDep) -> Page[FeedbackRead]:
    now = utcnow()
    window = await service.list_feedback(session, listing.filters, listing.units, page)
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
    return await service.read(session, feedback)


@ratings_router.post(
    "/{code}/rating",
    operation_id="rate_dossier",
    status_code=status.HTTP_201_CREATED,
    response_model=RatingRead,
    # No Location: a rating has no URL of its own (nothing reads one rating back).
    responses=problem_responses(401, 403, 404, 409, 422, 429),
    summary="Rate a finished dossier once (đánh giá sự hài lòng): receipt PIN or a dossiers:write key",
)
async def rate_dossier(session: SessionDep, permitted: RateableDossier) -> RatingRead:
    rating = await service.rate(session, permitted.dossier, permitted.data, permitted.rater)
    return RatingRead.model_validate(rating)
