"""The audit log: one record per successful write, in the same transaction as the write."""

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.models import AuditRecord
from app.audit.schemas import AuditFilters, AuditRecordRead
from app.core.errors import request_id_var
from app.core.pagination import Page, PageParams, encode_cursor
from app.core.security import Principal

# Writes made from the command line, where there is no API client.
COMMAND_LINE = "(command line)"


def _entry(
    actor: Principal | None,
    action: str,
    resource_type: str,
    resource_id: str | int,
    detail: dict[str, Any] | None,
) -> AuditRecord:
    return AuditRecord(
        client_id=actor.client_id if actor else None,
        client_name=actor.name if actor else COMMAND_LINE,
        action=action,
        resource_type=resource_type,
        resource_id=str(resource_id),
        request_id=request_id_var.get(),
        detail=detail,
    )


async def record(
    session: AsyncSession,
    actor: Principal | None,
    action: str,
    resource_type: str,
    resource_id: str | int,
    detail: dict[str, Any] | None = None,
) -> None:
    session.add(_entry(actor, action, resource_type, resource_id, detail))
    await session.flush()


async def record_many(
    session: AsyncSession, actor: Principal | None, entries: list[tuple[str, str, str | int]]
) -> None:
    """Record several writes of one request, as (action, resource type, resource id)."""
    session.add_all(
        _entry(actor, action, resource_type, resource_id, None)
        for action, resource_type, resource_id in entries
    )
    await session.flush()


async def list_records(
    session: AsyncSession, filters: AuditFilters, page: PageParams
) -> Page[AuditRecordRead]:
    query = select(AuditRecord)
    equalities = {
        AuditRecord.client_id: filters.client_id,
        AuditRecord.action: filters.action,
        AuditRecord.resource_type: filters.resource_type,
        AuditRecord.resource_id: filters.resource_id,
    }
    for column, value in equalities.items():
        if value is not None:
            query = query.where(column == value)
    if filters.since is not None:
        query = query.where(AuditRecord.occurred_at >= filters.since)
    if filters.until is not None:
        query = query.where(AuditRecord.occurred_at < filters.until)
    if page.after:
        query = query.where(AuditRecord.id < int(page.after[0]))
    rows = (await session.scalars(query.order_by(AuditRecord.id.desc()).limit(page.limit + 1))).all()
    items = [AuditRecordRead.model_validate(row) for row in rows[: page.limit]]
    next_cursor = encode_cursor([items[-1].id]) if len(rows) > page.limit else None
    return Page[AuditRecordRead](items=items, next_cursor=next_cursor)
