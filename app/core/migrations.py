"""Alembic, driven from code: the CLI, readiness check and tests all use these."""

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, OperationalError, ProgrammingError
from sqlalchemy.ext.asyncio import AsyncConnection

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def alembic_config(database_url: str) -> Config:
    config = Config(str(PROJECT_ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(PROJECT_ROOT / "migrations"))
    # '%' would be taken for interpolation by configparser.
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    # The service's logging (JSON or text, UTC ISO 8601 times) is the caller's; alembic.ini's own
    # stays for the `alembic` command run by hand.
    config.attributes["configure_logging"] = False
    return config


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def upgrade(database_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str) -> None:
    command.downgrade(alembic_config(database_url), revision)


async def current_revision(connection: AsyncConnection) -> str | None:
    """The revision the database is at; None when it has never been migrated."""
    try:
        result = await connection.execute(text("SELECT version_num FROM alembic_version"))
    except (OperationalError, ProgrammingError, DBAPIError):
        return None
    return result.scalar_one_or_none()
