"""Reads served by a real hot standby of the test PostgreSQL: routing, staleness bounds, fall-back.

The standby is started once per session (tests.standby). Pausing its replay with
``pg_wal_replay_pause()`` makes it stale on purpose: an answer that misses the newest writes can only
have come from the standby, a fresh one from the primary. Lag is judged with a clock the test moves.
"""

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, suppress
from typing import Any

import pytest
from fastapi import FastAPI
from httpx import AsyncClient
from pydantic import ValidationError
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import create_async_engine

from app.core.config import Settings
from app.core.errors import problem_for_failure, transaction_rolled_back
from app.core.http_caching import generation_of, newest_generation_seen, versioned_etag
from app.core.replicas import READS_APPLICATION_NAME, ReadReplicas
from app.main import create_app
from tests.conftest import running_app
from tests.dossiers.conftest import received, send, step
from tests.standby import Standby, query

pytestmark = pytest.mark.only_backend("postgresql")

STATS = "/api/v1/stats/dossiers"
Q3 = {"period": "2023-Q3", "unit": "31"}


class Clock:
    """Monotonic seconds that move only when the test says so."""

    def __init__(self) -> None:
        self.now = time.monotonic()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def well_standby(standby: Standby) -> Iterator[Standby]:
    """The session's standby, running and replaying — and left so, whatever the test did to it."""
    if not standby.is_running():
        standby.start()
    standby.resume_replay()
    yield standby
    if not standby.is_running():
        standby.start()
    standby.resume_replay()


@pytest.fixture
async def app(database_url: str, well_standby: Standby, clock: Clock) -> AsyncIterator[FastAPI]:
    """The app with the standby as its one read replica, judging lag by ``clock``."""
    # Checked once at start, then only when a test says so (or runs a watch of its own).
    settings = Settings(
        database_url=database_url, database_read_urls=[well_standby.url], replica_check_interval=3600
    )
    async with running_app(settings) as application:
        application.state.replicas.clock = clock
        yield application


@pytest.fixture
def anonymous(client: AsyncClient) -> AsyncClient:
    """A reader without a key: the kind a standby may answer."""
    return client


@asynccontextmanager
async def checked_every_second(replicas: ReadReplicas) -> AsyncIterator[None]:
    """The background checks as in production: every second, on the real clock."""
    replicas.clock = time.monotonic
    watch = asyncio.create_task(replicas.watch(1.0))
    try:
        yield
    finally:
        watch.cancel()
        with suppress(asyncio.CancelledError):
            await watch


def replicas_of(app: FastAPI) -> ReadReplicas:
    replicas: ReadReplicas = app.state.replicas
    return replicas


async def in_thread(function: Any, *args: Any) -> Any:
    # The standby's controls run their own event loop (asyncio.run) or block on pg_ctl.
    return await asyncio.to_thread(function, *args)


async def received_in_q3(client: AsyncClient, headers: dict[str, str] | None = None) -> tuple[int, str, int]:
    """Dossiers received in Hải Phòng in 2023-Q3: (count, ETag, status)."""
    response = await client.get(STATS, params=Q3, headers=headers or {})
    assert response.status_code in (200, 304), response.text
    count = response.json()["total"]["counts"]["received"] if response.status_code == 200 else -1
    return count, response.headers["etag"], response.status_code


def reads_counted(app: FastAPI, server: str) -> float:
    value = app.state.metrics.registry.get_sample_value("tthc_db_reads_total", {"server": server})
    return float(value or 0)


async def a_dossier(portal: AsyncClient, code: str) -> None:
    await send(
        portal,
        received(code, "2023-08-07T09:00:00+07:00"),
        step(code, "resolved", "2023-08-08T09:00:00+07:00"),
    )


async def replayed_dossier(portal: AsyncClient, standby: Standby, code: str) -> None:
    """A dossier written on the primary and replayed by the standby."""
    await a_dossier(portal, code)
    await in_thread(standby.wait_until_caught_up)


