"""Reform proposals: rules of the workflow and the changes they make to the catalogue."""

from datetime import UTC, date, timedelta
from typing import Any

from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from app.core.db import load_for_update, where_equal
from app.core.errors import Conflict, FieldError, Forbidden, InvalidInput, NotFound
from app.core.pagination import PageParams, SortKey, Window, keyset_window
from app.core.security import Principal
from app.core.timezone import local, start_of_day, utcnow
from app.procedures import service as catalogue
from app.procedures.models import Procedure
from app.procedures.schemas import ProcedureUpdate
from app.proposals.models import Proposal, ProposalKind, ProposalState, ProposalTransition
from app.proposals.schemas import (
    ProposalCreate,
    ProposalQuery,
    ProposalRead,
    ProposalUpdate,
    TransitionIn,
    TransitionRead,
)
from app.units.access import ensure_reach
from app.units.models import Unit

S = ProposalState
ALLOWED: dict[ProposalState, set[ProposalState]] = {
    S.draft: {S.submitted, S.withdrawn},
    S.submitted: {S.approved, S.rejected, S.withdrawn},
    S.approved: {S.implemented},
}
DECISIONS = {S.approved, S.rejected, S.implemented}
OPEN = {S.draft, S.submitted, S.approved}
FUTURE_TOLERANCE = timedelta(minutes=5)


def savings(proposal: Proposal) -> int | None:
    if proposal.cost_before_vnd is None or proposal.cost_after_vnd is None:
        return None
    return proposal.cost_before_vnd - proposal.cost_after_vnd


def to_read(proposal: Proposal) -> ProposalRead:
    """The proposal as the API shows it; its transitions must have been loaded with it."""
    return ProposalRead.model_validate(
        {
            **{c.name: getattr(proposal, c.name) for c in Proposal.__table__.c},
            "savings_vnd": savings(proposal),
            "transitions": [TransitionRead.model_validate(t) for t in proposal.transitions],
        }
    )


async def read(session: AsyncSession, proposal: Proposal) -> ProposalRead:
    """One proposal as the API shows it, its transitions read afresh (after a transition)."""
    await session.refresh(proposal, ["transitions"])
    return to_read(proposal)


async def get_proposal(session: AsyncSession, proposal_id: int, *, for_update: bool = False) -> Proposal:
    proposal = (
        await load_for_update(session, Proposal, proposal_id)
        if for_update
        else await session.get(Proposal, proposal_id)
    )
    if proposal is None:
        raise NotFound(f"Proposal {proposal_id} does not exist")
    return proposal


def _fee_total(fees: list[dict[str, Any]]) -> int:
    return sum(int(fee["amount_vnd"]) for fee in fees)


def _check_change(kind: ProposalKind, change: dict[str, Any], procedure: Procedure) -> None:
    """The proposed change must be a valid edit of the procedure, and fit the proposal's kind."""
    if kind is ProposalKind.abolish:
        if change:
            raise InvalidInput.for_field("body.change", "An abolish proposal carries no change", "unexpected")
        return
    if not change:
        raise InvalidInput.for_field("body.change", "Say what the proposal changes", "missing")
    try:
        update = ProcedureUpdate.model_validate(change)
    except ValidationError as exc:
        errors = FieldError.from_pydantic(exc.errors(), "body.change")
        raise InvalidInput("The proposed change is not a valid procedure change", errors=errors) from exc
    if update.in_force_from is not None:
        raise InvalidInput.for_field("body.change.in_force_from", "Use effective_from", "unexpected")
    if kind is ProposalKind.reduce_fee:
        if update.fees is None:
            raise InvalidInput.for_field("body.change.fees", "A fee reduction gives the new fees", "missing")
        new = _fee_total([fee.model_dump() for fee in update.fees])
        if new >= _fee_total(procedure.data.get("fees", [])):
            raise InvalidInput.for_field(
                "body.change.fees", "The new fees must be lower than today's", "fees_not_lower"
            )


async def _check_abolish(
    session: AsyncSession, procedure: Procedure, level: str, exclude: int | None
) -> None:
    if procedure.status == "abolished":
        raise Conflict(f"Procedure {procedure.code!r} is already abolished")
    query = select(func.count()).where(
        Proposal.kind == ProposalKind.abolish.value,
        Proposal.procedure_code == procedure.code,
        Proposal.level == level,
        Proposal.state.in_([s.value for s in OPEN]),
    )
    if exclude is not None:
        query = query.where(Proposal.id != exclude)
    if await session.scalar(query):
        raise Conflict(f"An open proposal to abolish {procedure.code!r} at {level} level exists already")


async def create_proposal(session: AsyncSession, data: ProposalCreate, actor: Principal) -> Proposal:
    procedure = await session.get(Procedure, data.procedure_code)
    if procedure is None:
        raise InvalidInput.for_field(
            "body.procedure_code", f"Procedure {data.procedure_code!r} does not exist", "unknown_reference"
        )
    if data.level.value not in procedure.data["levels"]:
        raise InvalidInput.for_field(
            "body.level",
            f"Procedure {procedure.code!r} is not carried out at {data.level.value} level",
            "level_mismatch",
        )
    if await session.get(Unit, data.unit_code) is None:
        raise InvalidInput.for_field(
            "body.unit_code", f"Unit {data.unit_code!r} does not exist", "unknown_reference"
        )
    await ensure_reach(session, actor, data.unit_code)
    _check_change(data.kind, data.change, procedure)
    if data.kind is ProposalKind.abolish:
        await _check_abolish(session, procedure, data.level.value, None)
    proposal = Proposal(
        **data.model_dump(mode="json", exclude={"effective_from"}),
        effective_from=data.effective_from,
        sector_code=procedure.sector_code,
        state=S.draft.value,
    )
    session.add(proposal)
    await session.flush()
    return proposal


