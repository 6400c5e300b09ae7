"""Reading the data version back, for the tests that watch it move.

The service never reads the global version alone: an answer depends on several versions at once
and reads them with app.core.data_version.versions_of. The tests only ask "did this write move it?".
"""

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.data_version import GLOBAL, DataVersion


async def current_version(session: AsyncSession) -> int:
    """The global version (`*`), 0 before any write has moved it."""
    return (await session.scalar(select(DataVersion.version).where(DataVersion.scope == GLOBAL))) or 0
