"""Imports every domain's models so that ``Base.metadata`` knows all tables (Alembic, tests)."""

from app.units.models import Unit

__all__ = ["Unit"]
