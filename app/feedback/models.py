from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.core.base import Base, UTCDateTime, enum_column
from app.core.timezone import utcnow


class FeedbackChannel(StrEnum):
    portal = "portal"
    direct = "direct"
    hotline = "hotline"
    mail = "mail"


class FeedbackSubject(StrEnum):
    procedure = "procedure"
    unit = "unit"
    officer = "officer"


class FeedbackState(StrEnum):
    received = "received"
    processing = "processing"
    info_requested = "info_requested"
    rejected = "rejected"
    answered = "answered"
    published = "published"


class Feedback(Base):
    """Citizen feedback (phản ánh, kiến nghị) about a procedure, a unit or an officer's conduct."""

    __tablename__ = "feedback"

    id: Mapped[int] = mapped_column(primary_key=True)
    # Unique per unit: a reference names feedback in its unit's system, not across the country.
    external_ref: Mapped[str | None] = mapped_column(String(100))
    channel: Mapped[FeedbackChannel] = mapped_column(enum_column(FeedbackChannel, "channel"))
    subject: Mapped[FeedbackSubject] = mapped_column(enum_column(FeedbackSubject, "subject"))
    procedure_code: Mapped[str | None] = mapped_column(ForeignKey("procedures.code"))
    unit_code: Mapped[str] = mapped_column(ForeignKey("units.code"))
    officer: Mapped[str | None] = mapped_column(String(200))
    content: Mapped[str] = mapped_column(Text)
    contact: Mapped[str | None] = mapped_column(String(500))
    content_hash: Mapped[str] = mapped_column(String(64))
    state: Mapped[FeedbackState] = mapped_column(enum_column(FeedbackState, "state"))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    reject_due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    info_due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    answer_due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    publish_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    rejected_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    info_requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    # Loaded explicitly (selectinload in lists, refresh for one): never by surprise, one per item.
    transitions: Mapped[list["FeedbackTransition"]] = relationship(
        lazy="raise", order_by="(FeedbackTransition.occurred_at, FeedbackTransition.id)"
    )

    __table_args__ = (
        Index("ix_feedback_unit_received", "unit_code", "received_at"),
        UniqueConstraint("unit_code", "external_ref", name="uq_feedback_unit_code"),
    )


class FeedbackTransition(Base):
    __tablename__ = "feedback_transitions"

    id: Mapped[int] = mapped_column(primary_key=True)
    feedback_id: Mapped[int] = mapped_column(ForeignKey("feedback.id"), index=True)
    from_state: Mapped[FeedbackState] = mapped_column(enum_column(FeedbackState, "from_state"))
    to_state: Mapped[FeedbackState] = mapped_column(enum_column(FeedbackState, "to_state"))
    client_name: Mapped[str] = mapped_column(String(100))
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    comment: Mapped[str | None] = mapped_column(Text)
    within_deadline: Mapped[bool | None] = mapped_column()
