"""`/docs` and `/redoc` on a network that reaches nothing but the service (issue 28): the pages and
their assets come from the service's own static files."""

import html
import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from httpx import AsyncClient

from tests.reports.test_browser import chromium

PAGES = ("/docs", "/redoc")
ASSET_TYPES = {".js": "text/javascript", ".css": "text/css", ".png": "image/png"}
# The smallest the real files can be: the favicon is 5 KB, Swagger's CSS 180 KB, the scripts > 1 MB.
ASSET_MIN_BYTES = {".js": 500_000, ".css": 100_000, ".png": 1_000}


def _references(page: str) -> list[str]:
    return re.findall(r'\b(?:src|href)="([^"]*)"', page)


@pytest.mark.parametrize("path", PAGES)
async def test_the_docs_pages_load_only_the_services_own_files(client: AsyncClient, path: str) -> None:
    response = await client.get(path)
    assert response.status_code == 200
    # No absolute URL at all: every reference is a path on whatever host served the page.
    assert not re.search(r"https?:|//[a-z0-9]", response.text, re.IGNORECASE)
    assets = _references(response.text)
    assert any(asset.endswith(".js") for asset in assets)
    for asset in assets:
        assert asset.startswith("/static/docs/"), asset
        suffix = Path(asset).suffix
        answer = await client.get(asset)
        assert answer.status_code == 200, asset
        assert answer.headers["content-type"].split(";")[0] == ASSET_TYPES[suffix], asset
        assert len(answer.content) > ASSET_MIN_BYTES[suffix], asset


@pytest.mark.parametrize("path", PAGES)
async def test_the_docs_pages_forbid_the_browser_any_other_host(client: AsyncClient, path: str) -> None:
    policy = (await client.get(path)).headers["content-security-policy"]
    directives = dict(directive.strip().split(" ", 1) for directive in policy.split(";"))
    assert directives["default-src"] == "'self'"
    assert directives["img-src"] == "'self' data:"
    assert "unsafe" not in directives["script-src"]
    assert "http" not in policy


async def test_the_policy_of_the_docs_pages_stays_on_them(client: AsyncClient) -> None:
    for path in ("/openapi.json", "/healthz", "/static/docs/swagger-ui-bundle.js"):
        assert "content-security-policy" not in (await client.get(path)).headers, path


def _offline_page(live_server: str, path: str, netlog: Path) -> str:
    """The DOM of ``path`` once its scripts have run, in a Chromium that reaches only the live
    server: every other request goes to a dead proxy (port 9 of the loopback, where nothing
    listens), so a CDN asset fails at once as it would on an isolated network."""
    return chromium(
        "--proxy-server=http://127.0.0.1:9",
        f"--proxy-bypass-list={urlsplit(live_server).netloc}",
        f"--log-net-log={netlog}",
        "--virtual-time-budget=10000",
        "--dump-dom",
        f"{live_server}{path}",
    )


def _requested_by_the_page(netlog: Path, origin: str) -> set[str]:
    """The URLs the page itself asked for: Chromium's own background requests (updates, sync) have
    no origin as their initiator."""
    log = json.loads(netlog.read_text())
    start_job = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    return {
        event["params"]["url"]
        for event in log["events"]
        if event["type"] == start_job and event.get("params", {}).get("initiator") == origin
    }


def _operations(live_server: str) -> list[dict[str, Any]]:
    document = httpx.get(f"{live_server}/openapi.json").json()
    return [operation for operations in document["paths"].values() for operation in operations.values()]


def test_swagger_ui_renders_every_operation_offline(live_server: str, tmp_path: Path) -> None:
    netlog = tmp_path / "netlog.json"
    dom = _offline_page(live_server, "/docs", netlog)
    operations = _operations(live_server)
    assert dom.count('class="opblock opblock-') == len(operations) > 40
    for operation in operations:
        assert f'id="operations-{operation["tags"][0]}-{operation["operationId"]}"' in dom, operation
    text = html.unescape(re.sub(r"<[^>]+>", "", dom))
    assert "List dossiers: by unit subtree, procedure, status" in text
    requested = _requested_by_the_page(netlog, live_server)
    assert f"{live_server}/static/docs/swagger-ui-bundle.js" in requested
    assert all(url.startswith(f"{live_server}/") for url in requested), requested


def test_redoc_renders_every_operation_offline(live_server: str, tmp_path: Path) -> None:
    netlog = tmp_path / "netlog.json"
    dom = _offline_page(live_server, "/redoc", netlog)
    headings = {
        html.unescape(re.sub(r"<[^>]+>", "", heading)).strip()
        for heading in re.findall(r"<h2[^>]*>(.*?)</h2>", dom, re.DOTALL)
    }
    operations = _operations(live_server)
    assert len(operations) > 40
    assert {operation["summary"] for operation in operations} <= headings
    # The Redocly logo of the sidebar, from cdn.redoc.ly, is refused by the page's policy.
    requested = _requested_by_the_page(netlog, live_server)
    assert f"{live_server}/static/docs/redoc.standalone.js" in requested
    assert all(url.startswith(f"{live_server}/") for url in requested), requested