@pytest.mark.usefixtures("world")
async def test_statistics_come_from_the_standby_and_are_fresh_once_it_replays(
    app: FastAPI, portal: AsyncClient, anonymous: AsyncClient, well_standby: Standby
) -> None:
    await replayed_dossier(portal, well_standby, "HP-1")
    assert (await received_in_q3(anonymous))[0] == 1

    await in_thread(well_standby.pause_replay)
    await a_dossier(portal, "HP-2")  # writes go to the primary while the standby stands still
    standby_reads = reads_counted(app, "standby")
    # Still one: the standby answered, with what it had replayed — over the connection it shows.
    assert (await received_in_q3(anonymous))[0] == 1
    assert reads_counted(app, "standby") == standby_reads + 1
    sessions = await in_thread(
        query,
        well_standby.url,
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
        READS_APPLICATION_NAME,
    )
    assert sessions[0][0] >= 1

    await in_thread(well_standby.resume_replay)
    await in_thread(well_standby.wait_until_caught_up)
    assert (await received_in_q3(anonymous))[0] == 2


@pytest.mark.usefixtures("world")
async def test_a_standby_lagging_beyond_the_bound_is_skipped_until_it_catches_up(
    app: FastAPI, portal: AsyncClient, anonymous: AsyncClient, well_standby: Standby, clock: Clock
) -> None:
    replicas = replicas_of(app)
    (standby,) = replicas.standbys
    await in_thread(well_standby.pause_replay)
    await a_dossier(portal, "HP-1")

    await replicas.check()  # the primary now holds WAL the standby has not replayed
    clock.advance(4.5)
    await replicas.check()
    assert standby.usable and standby.lag == pytest.approx(4.5)
    assert (await received_in_q3(anonymous))[0] == 0  # within the bound: the standby answers

    clock.advance(1)
    await replicas.check()
    assert not standby.usable and standby.problem is not None and "lags 5.5 s" in standby.problem
    assert (await received_in_q3(anonymous))[0] == 1  # beyond it: the primary answers

    await in_thread(well_standby.resume_replay)
    await in_thread(well_standby.wait_until_caught_up)
    await replicas.check()
    assert standby.usable and standby.lag == 0
    primary_reads = reads_counted(app, "primary")
    assert (await received_in_q3(anonymous))[0] == 1
    assert reads_counted(app, "primary") == primary_reads


@pytest.mark.usefixtures("world")
async def test_a_poller_never_sees_a_version_go_back_when_it_moves_to_a_staler_server(
    app: FastAPI, portal: AsyncClient, anonymous: AsyncClient, well_standby: Standby
) -> None:
    replicas = replicas_of(app)
    (standby,) = replicas.standbys
    await replayed_dossier(portal, well_standby, "HP-1")
    await in_thread(well_standby.pause_replay)
    await a_dossier(portal, "HP-2")

    count, stale_tag, _ = await received_in_q3(anonymous)  # from the paused standby
    assert count == 1
    replicas.mark_down(standby, "taken out by the test")
    count, fresh_tag, _ = await received_in_q3(anonymous)  # from the primary
    assert count == 2 and generation_of(fresh_tag) > generation_of(stale_tag) > 0

    await replicas.check()  # the clock has not moved: the standby is within its bound again
    assert standby.usable
    # The poller revalidates what the primary gave it: the standby is behind that, so the primary
    # answers — unchanged (304), not the standby's older 200.
    count, tag, status = await received_in_q3(anonymous, {"If-None-Match": fresh_tag})
    assert (status, tag) == (304, fresh_tag)
    # A poller holding the standby's own version is answered by the standby: unchanged for it.
    standby_reads = reads_counted(app, "standby")
    _count, tag, status = await received_in_q3(anonymous, {"If-None-Match": stale_tag})
    assert (status, tag) == (304, stale_tag)
    assert reads_counted(app, "standby") == standby_reads + 1
    # Reports and the other answers carry the generation too.
    for path in ("/api/v1/stats/feedback", "/api/v1/stats/index-766", "/api/v1/reports/reform"):
        response = await anonymous.get(path, params=Q3)
        assert response.status_code == 200, response.text
        assert generation_of(response.headers["etag"]) == generation_of(stale_tag)


