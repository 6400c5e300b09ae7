"""What the probes ask of the database: the SQL stays out of the router."""

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.core.migrations import current_revision


async def migration_of(engine: AsyncEngine) -> str | None:
    """The migration the database is at (None: never migrated), on a connection of its own."""
    async with engine.connect() as connection:
        return await current_revision(connection)


async def select_one(session: AsyncSession) -> None:
    """The least a database-backed request can ask: the yardstick of bench/."""
    await session.execute(text("SELECT 1"))
