"""Reading the audit log (app.core.audit writes it)."""

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.schemas import AuditFilters
from app.core.audit import AuditRecord
from app.core.filters import at_least, before, equal, where_given
from app.core.pagination import PageParams, SortKey, Window, keyset_window

_NEWEST_FIRST = SortKey([AuditRecord.id], descending=True)


async def list_records(session: AsyncSession, filters: AuditFilters, page: PageParams) -> Window[AuditRecord]:
    query = where_given(
        select(AuditRecord),
        equal(AuditRecord.client_id, filters.client_id),
        equal(AuditRecord.action, filters.action),
        equal(AuditRecord.resource_type, filters.resource_type),
        equal(AuditRecord.resource_id, filters.resource_id),
        at_least(AuditRecord.occurred_at, filters.since),
        before(AuditRecord.occurred_at, filters.until),
    )
    return await keyset_window(session, query, _NEWEST_FIRST, page, lambda record: [record.id])
