"""The declarative base every model shares, and the column types they have in common."""

from datetime import UTC, datetime
from enum import IntEnum, StrEnum
from typing import Any

from sqlalchemy import CheckConstraint, DateTime, Enum, MetaData, SmallInteger, String, column
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import TypeDecorator

# Deterministic constraint names, so that migrations can address them on every backend.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and always read back timezone-aware.

    SQLite keeps no offset, so values are normalised to UTC on the way in and tagged on the way out.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def search_text(length: int) -> String:
    """A column of folded search text compared byte by byte (collation "C") on every backend.

    Ordering and LIKE-prefix index scans then behave the same on PostgreSQL as on SQLite.
    """
    return String(length).with_variant(String(length, collation="C"), "postgresql")


def enum_column(enum: type[StrEnum], name: str, length: int = 16) -> Enum:
    """A column of the enum's values: text on every backend (no native type to migrate when a
    value is added), read back as the enum, with a CHECK constraint ``ck_<table>_<name>`` that
    keeps anything else out of the table whoever writes it."""
    return Enum(
        enum,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=length,
        values_callable=lambda members: [member.value for member in members],
    )


class IntEnumType(TypeDecorator[IntEnum]):
    """A small integer read back as its IntEnum (the national portal's status codes)."""

    impl = SmallInteger
    cache_ok = True

    def __init__(self, enum: type[IntEnum], *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.enum = enum

    def process_bind_param(self, value: int | None, dialect: Dialect) -> int | None:
        return None if value is None else int(value)

    def process_result_value(self, value: int | None, dialect: Dialect) -> IntEnum | None:
        return None if value is None else self.enum(value)


def int_enum_check(name: str, enum: type[IntEnum]) -> CheckConstraint:
    """``ck_<table>_<name>``: the column holds one of the enum's values."""
    return CheckConstraint(column(name).in_([int(member) for member in enum]), name=name)
