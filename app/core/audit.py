"""The audit log's record and its writer: every write, in any domain, records who did what in the
same transaction as the write (the log is read through app.audit)."""

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, Integer, String
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from app.core.base import Base, UTCDateTime
from app.core.errors import request_id_var
from app.core.security import Principal
from app.core.timezone import utcnow


class AuditRecord(Base):
    """One successful write: who did what to which resource, in which request."""

    __tablename__ = "audit_records"

    # SQLite only auto-increments INTEGER PRIMARY KEY.
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    client_id: Mapped[int | None] = mapped_column(ForeignKey("api_clients.id"), index=True)
    client_name: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(40))
    resource_type: Mapped[str] = mapped_column(String(40))
    resource_id: Mapped[str] = mapped_column(String(100))
    request_id: Mapped[str | None] = mapped_column(String(128))
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSON)

    __table_args__ = (Index("ix_audit_records_resource", "resource_type", "resource_id"),)


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
