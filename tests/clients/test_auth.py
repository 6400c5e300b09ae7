"""Authentication (401), function-level (403) and object-level (403/404) authorization."""

import logging
from typing import Annotated

import pytest
from fastapi import FastAPI
from httpx import AsyncClient

from app.clients.deps import require
from app.core.db import SessionDep
from app.core.security import Principal, Scope
from app.units.access import ensure_reach
from tests.conftest import KeyFactory
from tests.dossiers.conftest import UNITS as HISTORICAL_UNITS

UNITS = "/api/v1/units"
NEW_PROVINCE = {"code": "31", "name": "Thành phố Hải Phòng", "level": "province"}


async def test_write_without_key_is_401_with_challenge(client: AsyncClient) -> None:
    response = await client.post(UNITS, json=NEW_PROVINCE)
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert (await client.get(UNITS)).json()["items"] == []


@pytest.mark.parametrize("authorization", ["Bearer tthc_not-a-real-key", "Basic dXNlcjpwYXNz", "Bearer"])
async def test_unknown_or_malformed_key_is_401(client: AsyncClient, authorization: str) -> None:
    response = await client.post(UNITS, json=NEW_PROVINCE, headers={"Authorization": authorization})
    assert response.status_code == 401
    assert "Bearer" in response.headers["www-authenticate"]


async def test_revoked_key_is_401(client: AsyncClient, writer: AsyncClient, api_key: KeyFactory) -> None:
    headers = await api_key("units:write", name="portal")
    assert (await client.post(UNITS, json=NEW_PROVINCE, headers=headers)).status_code == 201

    clients = (await writer.get("/api/v1/clients")).json()["items"]
    portal = next(c for c in clients if c["name"] == "portal")
    revoked = await writer.delete(f"/api/v1/clients/{portal['id']}/keys/{portal['keys'][0]['id']}")
    assert revoked.status_code == 200
    assert revoked.json()["revoked_at"] is not None

    again = await client.patch(f"{UNITS}/31", json={"name": "X"}, headers=headers)
    assert again.status_code == 401
    assert 'error="invalid_token"' in again.headers["www-authenticate"]


async def test_wrong_scope_is_403(client: AsyncClient, api_key: KeyFactory) -> None:
    headers = await api_key("dossiers:write", "catalogue:write")
    response = await client.post(UNITS, json=NEW_PROVINCE, headers=headers)
    assert response.status_code == 403
    assert "units:write" in response.json()["detail"]
    admin_only = await client.get("/api/v1/clients", headers=headers)
    assert admin_only.status_code == 403


@pytest.fixture
async def two_districts(writer: AsyncClient) -> None:
    # Hải Phòng with two of its districts as they were before the 2025 reform.
    units = HISTORICAL_UNITS
    for unit in units:
        assert (await writer.post(UNITS, json=unit)).status_code == 201


@pytest.mark.usefixtures("two_districts")
async def test_bound_client_writes_only_inside_its_unit(client: AsyncClient, api_key: KeyFactory) -> None:
    kien_thuy = await api_key("units:write", unit="313")
    inside = await client.post(
        UNITS,
        json={
            "code": "11683",
            "name": "Xã Thụy Hương",
            "level": "commune",
            "parent_code": "313",
            "valid_to": "2025-06-30",
        },
        headers=kien_thuy,
    )
    assert inside.status_code == 201
    assert (
        await client.patch(f"{UNITS}/11680", json={"name": "TT Núi Đối"}, headers=kien_thuy)
    ).status_code == 200

    outside = await client.post(
        UNITS,
        json={
            "code": "11740",
            "name": "Xã Khác",
            "level": "commune",
            "parent_code": "314",
            "valid_to": "2025-06-30",
        },
        headers=kien_thuy,
    )
    assert outside.status_code == 403
    assert (await client.patch(f"{UNITS}/11737", json={"name": "X"}, headers=kien_thuy)).status_code == 403
    assert (await client.patch(f"{UNITS}/31", json={"name": "X"}, headers=kien_thuy)).status_code == 403
    moved = await client.patch(f"{UNITS}/11680", json={"parent_code": "314"}, headers=kien_thuy)
    assert moved.status_code == 403
    root = await client.post(
        UNITS, json={"code": "99", "name": "Tỉnh", "level": "province"}, headers=kien_thuy
    )
    assert root.status_code == 403
    assert (await client.get(f"{UNITS}/11740")).status_code == 404
    assert (await client.get(f"{UNITS}/11737")).json()["name"] == "Xã Tiên Thắng"
    assert (await client.get(f"{UNITS}/11680")).json()["parent_code"] == "313"