@pytest.mark.usefixtures("world")
async def test_a_stopped_standby_is_skipped_and_comes_back_by_itself(
    app: FastAPI, portal: AsyncClient, anonymous: AsyncClient, well_standby: Standby
) -> None:
    replicas = replicas_of(app)
    (standby,) = replicas.standbys
    await replayed_dossier(portal, well_standby, "HP-1")
    assert standby.usable

    await in_thread(well_standby.stop)
    # The first request after the stop finds it gone, marks it down and reads the primary: no error.
    assert (await received_in_q3(anonymous))[0] == 1
    assert not standby.usable and standby.problem is not None and standby.problem.startswith("unreachable")
    await replicas.check()
    assert not standby.usable

    await in_thread(well_standby.start)
    await in_thread(well_standby.wait_until_caught_up)
    # Nothing but the background check (every second) brings it back; generous, not a tight margin.
    async with checked_every_second(replicas):
        deadline = time.monotonic() + 30
        while not standby.usable:
            assert time.monotonic() < deadline, f"the standby did not come back: {standby.problem}"
            await asyncio.sleep(0.1)
    standby_reads = reads_counted(app, "standby")
    assert (await received_in_q3(anonymous))[0] == 1
    assert reads_counted(app, "standby") == standby_reads + 1


@pytest.mark.usefixtures("world")
async def test_the_background_check_skips_a_stopped_standby_without_any_request(
    app: FastAPI, well_standby: Standby
) -> None:
    replicas = replicas_of(app)
    (standby,) = replicas.standbys
    await in_thread(well_standby.stop)
    async with checked_every_second(replicas):
        deadline = time.monotonic() + 30
        while standby.usable:
            assert time.monotonic() < deadline, "the background check did not notice the stopped standby"
            await asyncio.sleep(0.1)
    assert standby.problem is not None and standby.problem.startswith("unreachable")


async def test_reads_of_a_client_with_a_key_see_its_own_writes(
    app: FastAPI, writer: AsyncClient, anonymous: AsyncClient, well_standby: Standby
) -> None:
    await in_thread(well_standby.pause_replay)
    unit = {"code": "31", "name": "Thành phố Hải Phòng", "level": "province"}
    assert (await writer.post("/api/v1/units", json=unit)).status_code == 201

    # The writer reads the primary: what it wrote, with the ETag an If-Match must carry.
    mine = await writer.get("/api/v1/units/31")
    assert mine.status_code == 200
    renamed = await writer.patch(
        "/api/v1/units/31", json={"name": "Hải Phòng"}, headers={"If-Match": mine.headers["etag"]}
    )
    assert renamed.status_code == 200, renamed.text
    # An anonymous reader is served by the standby, which has not replayed the unit yet.
    assert (await anonymous.get("/api/v1/units/31")).status_code == 404

    await in_thread(well_standby.resume_replay)
    await in_thread(well_standby.wait_until_caught_up)
    seen = await anonymous.get("/api/v1/units/31")
    assert seen.status_code == 200 and seen.json()["name"] == "Hải Phòng"


@pytest.mark.usefixtures("world")
async def test_with_no_usable_standby_reads_fall_back_to_the_primary(
    app: FastAPI, portal: AsyncClient, anonymous: AsyncClient, well_standby: Standby
) -> None:
    replicas = replicas_of(app)
    await in_thread(well_standby.pause_replay)
    await a_dossier(portal, "HP-1")
    for standby in replicas.standbys:
        replicas.mark_down(standby, "taken out by the test")
    assert (await received_in_q3(anonymous))[0] == 1
    assert (await anonymous.get("/api/v1/units/11680")).status_code == 200


async def test_a_read_url_that_is_not_a_standby_is_never_used(database_url: str) -> None:
    application = create_app(Settings(database_url=database_url, database_read_urls=[database_url]))
    async with application.router.lifespan_context(application):
        (server,) = replicas_of(application).standbys
        assert not server.usable
        assert server.problem == "not a standby (pg_is_in_recovery() is false)"


def test_lag_is_how_long_the_standby_has_missed_wal_the_primary_had(clock: Clock) -> None:
    replicas = ReadReplicas(primary=None, standbys=[], max_lag=5, check_timeout=1, clock=clock)  # type: ignore[arg-type]
    assert replicas.lag_of(100, clock()) == 0  # nothing sampled yet
    start = clock()
    for position in (100, 100, 250, 400):
        replicas.record(clock(), position)
        clock.advance(1)
    assert replicas.lag_of(400, clock()) == 0  # has everything sampled: an idle primary is no lag
    assert replicas.lag_of(100, clock()) == pytest.approx(clock() - (start + 2))
    assert replicas.lag_of(300, clock()) == pytest.approx(clock() - (start + 3))
    # After a long gap between checks (the primary unreachable), a standby still at 100 lags by
    # the whole gap, not by nothing: the last sample before the forgotten ones is kept.
    clock.advance(30)
    replicas.record(clock(), 400)
    assert replicas.lag_of(100, clock()) == pytest.approx(clock() - (start + 3))
    assert replicas.lag_of(400, clock()) == 0


