"""Throw-away PostgreSQL databases for the tests and the benchmarks (bench/ imports this too)."""

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool


async def wipe_postgres_schema(url: str) -> None:
    """Drop everything in the ``public`` schema: for test and benchmark databases only."""
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.begin() as connection:
            await connection.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
            await connection.execute(text("CREATE SCHEMA public"))
    finally:
        await engine.dispose()
