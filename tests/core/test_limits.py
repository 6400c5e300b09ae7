"""Body-size and rate limits (OWASP API4), in this process and shared through Redis."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient

from app.core.config import Settings
from app.main import create_app
from tests.conftest import KeyFactory

REDIS_URL = "redis://127.0.0.1:6379/15"


@asynccontextmanager
async def serving(database_url: str, **overrides: Any) -> AsyncIterator[tuple[FastAPI, AsyncClient]]:
    application = create_app(Settings(database_url=database_url, **overrides))
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


async def test_unreachable_redis_lets_requests_through(
    sqlite_file_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with serving(
        sqlite_file_url, redis_url="redis://127.0.0.1:9/0", rate_limit_ip_reads="1/minute"
    ) as (_a, http):
        assert [(await http.get("/openapi.json")).status_code for _ in range(3)] == [200, 200, 200]
    # One warning for the outage, not one (with a traceback) per request.
    warnings = [r for r in caplog.records if r.name == "tthc.limits"]
    assert len(warnings) == 1 and warnings[0].exc_info is None