async def update_proposal(session: AsyncSession, proposal: Proposal, patch: ProposalUpdate) -> Proposal:
    if proposal.state != S.draft:
        raise Conflict(f"Proposal {proposal.id} is {proposal.state}; only a draft can be edited")
    changes = patch.model_dump(exclude_unset=True)
    if "change" in changes:
        procedure = await session.get(Procedure, proposal.procedure_code)
        assert procedure is not None
        _check_change(proposal.kind, changes["change"] or {}, procedure)
    for name, value in changes.items():
        if name in ("title", "rationale") and value is None:
            raise InvalidInput.for_field(f"body.{name}", f"{name} cannot be null", "null")
        setattr(proposal, name, value)
    await session.flush()
    return proposal


def ensure_allowed(proposal: Proposal, to: ProposalState) -> None:
    """The workflow: which state may follow which (409 otherwise)."""
    current = proposal.state
    if to not in ALLOWED.get(current, set()):
        raise Conflict(f"A proposal cannot go from {current.value} to {to.value}")


def ensure_reach_of_decision(actor: Principal, to: ProposalState) -> None:
    """Implementing changes the catalogue, which is national: only a decider bound to no unit may
    (403 otherwise). A bound decider approves or rejects the proposals of its subtree (the route
    keeps it to them); the approved proposal then waits for a national decider."""
    if to is S.implemented and actor.unit_code is not None:
        raise Forbidden(
            "Implementing a proposal changes the national catalogue and needs a decider bound to no "
            f"unit; this client is bound to unit {actor.unit_code}, so it may approve or reject the "
            "proposals of that unit's subtree and leave implementing to a national decider"
        )


async def transition(
    session: AsyncSession, proposal: Proposal, data: TransitionIn, actor: Principal
) -> Proposal:
    """Move the proposal (the actor's scope for this move was checked by the route's dependency)."""
    ensure_allowed(proposal, data.to)
    ensure_reach_of_decision(actor, data.to)
    current = proposal.state
    now = utcnow()
    at = (data.occurred_at or now).astimezone(UTC)
    if at > now + FUTURE_TOLERANCE:
        raise InvalidInput.for_field("body.occurred_at", "occurred_at lies in the future", "in_future")
    last = await session.scalar(
        select(func.max(ProposalTransition.occurred_at)).where(ProposalTransition.proposal_id == proposal.id)
    )
    if last is not None and at < last:
        raise InvalidInput.for_field(
            "body.occurred_at", "Transitions must come in time order", "out_of_order"
        )
    if data.to is S.submitted:
        proposal.submitted_at = at
    if data.to is S.implemented:
        await _implement(session, proposal, local(at).date(), actor)
    session.add(
        ProposalTransition(
            proposal_id=proposal.id,
            from_state=current,
            to_state=data.to,
            client_name=actor.name,
            occurred_at=at,
            comment=data.comment,
        )
    )
    proposal.state = data.to
    await session.flush()
    return proposal


async def _implement(session: AsyncSession, proposal: Proposal, today: date, actor: Principal) -> None:
    """Apply the proposal to the catalogue: a new version from the effective date."""
    procedure = await session.get(Procedure, proposal.procedure_code)
    assert procedure is not None
    effective = proposal.effective_from or today
    if proposal.kind == ProposalKind.abolish:
        if procedure.status == "abolished":
            raise Conflict(f"Procedure {procedure.code!r} is already abolished")
        change: dict[str, Any] = {"status": "abolished", "effective_to": None}
    else:
        change = dict(proposal.change)
    before = procedure.version
    await catalogue.update_procedure(
        session, procedure, ProcedureUpdate.model_validate({**change, "in_force_from": effective}), actor
    )
    proposal.implemented_version = procedure.version if procedure.version != before else None


_BY_ID = SortKey([Proposal.id])


async def list_proposals(
    session: AsyncSession, filters: ProposalQuery, units: set[str] | None, page: PageParams
) -> Window[Proposal]:
    query = where_equal(
        select(Proposal).options(selectinload(Proposal.transitions)),
        {
            Proposal.kind: filters.kind,
            Proposal.level: filters.level,
            Proposal.state: filters.state,
            Proposal.procedure_code: filters.procedure,
            Proposal.sector_code: filters.sector,
        },
    )
    if units is not None:
        query = query.where(Proposal.unit_code.in_(units))
    if filters.submitted_from is not None:
        query = query.where(Proposal.submitted_at >= start_of_day(filters.submitted_from))
    if filters.submitted_to is not None:
        query = query.where(Proposal.submitted_at < start_of_day(filters.submitted_to + timedelta(days=1)))
    return await keyset_window(session, query, _BY_ID, page, lambda proposal: [proposal.id])
