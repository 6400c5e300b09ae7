"""Body-size and rate limits (OWASP API4), in this process and shared through Redis."""

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient

from app.core.config import Settings
from app.main import create_app
from tests.conftest import TEST_WAITS, KeyFactory
from tests.dossiers.conftest import received, send

REDIS_URL = "redis://127.0.0.1:6379/15"


@asynccontextmanager
async def serving(database_url: str, **overrides: Any) -> AsyncIterator[tuple[FastAPI, AsyncClient]]:
    application = create_app(Settings(database_url=database_url, **{**TEST_WAITS, **overrides}))
    # Built before any request is counted: the first /openapi.json would otherwise take long
    # enough on a busy machine for a one-second window to end in the middle of a burst.
    application.openapi()
    async with (
        application.router.lifespan_context(application),
        AsyncClient(transport=ASGITransport(app=application), base_url="http://testserver") as http,
    ):
        yield application, http


async def test_body_over_the_limit_is_413_by_length(writer: AsyncClient) -> None:
    big = {"code": "31", "name": "x" * 100, "level": "province", "division_type": "y" * (3 * 1024 * 1024)}
    response = await writer.post("/api/v1/units", json=big)
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"
    assert (await writer.get("/api/v1/units/31")).status_code == 404


async def test_chunked_body_over_the_limit_is_413(writer: AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"code": "31", "level": "province", "name": "'
        for _ in range(40):
            yield b"x" * 64 * 1024
        yield b'"}'

    response = await writer.post(
        "/api/v1/units", content=chunks(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert (await writer.get("/api/v1/units/31")).status_code == 404


async def _until_limited(http: AsyncClient, path: str, attempts: int, **kwargs: Any) -> int:
    for sent in range(1, attempts + 1):
        response = await http.get(path, **kwargs)
        if response.status_code == 429:
            return sent
    return 0


async def _assert_limit_then_recovery(http: AsyncClient, path: str, **kwargs: Any) -> None:
    # A window opens with its first request and lasts one second: the burst below fits in it.
    limited_at = await _until_limited(http, path, 10, **kwargs)
    assert limited_at == 4, "the fourth request in a window of three must be refused"
    refused = await http.get(path, **kwargs)
    assert refused.status_code == 429
    assert refused.headers["content-type"] == "application/problem+json"
    retry_after = int(refused.headers["retry-after"])
    assert 1 <= retry_after <= 2
    await asyncio.sleep(retry_after)
    assert (await http.get(path, **kwargs)).status_code == 200


async def test_public_reads_are_limited_per_ip_then_recover(sqlite_file_url: str) -> None:
    async with serving(sqlite_file_url, rate_limit_ip_reads="3/second") as (_app, http):
        await _assert_limit_then_recovery(http, "/openapi.json")
        assert (await http.get("/healthz")).status_code == 200  # probes are never throttled


async def test_clients_are_limited_per_key(database_url: str, api_key: KeyFactory, app: FastAPI) -> None:
    # `app` provides the migrated database and the key; the limited app shares that database.
    headers = await api_key("admin")
    async with serving(database_url, rate_limit_client_reads="3/second") as (_limited, http):
        await _assert_limit_then_recovery(http, "/api/v1/clients", headers=headers)
        assert (await http.get("/api/v1/units")).status_code == 200  # anonymous reads have their own budget


async def test_writes_are_limited_per_ip(sqlite_file_url: str) -> None:
    async with serving(sqlite_file_url, rate_limit_ip_writes="2/minute") as (_app, http):
        statuses = [(await http.post("/api/v1/units", json={})).status_code for _ in range(3)]
        assert statuses == [401, 401, 429]


@pytest.fixture
async def redis_clean() -> AsyncIterator[None]:
    from redis.asyncio import Redis

    redis = Redis.from_url(REDIS_URL)
    try:
        await redis.flushdb()
    except OSError as exc:
        pytest.fail(f"Redis is required for the shared rate-limit tests and is unreachable: {exc}")
    yield
    await redis.flushdb()
    await redis.aclose()


@pytest.mark.usefixtures("redis_clean")
async def test_redis_limits_are_shared_by_all_workers_and_recover(sqlite_file_url: str) -> None:
    # A minute's window: the burst cannot straddle a window's end, however busy the machine.
    settings = {"redis_url": REDIS_URL, "rate_limit_ip_reads": "3/minute"}
    async with (
        serving(sqlite_file_url, **settings) as (_a, worker_a),
        serving(sqlite_file_url, **settings) as (_b, worker_b),
    ):
        responses = [await worker.get("/openapi.json") for worker in (worker_a, worker_b, worker_a, worker_b)]
        assert [response.status_code for response in responses] == [200, 200, 200, 429]
        assert 1 <= int(responses[-1].headers["retry-after"]) <= 60
    # When the window ends (its counters expire in Redis), both workers serve again.
    from redis.asyncio import Redis

    redis = Redis.from_url(REDIS_URL)
    await redis.flushdb()
    await redis.aclose()
    async with (
        serving(sqlite_file_url, **settings) as (_a, worker_a),
        serving(sqlite_file_url, **settings) as (_b, worker_b),
    ):
        assert (await worker_a.get("/openapi.json")).status_code == 200
        assert (await worker_b.get("/openapi.json")).status_code == 200


def closed_redis_url() -> str:
    """A Redis URL on a local port nothing listens on: connections are refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"redis://127.0.0.1:{port}/0"


async def test_unreachable_redis_falls_back_to_counting_in_process(
    sqlite_file_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with serving(sqlite_file_url, redis_url=closed_redis_url(), rate_limit_ip_reads="1/minute") as (
        _a,
        http,
    ):
        # A limit held by this process instead of by every worker, never no limit at all.
        statuses = [(await http.get("/openapi.json")).status_code for _ in range(3)]
        assert statuses == [200, 429, 429]
        assert (await http.get("/healthz")).status_code == 200
    # One warning for the outage, not one (with a traceback) per request.
    warnings = [r for r in caplog.records if r.name == "tthc.limits"]
    assert len(warnings) == 1 and warnings[0].exc_info is None


async def test_pin_guessing_stays_limited_without_redis(database_url: str, portal: AsyncClient) -> None:
    """Issue 27 #9: with Redis unreachable, 60 wrong PINs and then the right one gave 200."""
    await send(
        portal,
        received("PIN-R", "2023-08-07T09:00:00+07:00", lookup_secret="482913"),
        received("PIN-S", "2023-08-07T09:00:00+07:00", lookup_secret="111111"),
    )
    # The defaults: 30 attempts a minute per address, 10 wrong PINs an hour per dossier.
    async with serving(database_url, redis_url=closed_redis_url()) as (_app, citizen):
        lookup = "/api/v1/public/dossiers/PIN-R"
        statuses = [(await citizen.get(lookup, params={"secret": f"{n:06d}"})).status_code for n in range(60)]
        # Ten wrong PINs lock the dossier; from the 31st attempt the address is refused as well.
        assert statuses == [404] * 10 + [429] * 50
        right = await citizen.get(lookup, params={"secret": "482913"})
        assert right.status_code == 429 and int(right.headers["retry-after"]) > 0
        rating = await citizen.post(
            "/api/v1/dossiers/PIN-R/rating", json={"level": "satisfied", "secret": "1"}
        )
        assert rating.status_code == 429
        # The address's allowance is spent too: another dossier, even with its right PIN.
        other = await citizen.get("/api/v1/public/dossiers/PIN-S", params={"secret": "111111"})
        assert other.status_code == 429
    # Another process (its own counters) with the address limit off: the dossier's lock is the
    # per-dossier count alone, and holds for the right PIN.
    async with serving(database_url, redis_url=closed_redis_url(), rate_limit_lookup="") as (_app, citizen):
        lookup = "/api/v1/public/dossiers/PIN-S"
        wrong = [(await citizen.get(lookup, params={"secret": f"{n:06d}"})).status_code for n in range(12)]
        assert wrong == [404] * 10 + [429] * 2
        assert (await citizen.get(lookup, params={"secret": "111111"})).status_code == 429
        # The lock is per dossier: one without wrong PINs counted here still answers its right PIN.
        assert (
            await citizen.get("/api/v1/public/dossiers/PIN-R", params={"secret": "482913"})
        ).status_code == 200
