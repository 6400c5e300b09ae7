"""The units "for unit U" covers: U and all its descendants (SPEC §2)."""

from sqlalchemy import CTE, select

from app.units.models import Unit


def subtree(code: str) -> CTE:
    """The code and level of unit ``code`` and of all its descendants, as one recursive query (no
    row when the unit does not exist).

    SPEC §2: 'A statistic or listing "for unit U" covers U and all its descendants unless told
    otherwise.'"""
    units = select(Unit.code, Unit.level).where(Unit.code == code).cte("subtree", recursive=True)
    return units.union_all(select(Unit.code, Unit.level).join(units, Unit.parent_code == units.c.code))
