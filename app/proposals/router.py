from typing import Annotated

from fastapi import APIRouter, Depends, Header, Request, Response, status

from app.core.db import SessionDep
from app.core.errors import problem_responses
from app.core.http_caching import TAGGED_CREATED, TAGGED_READ, TAGGED_WRITE, Route, require_match
from app.core.links import locate
from app.core.pagination import Page, PageDep
from app.proposals import service
from app.proposals.deps import (
    PermittedTransition,
    ProposalDrafter,
    ProposalListing,
    ReachableDraft,
    ReachableProposal,
    permitted_transition,
)
from app.proposals.schemas import (
    ProposalRead,
    ProposalUpdate,
)

router = APIRouter(prefix="/proposals", tags=["proposals"], route_class=Route)


@router.post(
    "",
    operation_id="create_proposal",
    status_code=status.HTTP_201_CREATED,
    response_model=ProposalRead,
    responses={**TAGGED_CREATED, **problem_responses(400, 409, 422)},
    summary="Draft a reform proposal (phương án đơn giản hóa, bãi bỏ, giảm lệ phí)",
)
async def create_proposal(
    session: SessionDep, client: ProposalDrafter, draft: ReachableDraft, request: Request, response: Response
) -> ProposalRead:
    proposal = await service.create_proposal(session, draft.data, draft.procedure, client)
    locate(request, response, "get_proposal", proposal_id=proposal.id)
    return await service.read(session, proposal)


@router.get(
    "",
    operation_id="list_proposals",
    response_model=Page[ProposalRead],
    responses=problem_responses(422),
    summary="List proposals",
)
async def list_proposals(session: SessionDep, listing: ProposalListing, page: PageDep) -> Page[ProposalRead]:
    return (await service.list_proposals(session, listing.filters, listing.units, page)).page(service.to_read)


@router.get(
    "/{proposal_id}",
    operation_id="get_proposal",
    response_model=ProposalRead,
    responses={**TAGGED_READ, **problem_responses(404)},
    summary="A proposal with its transitions",
)
async def get_proposal(session: SessionDep, proposal: ReachableProposal) -> ProposalRead:
    return await service.read(session, proposal)


@router.patch(
    "/{proposal_id}",
    operation_id="update_proposal",
    response_model=ProposalRead,
    responses={**TAGGED_WRITE, **problem_responses(404, 409, 412, 422, 428)},
    summary="Edit a draft (needs If-Match)",
)
async def update_proposal(
    session: SessionDep,
    client: ProposalDrafter,
    proposal: ReachableProposal,
    patch: ProposalUpdate,
    if_match: Annotated[str | None, Header()] = None,
) -> ProposalRead:
    require_match(if_match, await service.read(session, proposal), required=True)
    await service.update_proposal(session, proposal, patch, client)
    return await service.read(session, proposal)


@router.post(
    "/{proposal_id}/transitions",
    operation_id="transition_proposal",
    response_model=ProposalRead,
    responses={**TAGGED_WRITE, **problem_responses(403, 404, 409, 422)},
    summary="Move a proposal: submit, withdraw (proposals:write); approve, reject, implement (decide)",
)
async def transition_proposal(
    session: SessionDep, move: Annotated[PermittedTransition, Depends(permitted_transition)]
) -> ProposalRead:
    proposal, data = move.proposal, move.data
    await service.transition(session, proposal, data, move.actor)
    return await service.read(session, proposal)
