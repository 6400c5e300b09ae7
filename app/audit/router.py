from typing import Annotated

from fastapi import APIRouter, Query

from app.audit import service
from app.audit.schemas import AuditFilters, AuditRecordRead
from app.clients.deps import AdminDep
from app.core.bounds import Moment
from app.core.db import MAX_ID, SessionDep
from app.core.errors import problem_responses
from app.core.pagination import Page, PageDep

router = APIRouter(prefix="/api/v1/audit", tags=["audit"])


@router.get(
    "",
    operation_id="list_audit_records",
    response_model=Page[AuditRecordRead],
    responses=problem_responses(422),
    summary="The audit log of successful writes, newest first",
)
async def list_audit_records(
    session: SessionDep,
    _admin: AdminDep,
    page: PageDep,
    client_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    action: Annotated[str | None, Query(max_length=40)] = None,
    resource_type: Annotated[str | None, Query(max_length=40)] = None,
    resource_id: Annotated[str | None, Query(max_length=100)] = None,
    since: Annotated[Moment | None, Query(description="From this instant (with offset), inclusive")] = None,
    until: Annotated[Moment | None, Query(description="Before this instant (with offset)")] = None,
) -> Page[AuditRecordRead]:
    filters = AuditFilters(
        client_id=client_id,
        action=action,
        resource_type=resource_type,
        resource_id=resource_id,
        since=since,
        until=until,
    )
    return await service.list_records(session, filters, page)
