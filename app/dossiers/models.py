from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base, UTCDateTime, utcnow


class Dossier(Base):
    """A citizen's dossier (hồ sơ) as its events left it; see app.dossiers.lifecycle."""

    __tablename__ = "dossiers"

    code: Mapped[str] = mapped_column(String(64), primary_key=True)
    procedure_code: Mapped[str] = mapped_column(ForeignKey("procedures.code"))
    unit_code: Mapped[str] = mapped_column(ForeignKey("units.code"))
    # The sector of the procedure version in force at reception, for statistics by sector.
    sector_code: Mapped[str | None] = mapped_column(String(32))
    status: Mapped[int] = mapped_column(SmallInteger)
    channel: Mapped[str | None] = mapped_column(String(16))
    online_level: Mapped[str | None] = mapped_column(String(16))
    received_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    original_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    returned_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    withdrawn_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    refused_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    supplement_count: Mapped[int] = mapped_column(Integer, default=0)
    waiting_since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    apology_count: Mapped[int] = mapped_column(Integer, default=0)
    new_return_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    on_time: Mapped[bool | None] = mapped_column(Boolean)
    early: Mapped[bool | None] = mapped_column(Boolean)
    overdue_from: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_event_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    lookup_secret_hash: Mapped[str | None] = mapped_column(String(64))
    paid_online: Mapped[bool | None] = mapped_column(Boolean)
    fee_payable: Mapped[bool | None] = mapped_column(Boolean)
    digitized: Mapped[bool | None] = mapped_column(Boolean)
    e_result: Mapped[bool | None] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    __table_args__ = (
        Index("ix_dossiers_unit_received", "unit_code", "received_at"),
        Index("ix_dossiers_unit_due", "unit_code", "due_at"),
        Index("ix_dossiers_procedure_code", "procedure_code"),
        Index("ix_dossiers_status_due", "status", "due_at"),
    )


class DossierEvent(Base):
    """One event as a client sent it (its latest revision); ``(client_id, event_id)`` makes
    resending it harmless. ``status`` is its verdict in the dossier's history (app.dossiers.history):
    applied, pending (kept, waiting for its reception or a missing event), rejected (with the
    reason) or cancelled (withdrawn by a correction)."""

    __tablename__ = "dossier_events"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("api_clients.id"))
    event_id: Mapped[str] = mapped_column(String(100))
    dossier_code: Mapped[str] = mapped_column(String(64))
    type: Mapped[str] = mapped_column(String(32))
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # The event as received, with the look-up PIN replaced by its hash; compared on resends.
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    payload_hash: Mapped[str] = mapped_column(String(64))
    request_id: Mapped[str | None] = mapped_column(String(128))
    ingested_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revision: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    status: Mapped[str] = mapped_column(String(16), default="applied", server_default="applied")
    reason: Mapped[str | None] = mapped_column(String(500))

    __table_args__ = (
        UniqueConstraint("client_id", "event_id", name="uq_dossier_events_client_event"),
        Index("ix_dossier_events_dossier", "dossier_code", "occurred_at"),
        # Pending events are few: this index answers "does this dossier have any?" for every batch.
        Index(
            "ix_dossier_events_pending",
            "dossier_code",
            postgresql_where=text("status = 'pending'"),
            sqlite_where=text("status = 'pending'"),
        ),
    )


class DossierEventCorrection(Base):
    """A stored event replaced by a higher revision, or withdrawn: what changed, when, by whom."""

    __tablename__ = "dossier_event_corrections"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    event_row_id: Mapped[int] = mapped_column(ForeignKey("dossier_events.id"), index=True)
    dossier_code: Mapped[str] = mapped_column(String(64), index=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("api_clients.id"))
    from_revision: Mapped[int] = mapped_column(Integer)
    to_revision: Mapped[int] = mapped_column(Integer)
    cancelled: Mapped[bool] = mapped_column(Boolean, default=False)
    # {field: [before, after]} over the event's payload.
    changes: Mapped[dict[str, Any]] = mapped_column(JSON)
    request_id: Mapped[str | None] = mapped_column(String(128))
    corrected_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
