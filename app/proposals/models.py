from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, BigInteger, Date, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.core.base import Base, UTCDateTime, enum_column
from app.core.timezone import utcnow
from app.units.models import UnitLevel


class ProposalKind(StrEnum):
    simplify = "simplify"
    abolish = "abolish"
    reduce_fee = "reduce_fee"


class ProposalState(StrEnum):
    draft = "draft"
    submitted = "submitted"
    approved = "approved"
    rejected = "rejected"
    implemented = "implemented"
    withdrawn = "withdrawn"


class Proposal(Base):
    """A reform proposal (phương án đơn giản hóa / bãi bỏ / giảm lệ phí) for one procedure at one level."""

    __tablename__ = "proposals"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[ProposalKind] = mapped_column(enum_column(ProposalKind, "kind"))
    procedure_code: Mapped[str] = mapped_column(ForeignKey("procedures.code"))
    level: Mapped[UnitLevel] = mapped_column(enum_column(UnitLevel, "level"))
    unit_code: Mapped[str] = mapped_column(ForeignKey("units.code"))
    # The procedure's sector when the proposal was made, for statistics by sector.
    sector_code: Mapped[str] = mapped_column(String(32))
    title: Mapped[str] = mapped_column(String(500))
    rationale: Mapped[str] = mapped_column(Text)
    change: Mapped[dict[str, Any]] = mapped_column(JSON)
    cost_before_vnd: Mapped[int | None] = mapped_column(BigInteger)
    cost_after_vnd: Mapped[int | None] = mapped_column(BigInteger)
    effective_from: Mapped[date | None] = mapped_column(Date)
    state: Mapped[ProposalState] = mapped_column(enum_column(ProposalState, "state"))
    submitted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    implemented_version: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    # Loaded explicitly (selectinload in lists, refresh for one): never by surprise, one per item.
    transitions: Mapped[list["ProposalTransition"]] = relationship(
        lazy="raise", order_by="(ProposalTransition.occurred_at, ProposalTransition.id)"
    )

    __table_args__ = (
        Index("ix_proposals_unit_submitted", "unit_code", "submitted_at"),
        Index("ix_proposals_procedure_level", "procedure_code", "level"),
    )


class ProposalTransition(Base):
    __tablename__ = "proposal_transitions"

    id: Mapped[int] = mapped_column(primary_key=True)
    proposal_id: Mapped[int] = mapped_column(ForeignKey("proposals.id"), index=True)
    from_state: Mapped[ProposalState] = mapped_column(enum_column(ProposalState, "from_state"))
    to_state: Mapped[ProposalState] = mapped_column(enum_column(ProposalState, "to_state"))
    client_name: Mapped[str] = mapped_column(String(100))
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    comment: Mapped[str | None] = mapped_column(Text)
