"""Reform proposals: rules of the workflow and the changes they make to the catalogue."""

from datetime import date
from typing import Any

from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from app.core.audit import record
from app.core.db import load_for_update
from app.core.errors import Conflict, FieldError, InvalidInput, NotFound
from app.core.filters import equal, from_day, given, through_day, where_given
from app.core.pagination import PageParams, SortKey, Window, keyset_window
from app.core.security import Principal
from app.core.timezone import local_day
from app.core.workflow import Workflow, apply, ensure_in_order, moment
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
from app.units.models import Unit

WORKFLOW = Workflow[ProposalState](
    "A proposal",
    {
        ProposalState.draft: {ProposalState.submitted, ProposalState.withdrawn},
        ProposalState.submitted: {ProposalState.approved, ProposalState.rejected, ProposalState.withdrawn},
        ProposalState.approved: {ProposalState.implemented},
    },
)
DECISIONS = {ProposalState.approved, ProposalState.rejected, ProposalState.implemented}
OPEN = {ProposalState.draft, ProposalState.submitted, ProposalState.approved}


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


async def named_procedure(session: AsyncSession, data: ProposalCreate) -> Procedure:
    """The procedure the proposal names, carried out at its level, and its unit: both must exist
    (422 otherwise). Checked before the drafter's reach, so that a bad reference is a 422 whoever sends it."""
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
    return procedure


async def create_proposal(
    session: AsyncSession, data: ProposalCreate, procedure: Procedure, actor: Principal
) -> Proposal:
    """A draft of the proposal sent, whose references the route's dependency resolved to
    ``procedure`` and whose unit it found within the drafter's reach (``deps.reachable_draft``)."""
    _check_change(data.kind, data.change, procedure)
    if data.kind is ProposalKind.abolish:
        await _check_abolish(session, procedure, data.level.value, None)
    proposal = Proposal(
        **data.model_dump(mode="json", exclude={"effective_from"}),
        effective_from=data.effective_from,
        sector_code=procedure.sector_code,
        state=ProposalState.draft.value,
    )
    session.add(proposal)
    await session.flush()
    await record(session, actor, "create", "proposal", proposal.id)
    return proposal


async def update_proposal(
    session: AsyncSession, proposal: Proposal, patch: ProposalUpdate, actor: Principal
) -> Proposal:
    if proposal.state != ProposalState.draft:
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
    await record(session, actor, "update", "proposal", proposal.id)
    return proposal


async def transition(
    session: AsyncSession, proposal: Proposal, data: TransitionIn, actor: Principal
) -> Proposal:
    """Move the proposal by a move the route's dependency permitted (``deps.permitted_transition``:
    allowed from its state, the actor's scope and reach); the proposal was locked before that check,
    so its state is still the one checked."""
    at = moment(data.occurred_at)
    last = await session.scalar(
        select(func.max(ProposalTransition.occurred_at)).where(ProposalTransition.proposal_id == proposal.id)
    )
    ensure_in_order(at, last, "Transitions must come in time order")
    if data.to is ProposalState.submitted:
        proposal.submitted_at = at
    if data.to is ProposalState.implemented:
        await _implement(session, proposal, local_day(at), actor)
    row = ProposalTransition(
        proposal_id=proposal.id,
        from_state=proposal.state,
        to_state=data.to,
        client_name=actor.name,
        occurred_at=at,
        comment=data.comment,
    )
    await apply(session, proposal, row)
    await record(session, actor, data.to.value, "proposal", proposal.id, {"comment": data.comment})
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
    version = await catalogue.revise(
        session, procedure, ProcedureUpdate.model_validate({**change, "in_force_from": effective}), actor
    )
    proposal.implemented_version = version.version if version is not None else None


_BY_ID = SortKey([Proposal.id])


async def list_proposals(
    session: AsyncSession, filters: ProposalQuery, units: set[str] | None, page: PageParams
) -> Window[Proposal]:
    query = where_given(
        select(Proposal).options(selectinload(Proposal.transitions)),
        equal(Proposal.kind, filters.kind),
        equal(Proposal.level, filters.level),
        equal(Proposal.state, filters.state),
        equal(Proposal.procedure_code, filters.procedure),
        equal(Proposal.sector_code, filters.sector),
        given(units, Proposal.unit_code.in_),
        from_day(Proposal.submitted_at, filters.submitted_from),
        through_day(Proposal.submitted_at, filters.submitted_to),
    )
    return await keyset_window(session, query, _BY_ID, page, lambda proposal: [proposal.id])
