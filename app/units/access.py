"""Object-level authorization: a client bound to a unit reaches only that unit's subtree."""

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.errors import Forbidden, NotFound
from app.core.security import Principal
from app.units.models import Unit
from app.units.subtree import subtree


async def unit_lineage(session: AsyncSession, code: str) -> list[str]:
    """The unit's code followed by the codes of all its ancestors (empty when it does not exist)."""
    lineage = select(Unit.code, Unit.parent_code).where(Unit.code == code).cte("lineage", recursive=True)
    lineage = lineage.union_all(
        select(Unit.code, Unit.parent_code).join(lineage, Unit.code == lineage.c.parent_code)
    )
    return list((await session.scalars(select(lineage.c.code))).all())


async def subtree_codes(session: AsyncSession, code: str) -> set[str]:
    """The unit's code and the codes of all its descendants (app.units.subtree)."""
    units = subtree(code)
    return set((await session.scalars(select(units.c.code))).all())


async def is_within(session: AsyncSession, code: str, ancestor: str) -> bool:
    return ancestor in await unit_lineage(session, code)


async def ensure_reach(
    session: AsyncSession, principal: Principal, unit_code: str | None, *, conceal: bool = False
) -> None:
    """Raise unless the client may touch data of ``unit_code``.

    ``conceal`` is for reads of a single object: outside the binding it answers 404, so the caller
    cannot tell whether the object exists.
    """
    if principal.unit_code is None:
        return
    if unit_code is not None and await is_within(session, unit_code, principal.unit_code):
        return
    if conceal:
        raise NotFound("Not found")
    raise Forbidden(f"This client is bound to unit {principal.unit_code} and cannot act outside it")


Filters = TypeVar("Filters")


@dataclass(frozen=True)
class Listing(Generic[Filters]):
    """A list's filters, and the units it may show (``listing_scope``): what a list route's
    dependency hands its service, the reach already checked."""

    filters: Filters
    units: set[str] | None


async def listing_scope(session: AsyncSession, principal: Principal, unit: str | None) -> set[str] | None:
    """The units a list may show: ``unit``'s subtree (inside the client's binding), the binding's
    subtree, or None for every unit."""
    if unit is not None:
        if principal.unit_code is not None and not await is_within(session, unit, principal.unit_code):
            raise Forbidden(f"This client is bound to unit {principal.unit_code} and cannot read outside it")
        return await subtree_codes(session, unit)
    if principal.unit_code is not None:
        return await subtree_codes(session, principal.unit_code)
    return None


async def provinces_of(session: AsyncSession, codes: Iterable[str]) -> set[str]:
    """The root (province-level) units of these units' trees, in one query."""
    codes = set(codes)
    if not codes:
        return set()
    upward = select(Unit.code, Unit.parent_code).where(Unit.code.in_(codes)).cte("upward", recursive=True)
    upward = upward.union_all(
        select(Unit.code, Unit.parent_code).join(upward, Unit.code == upward.c.parent_code)
    )
    return set((await session.scalars(select(upward.c.code).where(upward.c.parent_code.is_(None)))).all())
