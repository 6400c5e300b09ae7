"""A database per pytest-xdist worker, so that workers running at once never share tables."""

import asyncpg
from sqlalchemy.engine import make_url


def worker_database(url: str, worker: str | None) -> str:
    """``url`` with the worker's name after its database's (``…/test`` → ``…/test_gw0``); ``url``
    itself when the suite runs in one process."""
    if worker is None:
        return url
    parsed = make_url(url)
    return parsed.set(database=f"{parsed.database}_{worker}").render_as_string(hide_password=False)


async def ensure_database(configured_url: str, url: str) -> None:
    """Create ``url``'s database on its server, unless it exists (connecting through the configured
    database, which does)."""
    name = make_url(url).database
    if name == make_url(configured_url).database:
        return
    dsn = make_url(configured_url).set(drivername="postgresql").render_as_string(hide_password=False)
    connection = await asyncpg.connect(dsn, timeout=10)
    try:
        exists = await connection.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not exists:
            # A name cannot be a query parameter; this one is the configured name and gwN.
            await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
