"""Request dependencies of the feedback routes: the desk's key and the feedback of the path."""

from typing import Annotated

from fastapi import Depends, Request

from app.clients.deps import require
from app.core.db import SAFE_METHODS, RowId, SessionDep
from app.core.security import Principal, Scope
from app.feedback import service
from app.feedback.models import Feedback
from app.feedback.schemas import FeedbackCreate
from app.units.access import ensure_reach

FeedbackWriter = Annotated[Principal, require(Scope.feedback_write)]


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
