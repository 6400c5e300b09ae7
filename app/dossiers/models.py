from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.core.base import Base, IntEnumType, UTCDateTime, enum_column, int_enum_check
from app.core.timezone import utcnow
from app.dossiers.lifecycle import EventType, Status
from app.procedures.models import Channel


class SatisfactionLevel(StrEnum):
    very_satisfied = "very_satisfied"
    satisfied = "satisfied"
    neutral = "neutral"
    unsatisfied = "unsatisfied"
    very_unsatisfied = "very_unsatisfied"


class OnlineLevel(StrEnum):
    partial = "partial"
    full = "full"


class Outcome(StrEnum):
    applied = "applied"
    pending = "pending"
    rejected = "rejected"
    cancelled = "cancelled"


class Dossier(Base):
    """A citizen's dossier (hồ sơ) as its events left it; see app.dossiers.lifecycle."""

    __tablename__ = "dossiers"

    code: Mapped[str] = mapped_column(String(64), primary_key=True)
    procedure_code: Mapped[str] = mapped_column(ForeignKey("procedures.code"))
    unit_code: Mapped[str] = mapped_column(ForeignKey("units.code"))
    # The sector of the procedure version in force at reception, for statistics by sector.
    sector_code: Mapped[str | None] = mapped_column(String(32))
    status: Mapped[Status] = mapped_column(IntEnumType(Status))
    channel: Mapped[Channel | None] = mapped_column(enum_column(Channel, "channel"))
    online_level: Mapped[OnlineLevel | None] = mapped_column(enum_column(OnlineLevel, "online_level"))
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
        int_enum_check("status", Status),
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
    type: Mapped[EventType] = mapped_column(enum_column(EventType, "type", 32))
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # The event as received, with the look-up PIN replaced by its hash; compared on resends.
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    payload_hash: Mapped[str] = mapped_column(String(64))
    request_id: Mapped[str | None] = mapped_column(String(128))
    ingested_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revision: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    status: Mapped[Outcome] = mapped_column(
        enum_column(Outcome, "status"), default=Outcome.applied, server_default=Outcome.applied.value
    )
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


class DossierRating(Base):
    """A citizen's satisfaction with a finished dossier (đánh giá sự hài lòng): one per dossier."""

    __tablename__ = "dossier_ratings"

    dossier_code: Mapped[str] = mapped_column(ForeignKey("dossiers.code"), primary_key=True)
    unit_code: Mapped[str] = mapped_column(ForeignKey("units.code"), index=True)
    level: Mapped[SatisfactionLevel] = mapped_column(enum_column(SatisfactionLevel, "level", 20))
    comment: Mapped[str | None] = mapped_column(Text)
    rated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    rated_by: Mapped[str] = mapped_column(String(100))


class ImportCheckpoint(Base):
    """How far the bulk load of one file has come (app.dossiers.bulk): committed with each chunk."""

    __tablename__ = "import_checkpoints"

    # The file's size and the digest of its first megabyte: a renamed file keeps its checkpoint.
    file_identity: Mapped[str] = mapped_column(String(100), primary_key=True)
    file_name: Mapped[str] = mapped_column(String(500))
    lines_done: Mapped[int] = mapped_column(BigInteger)
    """Lines read: loaded (records), or staged (events)."""
    rejects_bytes: Mapped[int] = mapped_column(BigInteger)
    staged: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    """Every line has been read (records loaded, events staged): for events, folding has begun."""
    folded_through: Mapped[str | None] = mapped_column(String(64))
    """Events: the last dossier code whose staged events are folded into dossiers."""
    finished: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    part_of: Mapped[str | None] = mapped_column(String(100), index=True)
    """A part of a file loaded by several jobs (``--jobs``): the file's identity. The part's own
    identity is the file's and its number; a part of the lines covers those after its first
    ``lines_done``."""
    last_line: Mapped[int | None] = mapped_column(BigInteger)
    """A part of the lines: the last line it covers."""
    last_code: Mapped[str | None] = mapped_column(String(64))
    """A part of the dossiers: the last dossier code it covers (after its first ``folded_through``)."""


class ImportStagedEvent(Base):
    """A valid event of a file being loaded, as read (``raw``) and in its canonical form, until
    its dossier is folded (app.dossiers.bulk): staged in file order, folded in dossier order."""

    __tablename__ = "import_staged_events"

    file_identity: Mapped[str] = mapped_column(String(100), primary_key=True)
    line: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    dossier_code: Mapped[str] = mapped_column(String(64))
    event_id: Mapped[str] = mapped_column(String(100))
    revision: Mapped[int] = mapped_column(Integer)
    cancelled: Mapped[bool] = mapped_column(Boolean)
    raw: Mapped[str] = mapped_column(Text)
    payload: Mapped[str] = mapped_column(Text)
    payload_hash: Mapped[str] = mapped_column(String(64))

    __table_args__ = (Index("ix_import_staged_events_dossier", "file_identity", "dossier_code", "line"),)


class CalendarInForce(Base):
    """The working calendar the dossiers' due dates and the counters were computed on (one row):
    a restart on another calendar recomputes what the change touches (app.dossiers.recalendar)."""

    __tablename__ = "calendar_in_force"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    description: Mapped[dict[str, Any]] = mapped_column(JSON)
    since: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
