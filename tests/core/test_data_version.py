"""The data version moves on with every committed write and only then."""

from collections.abc import AsyncIterator

import pytest
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient

from app.core.config import Settings
from app.main import create_app
from tests.conftest import TEST_WAITS
from tests.core.data_version import current_version


async def version(app: FastAPI) -> int:
    async with app.state.sessionmaker() as session:
        return await current_version(session)


async def test_writes_move_the_version_and_reads_and_refusals_do_not(
    app: FastAPI, client: AsyncClient, writer: AsyncClient
) -> None:
    start = await version(app)
    assert (await client.get("/api/v1/units")).status_code == 200
    assert await version(app) == start
    created = await writer.post("/api/v1/units", json={"code": "99", "name": "Tỉnh Thử", "level": "province"})
    assert created.status_code == 201, created.text
    assert await version(app) == start + 1
    refused = await writer.post("/api/v1/units", json={"code": "99", "name": "Tỉnh Thử", "level": "province"})
    assert refused.status_code == 409
    invalid = await writer.post("/api/v1/units", json={"code": "", "level": "galaxy"})
    assert invalid.status_code == 422
    assert await version(app) == start + 1


@pytest.fixture
async def with_baseline(database_url: str) -> AsyncIterator[AsyncClient]:
    application = create_app(Settings(database_url=database_url, benchmark_baseline=True, **TEST_WAITS))
    async with (
        application.router.lifespan_context(application),
        AsyncClient(transport=ASGITransport(app=application), base_url="http://testserver") as http,
    ):
        yield http


async def test_the_benchmark_baseline_is_served_only_when_asked(
    client: AsyncClient, with_baseline: AsyncClient
) -> None:
    assert (await client.get("/api/v1/_baseline")).status_code == 404
    response = await with_baseline.get("/api/v1/_baseline")
    assert response.status_code == 200 and response.json() == {"status": "ok"}
    assert "/api/v1/_baseline" not in (await with_baseline.get("/openapi.json")).json()["paths"]
