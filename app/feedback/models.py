from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base, UTCDateTime, utcnow


class Feedback(Base):
    """Citizen feedback (phản ánh, kiến nghị) about a procedure, a unit or an officer's conduct."""

    __tablename__ = "feedback"

    id: Mapped[int] = mapped_column(primary_key=True)
    # Unique per unit: a reference names feedback in its unit's system, not across the country.
    external_ref: Mapped[str | None] = mapped_column(String(100))
    channel: Mapped[str] = mapped_column(String(16))
    subject: Mapped[str] = mapped_column(String(16))
    procedure_code: Mapped[str | None] = mapped_column(ForeignKey("procedures.code"))
    unit_code: Mapped[str] = mapped_column(ForeignKey("units.code"))
    officer: Mapped[str | None] = mapped_column(String(200))
    content: Mapped[str] = mapped_column(Text)
    contact: Mapped[str | None] = mapped_column(String(500))
    content_hash: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16))
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

    __table_args__ = (
        Index("ix_feedback_unit_received", "unit_code", "received_at"),
        UniqueConstraint("unit_code", "external_ref", name="uq_feedback_unit_code"),
    )


class FeedbackTransition(Base):
    __tablename__ = "feedback_transitions"

    id: Mapped[int] = mapped_column(primary_key=True)
    feedback_id: Mapped[int] = mapped_column(ForeignKey("feedback.id"), index=True)
    from_state: Mapped[str] = mapped_column(String(16))
    to_state: Mapped[str] = mapped_column(String(16))
    client_name: Mapped[str] = mapped_column(String(100))
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    comment: Mapped[str | None] = mapped_column(Text)
    within_deadline: Mapped[bool | None] = mapped_column()


class DossierRating(Base):
    """A citizen's satisfaction with a finished dossier (đánh giá sự hài lòng): one per dossier."""

    __tablename__ = "dossier_ratings"

    dossier_code: Mapped[str] = mapped_column(ForeignKey("dossiers.code"), primary_key=True)
    unit_code: Mapped[str] = mapped_column(ForeignKey("units.code"), index=True)
    level: Mapped[str] = mapped_column(String(20))
    comment: Mapped[str | None] = mapped_column(Text)
    rated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    rated_by: Mapped[str] = mapped_column(String(100))
