"""PIN guessing, the unit binding's root, security headers and readiness hints."""

import asyncio
from collections.abc import AsyncIterator

import pytest
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient
from pydantic import ValidationError

from app.core.config import Settings
from app.main import create_app
from tests.conftest import KeyFactory
from tests.dossiers.conftest import received, send, step


async def test_pin_guesses_share_one_allowance_and_lock_the_dossier(
    database_url: str, portal: AsyncClient
) -> None:
    await send(
        portal,
        received("PIN-1", "2023-08-07T09:00:00+07:00", lookup_secret="482913"),
        step("PIN-1", "resolved", "2023-08-08T09:00:00+07:00"),
    )
    settings = Settings(
        database_url=database_url, rate_limit_lookup="5/minute", pin_failures_per_dossier="3/hour"
    )
    application = create_app(settings)
    async with (
        application.router.lifespan_context(application),
        AsyncClient(transport=ASGITransport(app=application), base_url="http://t") as citizen,
    ):
        lookup = "/api/v1/public/dossiers/PIN-1"
        wrong = [(await citizen.get(lookup, params={"secret": f"00000{n}"})).status_code for n in range(3)]
        assert wrong == [404, 404, 404]
        # The dossier is locked now, even for the right PIN and from the rating endpoint.
        locked = await citizen.get(lookup, params={"secret": "482913"})
        assert locked.status_code == 429 and int(locked.headers["retry-after"]) > 0
        rating = await citizen.post(
            "/api/v1/dossiers/PIN-1/rating", json={"level": "satisfied", "secret": "1"}
        )
        assert rating.status_code == 429
        # Look-ups and ratings count against one allowance per address: the sixth attempt is refused.
        assert (
            await citizen.get("/api/v1/public/dossiers/OTHER", params={"secret": "1234"})
        ).status_code == 429


async def test_a_bound_client_cannot_move_or_detach_its_root(
    writer: AsyncClient, api_key: KeyFactory, app: FastAPI
) -> None:
    for unit in (
        {"code": "31", "name": "Hải Phòng", "level": "province"},
        {"code": "32", "name": "Hà Nội", "level": "province"},
        {
            "code": "313",
            "name": "Kiến Thụy",
            "level": "district",
            "parent_code": "31",
            "valid_to": "2025-06-30",
        },
        {
            "code": "11680",
            "name": "Núi Đối",
            "level": "commune",
            "parent_code": "313",
            "valid_to": "2025-06-30",
        },
    ):
        assert (await writer.post("/api/v1/units", json=unit)).status_code == 201
    headers = await api_key("units:write", unit="313", name="kien-thuy-units")
    async with AsyncClient(transport=ASGITransport(app=app), base_url="http://t", headers=headers) as bound:
        for code, change in (
            ("313", {"parent_code": None}),
            ("313", {"parent_code": "32"}),
            ("11680", {"parent_code": None}),
        ):
            etag = (await bound.get(f"/api/v1/units/{code}")).headers["etag"]
            response = await bound.patch(f"/api/v1/units/{code}", json=change, headers={"If-Match": etag})
            assert response.status_code == 403, (code, change)
        etag = (await bound.get("/api/v1/units/313")).headers["etag"]
        same = await bound.patch(
            "/api/v1/units/313",
            json={"parent_code": "31", "name": "Huyện Kiến Thụy"},
            headers={"If-Match": etag},
        )
        assert same.status_code == 200
    assert (await writer.get("/api/v1/units/313")).json()["parent_code"] == "31"


async def test_security_headers(client: AsyncClient, api_key: KeyFactory) -> None:
    public = await client.get("/api/v1/units")
    assert public.headers["x-content-type-options"] == "nosniff"
    assert "no-store" not in public.headers.get("cache-control", "")
    keyed = await client.get("/api/v1/units", headers=await api_key("dossiers:read"))
    assert keyed.headers["cache-control"] == "no-store"
    assert keyed.headers["x-content-type-options"] == "nosniff"
    citizen = await client.get("/api/v1/public/dossiers/X-1", params={"secret": "1234"})
    assert citizen.headers["cache-control"] == "no-store"


async def test_not_ready_says_when_to_retry(sqlite_file_url: str) -> None:
    application = create_app(Settings(database_url=sqlite_file_url))  # never migrated
    async with (
        application.router.lifespan_context(application),
        AsyncClient(transport=ASGITransport(app=application), base_url="http://t") as http,
    ):
        response = await http.get("/readyz")
        assert response.status_code == 503 and response.headers["retry-after"] == "5"


async def test_far_future_versions_are_refused(writer: AsyncClient, world: None) -> None:
    etag = (await writer.get("/api/v1/procedures/1.000894")).headers["etag"]
    change = {"name": "Đổi tên", "in_force_from": "2150-01-01"}
    response = await writer.patch("/api/v1/procedures/1.000894", json=change, headers={"If-Match": etag})
    assert response.status_code == 422
    assert response.json()["errors"][0]["type"] == "in_force_from_too_late"


def test_production_refuses_the_development_key() -> None:
    with pytest.raises(ValidationError):
        Settings(environment="production")
    assert not Settings(environment="production", secret_key="x" * 40).uses_development_key


async def test_a_trickling_body_gets_a_408(sqlite_file_url: str) -> None:
    application = create_app(Settings(database_url=sqlite_file_url, body_read_timeout=0.3))

    async def trickle() -> AsyncIterator[bytes]:
        yield b'{"code": "31",'
        await asyncio.sleep(3)
        yield b'"name": "x"}'

    async with (
        application.router.lifespan_context(application),
        AsyncClient(transport=ASGITransport(app=application), base_url="http://t") as http,
    ):
        response = await http.post(
            "/api/v1/units", content=trickle(), headers={"content-type": "application/json"}
        )
        assert response.status_code == 408
        assert response.headers["content-type"] == "application/problem+json"
