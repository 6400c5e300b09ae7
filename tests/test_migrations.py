"""The migrations build the schema the models describe, and walk down and up cleanly."""

import asyncio
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, inspect
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from app.core import migrations
from app.core.db import Base


async def _with_connection(url: str, work: Any) -> Any:
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(work)
    finally:
        await engine.dispose()


def _differences(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, Base.metadata))


def _tables(connection: Connection) -> set[str]:
    return set(inspect(connection).get_table_names())


def test_upgrade_downgrade_upgrade(database_url: str) -> None:
    model_tables = set(Base.metadata.tables)
    migrations.downgrade(database_url, "base")
    assert asyncio.run(_with_connection(database_url, _tables)) & model_tables == set()
    migrations.upgrade(database_url)
    assert model_tables <= asyncio.run(_with_connection(database_url, _tables))


def test_models_and_migrations_agree(database_url: str) -> None:
    assert asyncio.run(_with_connection(database_url, _differences)) == []


def test_history_is_linear_with_one_head() -> None:
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(migrations.alembic_config("sqlite://"))
    assert len(script.get_heads()) == 1
    assert all(len(rev.nextrev) <= 1 for rev in script.walk_revisions())
