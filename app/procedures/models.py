from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Boolean, Date, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.core.base import Base, UTCDateTime, enum_column, search_text
from app.core.timezone import utcnow


class Channel(StrEnum):
    direct = "direct"
    online = "online"
    postal = "postal"


class OnlineService(StrEnum):
    none = "none"
    partial = "partial"
    full = "full"


class ProcedureStatus(StrEnum):
    active = "active"
    suspended = "suspended"
    abolished = "abolished"


class Sector(Base):
    """Lĩnh vực."""

    __tablename__ = "sectors"

    code: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class Procedure(Base):
    """The latest version of an administrative procedure (thủ tục hành chính).

    ``data`` holds the whole version; the other columns repeat what search and filters need, so
    they can be indexed on both backends.
    """

    __tablename__ = "procedures"

    code: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(500))
    search_name: Mapped[str] = mapped_column(search_text(500))
    search_code: Mapped[str] = mapped_column(search_text(64))
    sector_code: Mapped[str] = mapped_column(ForeignKey("sectors.code"), index=True)
    level_province: Mapped[bool] = mapped_column(Boolean)
    level_district: Mapped[bool] = mapped_column(Boolean)
    level_commune: Mapped[bool] = mapped_column(Boolean)
    channel_direct: Mapped[bool] = mapped_column(Boolean)
    channel_online: Mapped[bool] = mapped_column(Boolean)
    channel_postal: Mapped[bool] = mapped_column(Boolean)
    online_service: Mapped[OnlineService] = mapped_column(enum_column(OnlineService, "online_service"))
    status: Mapped[ProcedureStatus] = mapped_column(enum_column(ProcedureStatus, "status"))
    version: Mapped[int] = mapped_column(Integer)
    in_force_from: Mapped[date | None] = mapped_column(Date)
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    __table_args__ = (
        # Accent-insensitive "contains" search: trigram index on PostgreSQL (a plain one on SQLite).
        Index(
            "ix_procedures_search_name_trgm",
            "search_name",
            postgresql_using="gin",
            postgresql_ops={"search_name": "gin_trgm_ops"},
            postgresql_with={"fastupdate": "off"},
        ),
        # "Starts with" search, and the order of results within a rank.
        Index("ix_procedures_search_order", "search_name", "code"),
        Index("ix_procedures_search_code", "search_code"),
    )


class ProcedureVersion(Base):
    """One version of a procedure: what it said, from when, and who changed what."""

    __tablename__ = "procedure_versions"

    id: Mapped[int] = mapped_column(primary_key=True)
    procedure_code: Mapped[str] = mapped_column(ForeignKey("procedures.code"))
    version: Mapped[int] = mapped_column(Integer)
    in_force_from: Mapped[date | None] = mapped_column(Date)
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    changes: Mapped[dict[str, Any]] = mapped_column(JSON)
    changed_by: Mapped[str] = mapped_column(String(100))
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    request_id: Mapped[str | None] = mapped_column(String(128))

    __table_args__ = (
        UniqueConstraint("procedure_code", "version", name="uq_procedure_versions_code_version"),
        Index("ix_procedure_versions_in_force", "procedure_code", "in_force_from"),
    )
