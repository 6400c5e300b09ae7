"""Reform proposals: rules of the workflow and the changes they make to the catalogue."""

from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.db import load_for_update, utcnow
from app.core.errors import Conflict, FieldError, Forbidden, InvalidInput, NotFound
from app.core.pagination import PageParams, encode_cursor
from app.core.security import Principal, Scope
from app.core.timezone import local
from app.procedures import service as catalogue
from app.procedures.models import Procedure
from app.procedures.schemas import ProcedureUpdate
from app.proposals.models import Proposal, ProposalTransition
from app.proposals.schemas import (
    ProposalCreate,
    ProposalKind,
    ProposalRead,
    ProposalState,
    ProposalUpdate,
    TransitionIn,
    TransitionRead,
)
from app.stats.periods import Period
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
PROPOSAL_GROUPS = ("kind", "level", "sector", "state")


def savings(proposal: Proposal) -> int | None:
    if proposal.cost_before_vnd is None or proposal.cost_after_vnd is None:
        return None
    return proposal.cost_before_vnd - proposal.cost_after_vnd


async def read(session: AsyncSession, proposal: Proposal) -> ProposalRead:
    transitions = (
        await session.scalars(
            select(ProposalTransition)
            .where(ProposalTransition.proposal_id == proposal.id)
            .order_by(ProposalTransition.occurred_at, ProposalTransition.id)
        )
    ).all()
    return ProposalRead.model_validate(
        {
            **{c.name: getattr(proposal, c.name) for c in Proposal.__table__.c},
            "savings_vnd": savings(proposal),
            "transitions": [TransitionRead.model_validate(t) for t in transitions],
        }
    )


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
        _check_change(ProposalKind(proposal.kind), changes["change"] or {}, procedure)
    for name, value in changes.items():
        if name in ("title", "rationale") and value is None:
            raise InvalidInput.for_field(f"body.{name}", f"{name} cannot be null", "null")
        setattr(proposal, name, value)
    await session.flush()
    return proposal


async def transition(
    session: AsyncSession, proposal: Proposal, data: TransitionIn, actor: Principal
) -> Proposal:
    current = S(proposal.state)
    if data.to not in ALLOWED.get(current, set()):
        raise Conflict(f"A proposal cannot go from {current.value} to {data.to.value}")
    needed = Scope.proposals_decide if data.to in DECISIONS else Scope.proposals_write
    if not actor.has(needed):
        raise Forbidden(f"Moving a proposal to {data.to.value} needs the scope {needed.value}")
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
            from_state=current.value,
            to_state=data.to.value,
            client_name=actor.name,
            occurred_at=at,
            comment=data.comment,
        )
    )
    proposal.state = data.to.value
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


async def list_proposals(
    session: AsyncSession, filters: dict[str, Any], units: set[str] | None, page: PageParams
) -> tuple[list[Proposal], str | None]:
    query = select(Proposal)
    for name in ("kind", "level", "state", "procedure_code", "sector_code"):
        if filters.get(name) is not None:
            query = query.where(getattr(Proposal, name) == filters[name])
    if units is not None:
        query = query.where(Proposal.unit_code.in_(units))
    if filters.get("submitted_from") is not None:
        query = query.where(Proposal.submitted_at >= _midnight(filters["submitted_from"]))
    if filters.get("submitted_to") is not None:
        query = query.where(Proposal.submitted_at < _midnight(filters["submitted_to"] + timedelta(days=1)))
    if page.after:
        query = query.where(Proposal.id > int(page.after[0]))
    rows = list((await session.scalars(query.order_by(Proposal.id).limit(page.limit + 1))).all())
    return rows[: page.limit], encode_cursor([rows[page.limit - 1].id]) if len(rows) > page.limit else None


def _midnight(day: date) -> datetime:
    from app.stats.periods import Period, Scheme

    return Period(label="", scheme=Scheme.calendar, start=day, end=day).start_at


async def proposal_counts(
    session: AsyncSession, units: set[str], period: Period, group_by: Sequence[str]
) -> tuple[dict[tuple[tuple[str, str], ...], dict[str, int]], dict[str, int]]:
    """Proposals submitted in the period, and their summed yearly savings, per group and in total."""
    rows = await session.execute(
        select(
            Proposal.kind,
            Proposal.level,
            Proposal.sector_code,
            Proposal.state,
            Proposal.cost_before_vnd,
            Proposal.cost_after_vnd,
        ).where(
            Proposal.unit_code.in_(units),
            Proposal.submitted_at >= period.start_at,
            Proposal.submitted_at < period.end_at,
        )
    )
    groups: dict[tuple[tuple[str, str], ...], dict[str, int]] = defaultdict(
        lambda: {"count": 0, "savings_vnd": 0}
    )
    total = {"count": 0, "savings_vnd": 0}
    for kind, level, sector, state, before, after in rows:
        values = {"kind": kind, "level": level, "sector": sector, "state": state}
        saving = before - after if before is not None and after is not None else 0
        for target in (groups[tuple((g, values[g]) for g in group_by)], total):
            target["count"] += 1
            target["savings_vnd"] += saving
    return dict(sorted(groups.items())), total
