"""Fixtures: every database test runs on SQLite and on PostgreSQL, with the schema built by Alembic."""

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

import app.models
from app.core import migrations
from app.core.config import Settings
from app.core.db import Base
from app.main import create_app

POSTGRES_URL = os.environ.get("TTHC_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
ALL_BACKENDS = ("sqlite", "postgresql")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--backends",
        default=",".join(ALL_BACKENDS),
        help="comma-separated database backends to run against (default: both; CI always runs both)",
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "database_url" in metafunc.fixturenames:
        backends = [b for b in metafunc.config.getoption("--backends").split(",") if b]
        unknown = set(backends) - set(ALL_BACKENDS)
        if unknown:
            raise pytest.UsageError(f"unknown backends: {', '.join(sorted(unknown))}")
        metafunc.parametrize("database_url", backends, indirect=True, scope="session")


async def _reset_postgres(url: str) -> None:
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.begin() as connection:
            await connection.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
            await connection.execute(text("CREATE SCHEMA public"))
    finally:
        await engine.dispose()


@pytest.fixture(scope="session")
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A migrated, empty database of the requested backend."""
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('sqlite') / 'tthc.db'}"
    else:
        url = POSTGRES_URL
        try:
            asyncio.run(_reset_postgres(url))
        except OSError as exc:  # never a silent skip: PostgreSQL is part of the suite
            pytest.fail(f"PostgreSQL is required for the test suite and is unreachable at {url}: {exc}")
    migrations.upgrade(url)
    yield url


async def _empty_all_tables(app: FastAPI) -> None:
    async with app.state.engine.begin() as connection:
        for table in reversed(Base.metadata.sorted_tables):
            await connection.execute(table.delete())


@pytest.fixture
async def app(database_url: str) -> AsyncIterator[FastAPI]:
    application = create_app(Settings(database_url=database_url))
    async with application.router.lifespan_context(application):
        try:
            yield application
        finally:
            await _empty_all_tables(application)


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(transport=ASGITransport(app=app), base_url="http://testserver") as http:
        yield http


@pytest.fixture
def sqlite_file_url(tmp_path: Path) -> str:
    """An empty, unmigrated SQLite database of its own."""
    return f"sqlite+aiosqlite:///{tmp_path / 'fresh.db'}"
