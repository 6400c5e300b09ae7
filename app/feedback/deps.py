"""Request dependencies of the feedback routes: the desk's key, the feedback of the path, and who
may rate the dossier of the path."""

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, SecurityScopes

from app.clients.deps import authenticate, bearer_scheme, require
from app.core.db import SAFE_METHODS, RowId, SessionDep
from app.core.limits import pin_attempt
from app.core.pagination import PageDep
from app.core.security import Principal, Scope
from app.dossiers.models import Dossier
from app.dossiers.schemas import DossierCode
from app.dossiers.service import dossier_by_pin
from app.feedback import service
from app.feedback.models import Feedback
from app.feedback.schemas import FeedbackCreate, FeedbackQuery, RatingIn
from app.units.access import Listing, ensure_reach, listing_scope

FeedbackWriter = Annotated[Principal, require(Scope.feedback_write)]


async def feedback_listing(
    session: SessionDep, writer: FeedbackWriter, filters: Annotated[FeedbackQuery, Query()], _page: PageDep
) -> Listing[FeedbackQuery]:
    """The list's filters, its unit within the desk's binding (403 outside it).
    Taking the page too, so that a bad page parameter is its 422 before the reach is judged."""
    return Listing(filters, await listing_scope(session, writer, filters.unit))


FeedbackListing = Annotated[Listing[FeedbackQuery], Depends(feedback_listing)]


async def reachable_feedback(
    session: SessionDep, writer: FeedbackWriter, feedback_id: RowId, request: Request
) -> Feedback:
    """The feedback of the path, within the client's binding (404 otherwise, as if absent);
    locked until the request ends when the request changes it."""
    for_update = request.method not in SAFE_METHODS
    feedback = await service.get_feedback(session, feedback_id, for_update=for_update)
    await ensure_reach(session, writer, feedback.unit_code, conceal=True)
    return feedback


ReachableFeedback = Annotated[Feedback, Depends(reachable_feedback)]


async def reachable_new_feedback(
    session: SessionDep, writer: FeedbackWriter, data: FeedbackCreate
) -> FeedbackCreate:
    """New feedback for a unit that exists (422) and that the desk reaches (403). The binding is
    checked before the external reference is looked at: a bound client can neither learn nor take
    another unit's."""
    await service.ensure_unit_known(session, data)
    await ensure_reach(session, writer, data.unit_code)
    return data


ReachableNewFeedback = Annotated[FeedbackCreate, Depends(reachable_new_feedback)]


async def optional_rater(
    request: Request,
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> Principal | None:
    """A client with dossiers:write, or nobody (a citizen with the receipt PIN)."""
    if credentials is None:
        return None
    return await authenticate(SecurityScopes([Scope.dossiers_write.value]), request, session, credentials)


@dataclass(frozen=True)
class PermittedRating:
    dossier: Dossier
    data: RatingIn
    rater: Principal | None


async def permitted_rating(
    request: Request,
    session: SessionDep,
    code: DossierCode,
    data: RatingIn,
    rater: Annotated[Principal | None, Depends(optional_rater)],
) -> PermittedRating:
    """The dossier of the path, if the caller may rate it: a citizen with the PIN of its receipt
    (``pin_attempt``: 429 past the address's allowance or the dossier's wrong PINs, a wrong PIN
    counted), or a dossiers:write key whose binding reaches its unit (404 otherwise, as if absent)."""
    if rater is None:
        async with pin_attempt(request, code):
            secret_key: str = request.app.state.settings.secret_key
            dossier = await dossier_by_pin(session, secret_key, code, data.secret or "")
    else:
        dossier = await service.dossier_to_rate(session, code)
        await ensure_reach(session, rater, dossier.unit_code, conceal=True)
    return PermittedRating(dossier, data, rater)


RateableDossier = Annotated[PermittedRating, Depends(permitted_rating)]