@pytest.mark.usefixtures("two_districts")
async def test_private_read_outside_binding_is_404(
    app: FastAPI, client: AsyncClient, api_key: KeyFactory
) -> None:
    # Stands for every private single-object read (dossiers, feedback): they all go through ensure_reach.
    async def read_private(
        session: SessionDep, reader: Annotated[Principal, require(Scope.dossiers_read)], unit_code: str
    ) -> dict[str, str]:
        await ensure_reach(session, reader, unit_code, conceal=True)
        return {"unit_code": unit_code}

    app.add_api_route("/private/{unit_code}", read_private)
    kien_thuy = await api_key("dossiers:read", unit="313")
    assert (await client.get("/private/11680", headers=kien_thuy)).status_code == 200
    hidden = await client.get("/private/11737", headers=kien_thuy)
    missing = await client.get("/private/00000", headers=kien_thuy)
    assert hidden.status_code == missing.status_code == 404
    assert hidden.json()["detail"] == missing.json()["detail"]
    unbound = await api_key("dossiers:read")
    assert (await client.get("/private/11737", headers=unbound)).status_code == 200


async def test_public_reads_need_no_key(client: AsyncClient) -> None:
    for path in (UNITS, "/openapi.json", "/docs", "/healthz"):
        assert (await client.get(path)).status_code == 200, path


async def test_keys_never_reach_the_logs(
    client: AsyncClient, api_key: KeyFactory, caplog: pytest.LogCaptureFixture
) -> None:
    headers = await api_key("units:write", name="secretive")
    secret = headers["Authorization"].removeprefix("Bearer ")
    with caplog.at_level(logging.DEBUG):
        await client.post(UNITS, json=NEW_PROVINCE, headers=headers)
        await client.post(UNITS, json=NEW_PROVINCE, headers=headers)  # a 409, logged too
        await client.get(UNITS, headers={"Authorization": secret[:-1] + "x"})
    text = "\n".join(record.getMessage() for record in caplog.records)
    assert "client=secretive" in text
    assert secret not in text
    assert secret[10:30] not in text


async def test_last_used_at_is_recorded(
    client: AsyncClient, writer: AsyncClient, api_key: KeyFactory
) -> None:
    headers = await api_key("units:write", name="portal")
    listed = (await writer.get("/api/v1/clients")).json()["items"]
    assert next(c for c in listed if c["name"] == "portal")["keys"][0]["last_used_at"] is None
    await client.post(UNITS, json=NEW_PROVINCE, headers=headers)
    listed = (await writer.get("/api/v1/clients")).json()["items"]
    assert next(c for c in listed if c["name"] == "portal")["keys"][0]["last_used_at"] is not None


async def test_openapi_declares_bearer_scheme_and_scopes(client: AsyncClient) -> None:
    document = (await client.get("/openapi.json")).json()
    assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    create_unit = document["paths"]["/api/v1/units"]["post"]
    assert create_unit["security"] == [{"bearer": ["units:write"]}]
    assert {"401", "403", "413", "429"} <= set(create_unit["responses"])
    assert "security" not in document["paths"]["/api/v1/units"]["get"]
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            if method != "get":
                assert operation.get("security"), f"{method.upper()} {path} has no scope"
