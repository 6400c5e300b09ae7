"""One number that changes whenever stored data changes, for cheap revalidation of statistics.

Every committed write — an API request with an unsafe method, a CLI command — adds one to it in
the same transaction. A polling client's `If-None-Match` can then be answered by reading this row
alone, instead of recomputing the statistics to compare their hash.
"""

from sqlalchemy import BigInteger, Integer, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base

_ROW = 1


class DataVersion(Base):
    __tablename__ = "data_version"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger)


async def current_version(session: AsyncSession) -> int:
    return (await session.scalar(select(DataVersion.version).where(DataVersion.id == _ROW))) or 0


async def bump_version(session: AsyncSession) -> None:
    """Mark the transaction's changes; run it last, so that its row lock is held only until commit."""
    await session.execute(_BUMP, {"row": _ROW})


# The same statement on PostgreSQL and SQLite; an upsert, so that an emptied table heals itself.
_BUMP = text(
    "INSERT INTO data_version (id, version) VALUES (:row, 1) "
    "ON CONFLICT (id) DO UPDATE SET version = data_version.version + 1"
)
