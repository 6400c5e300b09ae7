"""Objects moved through states by transitions they keep (a reform proposal, a feedback item): the
moves their workflow allows, when a move happened, and the move made. Each domain keeps what is its
own: who may make which move, and what a move changes besides the state."""

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Generic, Protocol, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from app.core.errors import Conflict, InvalidInput
from app.core.timezone import FUTURE_TOLERANCE, utcnow

State = TypeVar("State", bound=StrEnum)


@dataclass(frozen=True)
class Workflow(Generic[State]):
    """The states that may follow each state; a state that no move leaves is final."""

    subject: str  # the object as a refusal names it: "A proposal", "Feedback"
    moves: Mapping[State, Collection[State]]

    def ensure_allowed(self, current: State, to: State) -> None:
        """Refuse a move the workflow does not make from the current state (409)."""
        if to not in self.moves.get(current, ()):
            raise Conflict(f"{self.subject} cannot go from {current.value} to {to.value}")


def moment(sent: datetime | None, field: str = "occurred_at") -> datetime:
    """When something happened, as the body's ``field`` says (in UTC) or now; not in the future
    (422)."""
    now = utcnow()
    at = (sent or now).astimezone(UTC)
    if at > now + FUTURE_TOLERANCE:
        raise InvalidInput.for_field(f"body.{field}", f"{field} lies in the future", "in_future")
    return at


def ensure_in_order(at: datetime, earlier: datetime | None, detail: str) -> None:
    """Refuse a move dated before ``earlier``, what the object's history already holds (422)."""
    if earlier is not None and at < earlier:
        raise InvalidInput.for_field("body.occurred_at", detail, "out_of_order")


class WorkflowItem(Protocol[State]):
    state: State


class TransitionRow(Protocol[State]):
    to_state: State


async def apply(session: AsyncSession, item: WorkflowItem[State], row: TransitionRow[State]) -> None:
    """The move made: its transition row stored, the object in the state the row moves it to."""
    session.add(row)
    item.state = row.to_state
    await session.flush()
