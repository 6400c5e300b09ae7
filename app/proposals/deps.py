"""Request dependencies of the proposal routes: who may draft or decide, the draft of the body and the
proposal of the path, each within the client's reach."""

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Query, Request

from app.clients.deps import require_any
from app.core.db import SAFE_METHODS, RowId, SessionDep
from app.core.errors import Forbidden
from app.core.pagination import PageDep
from app.core.security import Principal, Scope
from app.procedures.models import Procedure
from app.proposals import service
from app.proposals.models import Proposal, ProposalState
from app.proposals.schemas import ProposalCreate, ProposalCreateBody, ProposalQuery, TransitionIn
from app.units.access import Listing, ensure_reach, listing_scope

# Drafting and deciding both need a key; which transitions a key may make depends on its scopes.
ProposalClient = Annotated[Principal, require_any(Scope.proposals_write, Scope.proposals_decide)]


async def drafter(client: ProposalClient, request: Request) -> Principal:
    """A client that may draft and edit proposals (proposals:write)."""
    if not client.has(Scope.proposals_write):
        doing = "Drafting" if request.method == "POST" else "Editing"
        raise Forbidden(f"{doing} a proposal needs the scope proposals:write")
    return client


ProposalDrafter = Annotated[Principal, Depends(drafter)]


async def proposal_listing(
    session: SessionDep, client: ProposalClient, filters: Annotated[ProposalQuery, Query()], _page: PageDep
) -> Listing[ProposalQuery]:
    """The list's filters, its unit within the client's binding (403 outside it).
    Taking the page too, so that a bad page parameter is its 422 before the reach is judged."""
    return Listing(filters, await listing_scope(session, client, filters.unit))


ProposalListing = Annotated[Listing[ProposalQuery], Depends(proposal_listing)]


@dataclass(frozen=True)
class ProposalDraft:
    data: ProposalCreate
    procedure: Procedure


async def reachable_draft(
    session: SessionDep, client: ProposalDrafter, data: ProposalCreateBody
) -> ProposalDraft:
    """The proposal sent, its procedure and unit known (422) and its unit within the drafter's
    binding (403 naming the binding)."""
    procedure = await service.named_procedure(session, data)
    await ensure_reach(session, client, data.unit_code)
    return ProposalDraft(data, procedure)


ReachableDraft = Annotated[ProposalDraft, Depends(reachable_draft)]


async def reachable_proposal(
    session: SessionDep, client: ProposalClient, proposal_id: RowId, request: Request
) -> Proposal:
    """The proposal of the path, within the client's binding: outside it a read is 404 (as if absent)
    and a change (edit, any transition) 403 naming the binding; locked until the request ends when
    the request changes it."""
    for_update = request.method not in SAFE_METHODS
    proposal = await service.get_proposal(session, proposal_id, for_update=for_update)
    await ensure_reach(session, client, proposal.unit_code, conceal=not for_update)
    return proposal


ReachableProposal = Annotated[Proposal, Depends(reachable_proposal)]


def _ensure_reach_of_decision(actor: Principal, to: ProposalState) -> None:
    """Implementing changes the catalogue, which is national: only a decider bound to no unit may
    (403 otherwise). A bound decider approves or rejects the proposals of its subtree
    (``reachable_proposal`` keeps it to them); the approved proposal then waits for a national
    decider."""
    if to is ProposalState.implemented and actor.unit_code is not None:
        raise Forbidden(
            "Implementing a proposal changes the national catalogue and needs a decider bound to no "
            f"unit; this client is bound to unit {actor.unit_code}, so it may approve or reject the "
            "proposals of that unit's subtree and leave implementing to a national decider"
        )


@dataclass(frozen=True)
class PermittedTransition:
    proposal: Proposal
    data: TransitionIn
    actor: Principal


async def permitted_transition(
    proposal: ReachableProposal, data: TransitionIn, client: ProposalClient
) -> PermittedTransition:
    """The move asked for, if the workflow allows it from the proposal's state (409) and the client
    holds the scope it needs (403): submitting and withdrawing need proposals:write, approving,
    rejecting and implementing proposals:decide; implementing also a client bound to no unit (403),
    as the catalogue it changes is national (SPEC §7)."""
    service.WORKFLOW.ensure_allowed(proposal.state, data.to)
    needed = Scope.proposals_decide if data.to in service.DECISIONS else Scope.proposals_write
    if not client.has(needed):
        raise Forbidden(f"Moving a proposal to {data.to.value} needs the scope {needed.value}")
    _ensure_reach_of_decision(client, data.to)
    return PermittedTransition(proposal, data, client)
