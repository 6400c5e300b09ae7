from typing import Annotated

from fastapi import APIRouter, Query

from app.audit import service
from app.audit.schemas import AuditFilters, AuditRecordRead
from app.clients.deps import AdminDep
from app.core.db import SessionDep
from app.core.errors import problem_responses
from app.core.http_caching import Route
from app.core.pagination import Page, PageDep

router = APIRouter(prefix="/audit", tags=["audit"], route_class=Route)


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
    filters: Annotated[AuditFilters, Query()],
) -> Page[AuditRecordRead]:
    return (await service.list_records(session, filters, page)).page(AuditRecordRead.model_validate)
