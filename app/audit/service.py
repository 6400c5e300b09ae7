"""Reading the audit log (app.core.audit writes it)."""

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.schemas import AuditFilters
from app.core.audit import AuditRecord
from app.core.db import where_equal
from app.core.pagination import PageParams, SortKey, Window, keyset_window

_NEWEST_FIRST = SortKey([AuditRecord.id], descending=True)


async def list_records(session: AsyncSession, filters: AuditFilters, page: PageParams) -> Window[AuditRecord]:
    query = where_equal(
        select(AuditRecord),
        {
            AuditRecord.client_id: filters.client_id,
            AuditRecord.action: filters.action,
            AuditRecord.resource_type: filters.resource_type,
            AuditRecord.resource_id: filters.resource_id,
        },
    )
    if filters.since is not None:
        query = query.where(AuditRecord.occurred_at >= filters.since)
    if filters.until is not None:
        query = query.where(AuditRecord.occurred_at < filters.until)
    return await keyset_window(session, query, _NEWEST_FIRST, page, lambda record: [record.id])
