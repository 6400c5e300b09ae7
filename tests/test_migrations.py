"""The migrations build the schema the models describe, and walk down and up cleanly."""

import asyncio
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Enum, inspect
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from app.core import migrations
from app.core.base import Base, IntEnumType


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
    script = ScriptDirectory.from_config(migrations.alembic_config("sqlite://"))
    assert len(script.get_heads()) == 1
    assert all(len(rev.nextrev) <= 1 for rev in script.walk_revisions())


def _enum_columns() -> dict[tuple[str, str], set[str | int]]:
    """Every column the models type with an enum, and the enum's values."""
    found: dict[tuple[str, str], set[str | int]] = {}
    for table in Base.metadata.sorted_tables:
        for column in table.columns:
            if isinstance(column.type, Enum):
                found[(table.name, column.name)] = set(column.type.enums)
            elif isinstance(column.type, IntEnumType):
                found[(table.name, column.name)] = {int(member) for member in column.type.enum}
    return found


def test_every_enum_column_is_checked_with_the_enums_values() -> None:
    script = ScriptDirectory.from_config(migrations.alembic_config("sqlite://"))
    checked = script.get_revision("0013").module.CHECKED
    in_migration = {(table, column): set(values) for table, column, values in checked}
    in_migration[("units", "level")] = {"province", "district", "commune"}  # since 0001
    assert in_migration == _enum_columns()
