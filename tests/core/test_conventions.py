"""The ecosystem's HTTP habits: an importable `app`, HEAD on the probes, `Location` on 201, `Link` to
the next page, the IETF `RateLimit` fields and gzip."""

import itertools
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from httpx import AsyncClient

from app.core import migrations
from app.core.config import Settings
from app.main import create_app
from app.reports.router import XLSX
from tests.conftest import running_app
from tests.dossiers.conftest import BATCH, PROCEDURES, procedure_body, received
from tests.feedback.test_feedback import feedback

ROOT = Path(__file__).resolve().parents[2]
IDENTITY = {"Accept-Encoding": "identity"}
GZIP = {"Accept-Encoding": "gzip"}


def _environment(database_url: str) -> dict[str, str]:
    return {**os.environ, "TTHC_DATABASE_URL": database_url, "TTHC_LOG_LEVEL": "WARNING"}


# --- `app` for uvicorn and `fastapi run` -------------------------------------------------------


def test_importing_app_main_builds_no_app_and_app_is_built_once(tmp_path: Path) -> None:
    script = (
        "import app.main as main\n"
        "from fastapi import FastAPI\n"
        "assert main._app_from_environment.cache_info().currsize == 0, 'built on import'\n"
        "assert 'app' in dir(main)\n"  # where `fastapi run` looks for it
        "assert isinstance(main.app, FastAPI) and main.app is main.app\n"
        "from app.main import app\n"
        "assert app is main.app\n"
    )
    subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=_environment(f"sqlite+aiosqlite:///{tmp_path / 'unused.db'}"),
        check=True,
        timeout=60,
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_uvicorn_serves_app_main_app(tmp_path: Path) -> None:
    database_url = f"sqlite+aiosqlite:///{tmp_path / 'served.db'}"
    migrations.upgrade(database_url)
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "app.main:app", "--port", str(port), "--log-level", "warning"],
        cwd=ROOT,
        env=_environment(database_url),
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, "uvicorn app.main:app exited"
            assert time.monotonic() < deadline, "uvicorn app.main:app did not answer within 60 s"
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
                break
            except httpx.TransportError:
                time.sleep(0.2)
        assert health.status_code == 200
        assert health.json() == {"status": "ok"}
        # A real server on HEAD: no body on the wire, the GET's length announced.
        head = httpx.head(f"http://127.0.0.1:{port}/readyz", headers=IDENTITY, timeout=5)
        assert head.status_code == 200
        assert head.content == b""
        ready = httpx.get(f"http://127.0.0.1:{port}/readyz", headers=IDENTITY, timeout=5)
        assert head.headers["content-length"] == ready.headers["content-length"]
    finally:
        server.terminate()
        server.wait(timeout=30)


# --- HEAD on the health routes -----------------------------------------------------------------


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
async def test_head_on_a_health_route_answers_like_get_without_the_body(
    client: AsyncClient, path: str
) -> None:
    got = await client.get(path, headers=IDENTITY)
    head = await client.head(path, headers=IDENTITY)
    assert (got.status_code, head.status_code) == (200, 200)
    assert head.content == b""
    assert head.headers["content-length"] == got.headers["content-length"] == str(len(got.content))
    assert head.headers["content-type"] == got.headers["content-type"]


async def test_head_elsewhere_is_still_refused(client: AsyncClient) -> None:
    assert (await client.head("/api/v1/units")).status_code == 405


# --- Location on every 201 ---------------------------------------------------------------------

Created = tuple[httpx.Response, str]


async def _unit(writer: AsyncClient) -> Created:
    response = await writer.post(
        "/api/v1/units", json={"code": "32", "name": "Tỉnh Mới", "level": "province"}
    )
    return response, "/api/v1/units/32"


async def _sector(writer: AsyncClient) -> Created:
    response = await writer.post("/api/v1/sectors", json={"code": "dat-dai", "name": "Đất đai"})
    return response, "/api/v1/sectors/dat-dai"


async def _procedure(writer: AsyncClient) -> Created:
    body = procedure_body("3.000001", "Cấp bản sao trích lục", ["commune"], 1, "working_days")
    return await writer.post("/api/v1/procedures", json=body), "/api/v1/procedures/3.000001"


async def _proposal(writer: AsyncClient) -> Created:
    body = {
        "kind": "abolish",
        "procedure_code": "2.000001",
        "level": "district",
        "unit_code": "313",
        "title": "Bãi bỏ",
        "rationale": "Giảm thủ tục cho người dân",
        "change": {},
    }
    response = await writer.post("/api/v1/proposals", json=body)
    return response, f"/api/v1/proposals/{response.json()['id']}"


async def _feedback(writer: AsyncClient) -> Created:
    response = await writer.post("/api/v1/feedback", json=feedback())
    return response, f"/api/v1/feedback/{response.json()['id']}"


async def _client(writer: AsyncClient) -> Created:
    response = await writer.post("/api/v1/clients", json={"name": "new-client", "scopes": ["units:write"]})
    return response, f"/api/v1/clients/{response.json()['id']}"