def test_generations_are_read_from_our_tags_only() -> None:
    tag = versioned_etag(41, "anything")
    assert generation_of(tag) == 41 and generation_of("W/" + tag) == 41
    for foreign in ('"abc"', '"-1-x"', '"x-1"', "*", '"' + "9" * 40 + '-x"', "", '"²-x"', '"١٢-x"'):
        assert generation_of(foreign) == 0

    class Request:
        def __init__(self, header: str | None) -> None:
            self.headers = {"if-none-match": header} if header is not None else {}

    assert newest_generation_seen(Request(f'{versioned_etag(3, "a")}, "junk", {tag}')) == 41  # type: ignore[arg-type]
    assert newest_generation_seen(Request(None)) == 0  # type: ignore[arg-type]
    assert newest_generation_seen(Request('"²-x", "١٢-x", "12\x00-x"')) == 0  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("primary", "standbys", "message"),
    [
        ("sqlite+aiosqlite:///./x.db", "postgresql://u@h/db", "needs a PostgreSQL primary"),
        ("postgresql://u@h/db", "sqlite:///./x.db", "names PostgreSQL standbys"),
        ("postgresql://u@h/db", "mysql://u@h/db", "TTHC_DATABASE_READ_URLS uses 'mysql'"),
        (
            "postgresql://u@h/db",
            "postgresql://u@h",
            "TTHC_DATABASE_READ_URLS for PostgreSQL must name a database",
        ),
    ],
)
def test_read_urls_are_checked_at_start(primary: str, standbys: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Settings(database_url=primary, database_read_urls=standbys)


def test_read_urls_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TTHC_DATABASE_URL", "postgresql://u@primary/db")
    monkeypatch.setenv(
        "TTHC_DATABASE_READ_URLS", "postgres://u@standby-1/db, postgresql://u@standby-2:5433/db"
    )
    settings = Settings()
    assert settings.database_read_urls == [
        "postgresql+asyncpg://u@standby-1/db",
        "postgresql+asyncpg://u@standby-2:5433/db",
    ]
    assert settings.replica_max_lag == 5 and settings.replica_check_interval == 1


async def test_a_query_the_standby_cancels_for_its_replay_is_a_503_to_retry(
    database_url: str, well_standby: Standby
) -> None:
    """Replay that needs a lock a standby query holds cancels the query after
    max_standby_streaming_delay: the client gets a 503 to retry, not a 500."""
    standby_engine = create_async_engine(well_standby.url)
    primary_engine = create_async_engine(database_url)
    holding = "SELECT (SELECT count(*) FROM units), pg_sleep(60)"
    try:

        async def hold_units() -> None:
            async with standby_engine.connect() as connection:
                await connection.execute(text(holding))

        held = asyncio.create_task(hold_units())
        deadline = time.monotonic() + 30
        while not await in_thread(
            query,
            well_standby.url,
            "SELECT 1 FROM pg_stat_activity a JOIN pg_locks l ON l.pid = a.pid "
            "WHERE a.query = $1 AND l.relation = 'units'::regclass AND l.granted",
            holding,
        ):
            assert time.monotonic() < deadline and not held.done(), "the standby query did not start"
            await asyncio.sleep(0.05)
        async with primary_engine.begin() as connection:
            await connection.execute(text("LOCK TABLE units IN ACCESS EXCLUSIVE MODE"))
        with pytest.raises(DBAPIError) as cancelled:
            await asyncio.wait_for(held, timeout=50)
        assert transaction_rolled_back(cancelled.value)
        problem = problem_for_failure(cancelled.value, {})
        assert (problem.status_code, problem.headers["retry-after"]) == (503, "1")
    finally:
        await standby_engine.dispose()
        await primary_engine.dispose()
