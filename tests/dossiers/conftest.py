from collections.abc import AsyncIterator
from typing import Any

import pytest
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient

from app.clients.service import get_client_by_name
from app.core.security import Principal
from bench import dossier_data
from bench.catalogue import SECTORS
from tests.conftest import KeyFactory

BATCH = "/api/v1/dossier-events/batch"

UNITS = [
    {"code": "31", "name": "Thành phố Hải Phòng", "level": "province"},
    {
        "code": "313",
        "name": "Huyện Kiến Thụy",
        "level": "district",
        "parent_code": "31",
        "valid_to": "2025-06-30",
    },
    {
        "code": "314",
        "name": "Huyện Tiên Lãng",
        "level": "district",
        "parent_code": "31",
        "valid_to": "2025-06-30",
    },
    {
        "code": "11680",
        "name": "Thị trấn Núi Đối",
        "level": "commune",
        "parent_code": "313",
        "valid_to": "2025-06-30",
    },
    {
        "code": "11737",
        "name": "Xã Tiên Thắng",
        "level": "commune",
        "parent_code": "314",
        "valid_to": "2025-06-30",
    },
]


def procedure_body(code: str, name: str, levels: list[str], value: float, unit: str) -> dict[str, Any]:
    return {
        "code": code,
        "name": name,
        "sector_code": "ho-tich",
        "levels": levels,
        "channels": ["direct", "online"],
        "processing_time": {"value": value, "unit": unit},
        "online_service": "full",
        "effective_from": "2016-01-01",
    }


PROCEDURES = [
    procedure_body("1.000894", "Đăng ký kết hôn", ["commune"], 3, "working_days"),
    procedure_body("2.000001", "Cấp giấy phép xây dựng", ["district"], 5, "working_days"),
    procedure_body("2.000002", "Đăng ký hộ kinh doanh", ["district"], 7, "days"),
]


@pytest.fixture
async def world(writer: AsyncClient) -> None:
    for unit in UNITS:
        assert (await writer.post("/api/v1/units", json=unit)).status_code == 201
    assert (
        await writer.post("/api/v1/sectors", json={"code": "ho-tich", "name": "Hộ tịch"})
    ).status_code == 201
    for item in PROCEDURES:
        assert (await writer.post("/api/v1/procedures", json=item)).status_code == 201


@pytest.fixture
async def portal(app: FastAPI, api_key: KeyFactory, world: None) -> AsyncIterator[AsyncClient]:
    """The national portal: writes and reads dossiers anywhere."""
    headers = await api_key("dossiers:write", "dossiers:read", name="national-portal")
    async with AsyncClient(
        transport=ASGITransport(app=app), base_url="http://testserver", headers=headers
    ) as http:
        yield http


def received(
    dossier: str,
    at: str,
    *,
    event_id: str | None = None,
    procedure: str = "1.000894",
    unit: str = "11680",
    channel: str = "online",
    **extra: Any,
) -> dict[str, Any]:
    event = {
        "event_id": event_id or f"{dossier}-received",
        "dossier_code": dossier,
        "type": "received",
        "occurred_at": at,
        "procedure_code": procedure,
        "unit_code": unit,
        "channel": channel,
        **extra,
    }
    if channel == "online":
        event.setdefault("online_level", "full")
    return event


def step(dossier: str, kind: str, at: str, *, event_id: str | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "event_id": event_id or f"{dossier}-{kind}-{at}",
        "dossier_code": dossier,
        "type": kind,
        "occurred_at": at,
        **extra,
    }


async def send(client: AsyncClient, *events: dict[str, Any]) -> list[dict[str, Any]]:
    response = await client.post(BATCH, json={"events": list(events)})
    assert response.status_code == 200, response.text
    return list(response.json()["results"])


async def dossier(client: AsyncClient, code: str) -> dict[str, Any]:
    response = await client.get(f"/api/v1/dossiers/{code}")
    assert response.status_code == 200, response.text
    return dict(response.json())


@pytest.fixture
async def bench_procedures(writer: AsyncClient) -> list[dict[str, Any]]:
    """The bench province's units, sectors and 30 procedures (bench.dossier_data), and one more like
    the first with no online service (an online record of it must name MucDo)."""
    for unit in dossier_data.units():
        assert (await writer.post("/api/v1/units", json=unit)).status_code == 201
    for code, name in SECTORS:
        assert (await writer.post("/api/v1/sectors", json={"code": code, "name": name})).status_code == 201
    procedures = dossier_data.procedures(30, seed=7)
    offline = {**procedures[0], "code": "9.999999", "online_service": "none"}
    assert (await writer.post("/api/v1/procedures/import", json=[*procedures, offline])).status_code == 200
    return procedures


@pytest.fixture
async def loader(app: FastAPI, api_key: KeyFactory) -> AsyncIterator[tuple[AsyncClient, Principal]]:
    """A one-stop system's HTTP client, and its principal for the bulk import."""
    headers = await api_key("dossiers:write", "dossiers:read", name="one-stop")
    async with AsyncClient(transport=ASGITransport(app=app), base_url="http://t", headers=headers) as http:
        async with app.state.sessionmaker() as session:
            client = await get_client_by_name(session, "one-stop")
        yield http, Principal(client.id, client.name, frozenset(client.scopes), client.unit_code)
