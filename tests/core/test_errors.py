import logging

import pytest
from fastapi import FastAPI
from httpx import AsyncClient

PROBLEM = "application/problem+json"


async def test_unknown_route_is_a_404_problem(client: AsyncClient) -> None:
    response = await client.get("/api/v1/nowhere")
    assert response.status_code == 404
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body["status"] == 404
    assert body["title"] == "Not Found"
    assert body["type"].startswith("urn:tthc:problem:")
    assert body["instance"] == "/api/v1/nowhere"


async def test_wrong_method_is_a_405_problem_with_allow(client: AsyncClient) -> None:
    response = await client.delete("/api/v1/units")
    assert response.status_code == 405
    assert response.headers["content-type"] == PROBLEM
    assert response.headers["allow"]
    assert response.json()["status"] == 405


async def test_validation_error_names_every_bad_field(writer: AsyncClient) -> None:
    response = await writer.post("/api/v1/units", json={"code": "", "level": "planet"})
    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM
    fields = {error["field"] for error in response.json()["errors"]}
    assert {"body.code", "body.level", "body.name"} <= fields


async def test_malformed_json_is_a_400_problem(writer: AsyncClient) -> None:
    response = await writer.post(
        "/api/v1/units", content=b'{"code": "01", ', headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["type"] == "urn:tthc:problem:malformed-json"


async def test_unexpected_exception_is_a_generic_500_logged_with_request_id(
    app: FastAPI, client: AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    async def explode() -> None:
        raise RuntimeError("connection string postgres://secret@internal")

    app.add_api_route("/boom", explode)
    with caplog.at_level(logging.ERROR, logger="tthc.errors"):
        response = await client.get("/boom", headers={"X-Request-ID": "req-123"})
    assert response.status_code == 500
    assert response.headers["content-type"] == PROBLEM
    assert response.headers["x-request-id"] == "req-123"
    assert "secret" not in response.text
    assert "Traceback" not in response.text
    assert response.json()["request_id"] == "req-123"
    assert any("req-123" in record.getMessage() and record.exc_info for record in caplog.records)


async def test_every_response_carries_a_request_id(client: AsyncClient) -> None:
    response = await client.get("/healthz")
    assert len(response.headers["x-request-id"]) == 32
    unsafe = await client.get("/healthz", headers={"X-Request-ID": "bad id\twith spaces"})
    assert unsafe.headers["x-request-id"] != "bad id\twith spaces"
