from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import CheckConstraint, Date, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from app.core.base import Base, UTCDateTime, enum_column
from app.core.timezone import utcnow


class UnitLevel(StrEnum):
    province = "province"
    district = "district"
    commune = "commune"


# Smaller is higher in the hierarchy; a child must rank strictly below its parent.
LEVEL_RANK: dict[UnitLevel, int] = {UnitLevel.province: 1, UnitLevel.district: 2, UnitLevel.commune: 3}


class Unit(Base):
    """An administrative unit (đơn vị hành chính). Dissolved units stay, closed by ``valid_to``."""

    __tablename__ = "units"

    code: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    level: Mapped[UnitLevel] = mapped_column(enum_column(UnitLevel, "level"))
    division_type: Mapped[str | None] = mapped_column(String(40))
    parent_code: Mapped[str | None] = mapped_column(ForeignKey("units.code"), index=True)
    valid_from: Mapped[date | None] = mapped_column(Date)
    valid_to: Mapped[date | None] = mapped_column(Date)
    # The name folded for accent-insensitive search (see app.core.text.fold), kept in step on write.
    search_name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    __table_args__ = (
        CheckConstraint(
            "valid_from IS NULL OR valid_to IS NULL OR valid_from <= valid_to", name="validity_order"
        ),
        Index("ix_units_level_code", "level", "code"),
    )
