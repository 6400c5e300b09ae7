"""Fixtures: every database test runs on SQLite and on PostgreSQL, with the schema built by Alembic."""

import asyncio
import os
import socket
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient
from sqlalchemy import select

from app import models as _all_models  # noqa: F401  (every table in Base.metadata)
from app.clients.schemas import ClientCreate
from app.clients.service import create_client
from app.core import migrations
from app.core.base import Base
from app.core.config import Settings
from app.core.security import Scope
from app.dossiers.counters import COUNTERS, DossierCounter, rebuild_counters
from app.main import create_app
from tests.databases import wipe_postgres_schema
from tests.standby import ReplicationNotPermitted, Standby, start_standby
from tests.workers import ensure_database, worker_database

# Under `pytest -n N` (pytest-xdist, as `make test` runs) each worker ("gw0", "gw1", …) has a
# PostgreSQL database of its own beside the configured one ("test_gw0", …), created when missing.
WORKER = os.environ.get("PYTEST_XDIST_WORKER")
CONFIGURED_POSTGRES_URL = os.environ.get(
    "TTHC_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
POSTGRES_URL = worker_database(CONFIGURED_POSTGRES_URL, WORKER)
ALL_BACKENDS = ("sqlite", "postgresql")
# CI sets this after permitting replication (scripts/allow-replication): there, no standby is a failure.
REQUIRE_STANDBY = os.environ.get("TTHC_TEST_REQUIRE_STANDBY") == "1"
ALL_SCOPES = tuple(scope.value for scope in Scope)


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
        marker = metafunc.definition.get_closest_marker("only_backend")
        if marker is not None:
            backends = [b for b in backends if b in marker.args]
        metafunc.parametrize("database_url", backends, indirect=True, scope="session")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # A standby replays the whole cluster, and its tests read its lag and replay position: they run
    # apart from the parallel run (`make test`: `-m "not standby"`, then `-m standby` alone).
    for item in items:
        if "standby" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.standby)


@pytest.fixture(scope="session")
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A migrated, empty database of the requested backend."""
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('sqlite') / 'tthc.db'}"
    else:
        url = POSTGRES_URL
        try:
            asyncio.run(ensure_database(CONFIGURED_POSTGRES_URL, url))
            asyncio.run(wipe_postgres_schema(url))
        except OSError as exc:  # never a silent skip: PostgreSQL is part of the suite
            pytest.fail(f"PostgreSQL is required for the test suite and is unreachable at {url}: {exc}")
    migrations.upgrade(url)
    yield url


@pytest.fixture(scope="session")
def standby() -> Iterator[Standby]:
    """A real hot standby of the test PostgreSQL on a free local port (tests.standby); one per
    pytest-xdist worker that runs a test needing it, each with its own replication slot."""
    try:
        running = start_standby(POSTGRES_URL)
    except ReplicationNotPermitted as exc:
        message = (
            "the test PostgreSQL does not permit replication, so no standby can be started "
            f"(run scripts/allow-replication): {exc}"
        )
        if REQUIRE_STANDBY:
            pytest.fail(message)
        pytest.skip(message)
    yield running
    running.destroy()


# The service's waits for a connection and for a statement (2 s each) are bounds for production;
# the suite shares two cores between its workers and PostgreSQL, so a test whose subject is not
# those bounds gets room (the tests of the bounds set their own).
TEST_WAITS: dict[str, Any] = {"database_pool_timeout": 15.0, "database_command_timeout": 15.0}


async def _empty_all_tables(app: FastAPI) -> None:
    async with app.state.engine.begin() as connection:
        for table in reversed(Base.metadata.sorted_tables):
            await connection.execute(table.delete())


@asynccontextmanager
async def running_app(settings: Settings) -> AsyncIterator[FastAPI]:
    """The app started (lifespan) on ``settings``; its tables emptied when done."""
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        try:
            yield application
        finally:
            await _empty_all_tables(application)


@pytest.fixture
async def app(database_url: str) -> AsyncIterator[FastAPI]:
    async with running_app(Settings(database_url=database_url, **TEST_WAITS)) as application:
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(transport=ASGITransport(app=app), base_url="http://testserver") as http:
        yield http


@pytest.fixture
def sqlite_file_url(tmp_path: Path) -> str:
    """An empty, unmigrated SQLite database of its own."""
    return f"sqlite+aiosqlite:///{tmp_path / 'fresh.db'}"


KeyFactory = Callable[..., Awaitable[dict[str, str]]]


@pytest.fixture
def api_key(app: FastAPI) -> KeyFactory:
    """Make an API client with the given scopes (and unit) and return its Authorization header."""
    made = 0

    async def make(*scopes: str, unit: str | None = None, name: str | None = None) -> dict[str, str]:
        nonlocal made
        made += 1
        data = ClientCreate.model_validate(
            {"name": name or f"test-client-{made}", "scopes": list(scopes), "unit_code": unit}
        )
        async with app.state.sessionmaker() as session, session.begin():
            _client, secret = await create_client(session, data, None)
        return {"Authorization": f"Bearer {secret}"}

    return make


@pytest.fixture
async def writer(app: FastAPI, api_key: KeyFactory) -> AsyncIterator[AsyncClient]:
    """An HTTP client holding a key with every scope, bound to no unit."""
    headers = await api_key(*ALL_SCOPES, name="test-superuser")
    async with AsyncClient(
        transport=ASGITransport(app=app), base_url="http://testserver", headers=headers
    ) as http:
        yield http


@pytest.fixture
def live_server(database_url: str) -> Iterator[str]:
    """uvicorn serving the app on a free port, in a thread of its own."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(Settings(database_url=database_url, **TEST_WAITS)), port=port, log_level="warning"
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the live server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=20)


async def nonzero_counters(app: FastAPI) -> dict[tuple[Any, ...], tuple[int, ...]]:
    """Every counter row with a count that is not zero, by its key (a row of zeros reads the same
    figures as no row)."""
    async with app.state.sessionmaker() as session:
        found = {}
        for (counter,) in await session.execute(select(DossierCounter)):
            values = tuple(getattr(counter, name) for name in COUNTERS)
            if any(values):
                key = (
                    counter.unit_code,
                    counter.sector_code,
                    counter.procedure_code,
                    counter.grain,
                    counter.bucket,
                )
                found[key] = values
        return found


async def assert_counters_equal_a_rebuild(app: FastAPI) -> None:
    """The statistics counters kept by ingestion are exactly those `tthc stats rebuild` computes
    from the dossiers (compared row by row, zero rows aside: answers may come from a cache)."""
    kept = await nonzero_counters(app)
    async with app.state.sessionmaker() as session, session.begin():
        await rebuild_counters(session, app.state.calendar)
    rebuilt = await nonzero_counters(app)
    assert {k: v for k, v in kept.items() if rebuilt.get(k) != v} == {}
    assert kept == rebuilt
