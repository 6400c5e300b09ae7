"""Versions of the stored data, for cheap revalidation of statistics: one per province.

A committed write moves on the versions of the provinces whose data it changed — the ingestion of
dossier events names them (a replay of duplicates names none, and moves nothing) — or, when a
write does not say (units, the catalogue, a CLI command), the global version `*`, which every
answer depends on. A statistics answer for a unit is tagged with `*` and its province's version,
so a write in one province leaves the answers of every other province as they were, and writes in
different provinces do not queue on one row. A polling client's `If-None-Match` is answered by
reading these rows alone.
"""

from collections.abc import Iterable

from sqlalchemy import BigInteger, String, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from app.core.base import Base

GLOBAL = "*"
TOUCHED = "touched_provinces"
"""``session.info`` key: the provinces a transaction changed; absent means "say nothing: global"."""


class DataVersion(Base):
    __tablename__ = "data_versions"

    scope: Mapped[str] = mapped_column(String(32), primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger)


async def versions_of(session: AsyncSession, provinces: Iterable[str] | None) -> list[tuple[str, int]]:
    """The versions an answer depends on: global and the provinces' (None: every province)."""
    query = select(DataVersion.scope, DataVersion.version).order_by(DataVersion.scope)
    if provinces is not None:
        query = query.where(DataVersion.scope.in_([GLOBAL, *provinces]))
    return [(scope, version) for scope, version in await session.execute(query)]


def touch(session: AsyncSession, provinces: Iterable[str]) -> None:
    """Record that this transaction changed data of these provinces (and of no others)."""
    session.info.setdefault(TOUCHED, set()).update(provinces)


async def bump_version(session: AsyncSession) -> None:
    """Mark the transaction's changes; run it last, so that its row locks are held only until commit."""
    touched: set[str] | None = session.info.get(TOUCHED)
    # Sorted, so that two transactions lock the rows in the same order.
    for scope in sorted(touched) if touched is not None else [GLOBAL]:
        await session.execute(_BUMP, {"scope": scope})


# The same statement on PostgreSQL and SQLite; an upsert, so that a new province gets its row.
_BUMP = text(
    "INSERT INTO data_versions (scope, version) VALUES (:scope, 1) "
    "ON CONFLICT (scope) DO UPDATE SET version = data_versions.version + 1"
)