async def _client_key(writer: AsyncClient) -> Created:
    client_id = (await _client(writer))[0].json()["id"]
    response = await writer.post(f"/api/v1/clients/{client_id}/keys")
    return response, f"/api/v1/clients/{client_id}/keys/{response.json()['id']}"


async def _dossier_event(writer: AsyncClient) -> Created:
    response = await writer.post("/api/v1/dossier-events", json=received("L-1", "2023-08-01T08:00:00+07:00"))
    return response, "/api/v1/dossiers/L-1"


CREATING: dict[str, Callable[[AsyncClient], Awaitable[Created]]] = {
    "create_unit": _unit,
    "create_sector": _sector,
    "create_procedure": _procedure,
    "create_proposal": _proposal,
    "receive_feedback": _feedback,
    "create_client": _client,
    "create_client_key": _client_key,
    "ingest_dossier_event": _dossier_event,
}
# Its 201 makes nothing with a URL of its own.
WITHOUT_LOCATION = {"rate_dossier"}
# Only revoked (DELETE): a key's secret is never shown again.
NOT_READABLE = {"create_client_key"}


def test_every_201_is_documented_with_location_or_deliberately_without() -> None:
    document = create_app(Settings()).openapi()
    created = {
        operation["operationId"]: "Location" in operation["responses"]["201"].get("headers", {})
        for operations in document["paths"].values()
        for operation in operations.values()
        if "201" in operation["responses"]
    }
    assert {name for name, located in created.items() if located} == set(CREATING)
    assert {name for name, located in created.items() if not located} == WITHOUT_LOCATION


@pytest.mark.usefixtures("world")
@pytest.mark.parametrize("operation", sorted(CREATING))
async def test_a_201_names_the_created_resource_in_location(writer: AsyncClient, operation: str) -> None:
    response, expected = await CREATING[operation](writer)
    assert response.status_code == 201, response.text
    assert response.headers["location"] == expected
    if operation not in NOT_READABLE:
        assert (await writer.get(response.headers["location"])).status_code == 200


# --- Link to the next page ---------------------------------------------------------------------


async def _walk(http: AsyncClient, first: str, params: dict[str, Any]) -> list[httpx.Response]:
    """A list page by page, following each page's `Link`."""
    pages = [await http.get(first, params=params)]
    while "link" in pages[-1].headers:
        link = pages[-1].headers["link"]
        assert link.startswith("<") and link.endswith('>; rel="next"'), link
        pages.append(await http.get(link[1 : -len('>; rel="next"')]))
    return pages


@pytest.mark.usefixtures("world")
@pytest.mark.parametrize(
    ("path", "params", "expected"),
    [
        # The districts (name matches `huyện`): a query with text to percent-encode.
        ("/api/v1/units", {"q": "huyện", "limit": 1}, ["313", "314"]),
        # Answered with spliced JSON, through a Response of the route's own.
        ("/api/v1/procedures", {"limit": 2}, sorted(item["code"] for item in PROCEDURES)),
    ],
)
async def test_link_names_the_next_page_with_the_same_query(
    client: AsyncClient, path: str, params: dict[str, Any], expected: list[str]
) -> None:
    pages = await _walk(client, path, params)
    assert [item["code"] for page in pages for item in page.json()["items"]] == expected
    for page, following in itertools.pairwise(pages):
        cursor = page.json()["next_cursor"]
        assert cursor is not None
        link_target = following.request.url
        assert dict(link_target.params) == {**{k: str(v) for k, v in params.items()}, "cursor": cursor}
    if "q" in params:
        assert "q=huy%E1%BB%87n" in pages[0].headers["link"]
    assert pages[-1].json()["next_cursor"] is None


# --- RateLimit fields --------------------------------------------------------------------------


def _fields(response: httpx.Response) -> tuple[dict[str, str], dict[str, dict[str, int]]]:
    """RateLimit-Policy and RateLimit as {policy: parameters}."""

    def items(header: str) -> dict[str, dict[str, int]]:
        parsed = {}
        for item in response.headers[header].split(", "):
            name, *parameters = item.split(";")
            parsed[name.strip('"')] = {key: int(value) for key, value in (p.split("=") for p in parameters)}
        return parsed

    policies = {name: f"q={p['q']};w={p['w']}" for name, p in items("ratelimit-policy").items()}
    return policies, items("ratelimit")


async def test_answers_show_the_rate_limits_they_drew_on(client: AsyncClient, writer: AsyncClient) -> None:
    first = await client.get("/api/v1/units")
    second = await client.get("/api/v1/units")
    policies, before = _fields(first)
    assert policies == {"ip-read": "q=6000;w=60"}
    _policies, after = _fields(second)
    assert after["ip-read"]["r"] == before["ip-read"]["r"] - 1
    assert 0 <= after["ip-read"]["t"] <= 60
    # With a key: the client's own allowance too (writes and reads are counted apart).
    written = await writer.post("/api/v1/sectors", json={"code": "moi", "name": "Mới"})
    assert written.status_code == 201
    policies, _left = _fields(written)
    assert policies == {"ip-write": "q=1200;w=60", "client-write": "q=1200;w=60"}
    assert "ratelimit" not in (await client.get("/healthz")).headers  # probes are never counted


