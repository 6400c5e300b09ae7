from typing import Annotated

from fastapi import APIRouter, Header, Query, Request, Response, status

from app.audit.service import record
from app.clients.deps import require_any
from app.core.bounds import Day
from app.core.db import RowId, SessionDep
from app.core.errors import Forbidden, problem_responses
from app.core.http_caching import cached_json, require_match
from app.core.pagination import Page, PageDep
from app.core.security import Principal, Scope
from app.proposals import service
from app.proposals.models import Proposal
from app.proposals.schemas import (
    ProposalCreate,
    ProposalKind,
    ProposalRead,
    ProposalState,
    ProposalUpdate,
    TransitionIn,
)
from app.units.access import ensure_reach, listing_scope
from app.units.models import UnitLevel

router = APIRouter(prefix="/api/v1/proposals", tags=["proposals"])

# Drafting and deciding both need a key; which transitions a key may make depends on its scopes.
ProposalClient = Annotated[Principal, require_any(Scope.proposals_write, Scope.proposals_decide)]
ProposalId = RowId


@router.post(
    "",
    operation_id="create_proposal",
    status_code=status.HTTP_201_CREATED,
    response_model=ProposalRead,
    responses=problem_responses(400, 409, 422),
    summary="Draft a reform proposal (phương án đơn giản hóa, bãi bỏ, giảm lệ phí)",
)
async def create_proposal(
    session: SessionDep, client: ProposalClient, data: ProposalCreate, request: Request
) -> Response:
    if not client.has(Scope.proposals_write):
        raise Forbidden("Drafting a proposal needs the scope proposals:write")
    proposal = await service.create_proposal(session, data, client)
    await record(session, client, "create", "proposal", proposal.id)
    response = cached_json(
        request, await service.read(session, proposal), status_code=status.HTTP_201_CREATED
    )
    response.headers["Location"] = f"{router.prefix}/{proposal.id}"
    return response


@router.get(
    "",
    operation_id="list_proposals",
    response_model=Page[ProposalRead],
    responses=problem_responses(422),
    summary="List proposals",
)
async def list_proposals(
    session: SessionDep,
    client: ProposalClient,
    page: PageDep,
    kind: ProposalKind | None = None,
    level: UnitLevel | None = None,
    sector: Annotated[str | None, Query(max_length=32)] = None,
    state: ProposalState | None = None,
    unit: Annotated[
        str | None, Query(max_length=32, description="Proposing unit and its descendants")
    ] = None,
    procedure: Annotated[str | None, Query(max_length=64)] = None,
    submitted_from: Day | None = None,
    submitted_to: Day | None = None,
) -> Page[ProposalRead]:
    units = await listing_scope(session, client, unit)
    filters = {
        "kind": kind,
        "level": level,
        "sector_code": sector,
        "state": state,
        "procedure_code": procedure,
        "submitted_from": submitted_from,
        "submitted_to": submitted_to,
    }
    proposals, next_cursor = await service.list_proposals(session, filters, units, page)
    return Page[ProposalRead](
        items=[await service.read(session, p) for p in proposals], next_cursor=next_cursor
    )


async def _reachable(
    session: SessionDep, client: Principal, proposal_id: int, *, for_update: bool = False
) -> Proposal:
    proposal = await service.get_proposal(session, proposal_id, for_update=for_update)
    await ensure_reach(session, client, proposal.unit_code, conceal=True)
    return proposal


@router.get(
    "/{proposal_id}",
    operation_id="get_proposal",
    response_model=ProposalRead,
    responses=problem_responses(404),
    summary="A proposal with its transitions",
)
async def get_proposal(
    session: SessionDep, client: ProposalClient, proposal_id: ProposalId, request: Request
) -> Response:
    proposal = await _reachable(session, client, proposal_id)
    return cached_json(request, await service.read(session, proposal))


@router.patch(
    "/{proposal_id}",
    operation_id="update_proposal",
    response_model=ProposalRead,
    responses=problem_responses(404, 409, 412, 422, 428),
    summary="Edit a draft (needs If-Match)",
)
async def update_proposal(
    session: SessionDep,
    client: ProposalClient,
    proposal_id: ProposalId,
    patch: ProposalUpdate,
    request: Request,
    if_match: Annotated[str | None, Header()] = None,
) -> Response:
    if not client.has(Scope.proposals_write):
        raise Forbidden("Editing a proposal needs the scope proposals:write")
    proposal = await _reachable(session, client, proposal_id, for_update=True)
    require_match(if_match, await service.read(session, proposal), required=True)
    await service.update_proposal(session, proposal, patch)
    await record(session, client, "update", "proposal", proposal.id)
    return cached_json(request, await service.read(session, proposal))


@router.post(
    "/{proposal_id}/transitions",
    operation_id="transition_proposal",
    response_model=ProposalRead,
    responses=problem_responses(403, 404, 409, 422),
    summary="Move a proposal: submit, withdraw (proposals:write); approve, reject, implement (decide)",
)
async def transition_proposal(
    session: SessionDep, client: ProposalClient, proposal_id: ProposalId, data: TransitionIn
) -> ProposalRead:
    proposal = await _reachable(session, client, proposal_id, for_update=True)
    await service.transition(session, proposal, data, client)
    await record(session, client, data.to.value, "proposal", proposal.id, {"comment": data.comment})
    return await service.read(session, proposal)
