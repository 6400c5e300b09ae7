"""Lock: the writers of one dossier are serialised, whichever request they come in."""

from collections.abc import Sequence

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.db import take_write_lock


async def lock_dossiers(session: AsyncSession, codes: Sequence[str]) -> None:
    """Serialise the writers of these dossiers until the transaction ends, known or not yet received.

    PostgreSQL: transaction-level advisory locks on the codes' hashes, taken in one order so two
    batches cannot deadlock. SQLite has one writer at a time: taking the write lock first makes
    everything the transaction reads afterwards current.
    """
    if not codes:
        return
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(_ADVISORY_LOCKS, {"codes": sorted(codes)})
    else:
        await take_write_lock(session)


_ADVISORY_LOCKS = text(
    "SELECT pg_advisory_xact_lock(k) FROM "
    "(SELECT DISTINCT hashtextextended(c, 7) AS k FROM unnest(CAST(:codes AS text[])) AS c "
    "ORDER BY 1 OFFSET 0) AS keys"
)