@asynccontextmanager
async def _serving(settings: Settings) -> AsyncIterator[AsyncClient]:
    async with (
        running_app(settings) as app,
        AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http,
    ):
        yield http


async def test_a_refusal_shows_the_allowance_used_up(database_url: str) -> None:
    async with _serving(Settings(database_url=database_url, rate_limit_ip_reads="2/minute")) as http:
        answers = [await http.get("/api/v1/units") for _ in range(3)]
    assert [answer.status_code for answer in answers] == [200, 200, 429]
    assert [_fields(answer)[1]["ip-read"]["r"] for answer in answers] == [1, 0, 0]


async def test_no_rate_limit_fields_when_limits_are_off(database_url: str) -> None:
    off = Settings(
        database_url=database_url,
        rate_limit_ip_reads="",
        rate_limit_ip_writes="",
        rate_limit_client_reads="",
        rate_limit_client_writes="",
    )
    async with _serving(off) as http:
        response = await http.get("/api/v1/units")
    assert response.status_code == 200
    assert "ratelimit" not in response.headers
    assert "ratelimit-policy" not in response.headers


# --- gzip --------------------------------------------------------------------------------------


def _raw_length(response: httpx.Response) -> int:
    # httpx has already decompressed the body; the length on the wire is the header's.
    return int(response.headers["content-length"])


@pytest.mark.usefixtures("world")
async def test_a_large_list_is_gzipped_to_the_same_json(app: FastAPI, portal: AsyncClient) -> None:
    events = [received(f"G-{n:04d}", "2023-08-01T08:00:00+07:00") for n in range(500)]
    assert (await portal.post(BATCH, json={"events": events})).status_code == 200
    plain = await portal.get("/api/v1/dossiers", params={"limit": 500}, headers=IDENTITY)
    packed = await portal.get("/api/v1/dossiers", params={"limit": 500}, headers=GZIP)
    assert len(plain.json()["items"]) == 500
    assert "content-encoding" not in plain.headers
    assert packed.headers["content-encoding"] == "gzip"
    assert "Accept-Encoding" in packed.headers["vary"]
    assert packed.json() == plain.json()
    ratio = len(plain.content) / _raw_length(packed)
    print(f"500 dossiers: {len(plain.content)} bytes, gzipped {_raw_length(packed)} ({ratio:.1f}:1)")
    assert ratio > 5


async def test_a_small_answer_is_not_compressed(client: AsyncClient) -> None:
    response = await client.get("/healthz", headers=GZIP)
    assert "content-encoding" not in response.headers
    assert response.content == b'{"status":"ok"}'


@pytest.mark.usefixtures("world")
async def test_a_compressed_answer_has_a_weak_etag_that_revalidates_and_updates(writer: AsyncClient) -> None:
    body = {
        **procedure_body("3.000002", "Thủ tục dài", ["commune"], 1, "days"),
        "description": "Mô tả. " * 300,
    }
    assert (await writer.post("/api/v1/procedures", json=body)).status_code == 201
    url = "/api/v1/procedures/3.000002"
    plain = await writer.get(url, headers=IDENTITY)
    packed = await writer.get(url, headers=GZIP)
    assert packed.headers["content-encoding"] == "gzip"
    strong = plain.headers["etag"]
    assert not strong.startswith("W/")
    # Another representation (other bytes), the same resource version.
    assert packed.headers["etag"] == f"W/{strong}"
    unchanged = await writer.get(url, headers={**GZIP, "If-None-Match": packed.headers["etag"]})
    assert unchanged.status_code == 304
    assert unchanged.headers["etag"] == f"W/{strong}"
    updated = await writer.patch(
        url, json={"name": "Thủ tục đã đổi tên"}, headers={"If-Match": f"W/{strong}"}
    )
    assert updated.status_code == 200, updated.text


async def test_a_workbook_is_not_compressed_again(client: AsyncClient, world: None) -> None:
    report = await client.get(
        "/api/v1/reports/reform", params={"unit": "313", "period": "2023-Q3", "format": "xlsx"}, headers=GZIP
    )
    assert report.status_code == 200
    assert report.headers["content-type"] == XLSX
    assert len(report.content) > 1024
    assert "content-encoding" not in report.headers


@pytest.mark.usefixtures("world")
async def test_a_streamed_export_is_gzipped_piece_by_piece(client: AsyncClient) -> None:
    export = "/api/v1/procedures/export"
    plain = await client.get(export, params={"format": "csv"}, headers=IDENTITY)
    packed = await client.get(export, params={"format": "csv"}, headers=GZIP)
    assert packed.status_code == 200
    assert packed.headers["content-encoding"] == "gzip"
    # Streamed: no length known up front, compressed or not.
    assert "content-length" not in packed.headers
    assert packed.content == plain.content
