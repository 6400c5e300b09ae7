"""Metrics in Prometheus format and JSON log lines, as operators' tools read them."""

import io
import json
import logging
from collections.abc import Iterator

import pytest
from httpx import AsyncClient
from prometheus_client.parser import text_string_to_metric_families

from app.core.logging import RequestIdFilter, formatter
from tests.conftest import KeyFactory
from tests.dossiers.conftest import portal, received, send, world  # noqa: F401


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


@pytest.mark.usefixtures("world")
async def test_metrics_count_requests_events_and_cache(client: AsyncClient, portal: AsyncClient) -> None:  # noqa: F811
    await client.get("/api/v1/units/nowhere")
    await client.get("/api/v1/units/nowhere")
    await send(portal, received("HS-1", "2023-07-03T09:00:00+07:00"))
    await send(portal, received("HS-1", "2023-07-03T09:00:00+07:00"))  # a resend
    first = await client.get("/api/v1/stats/dossiers", params={"period": "2023-Q3"})
    await client.get("/api/v1/stats/dossiers", params={"period": "2023-Q3"})
    await client.get(
        "/api/v1/stats/dossiers",
        params={"period": "2023-Q3"},
        headers={"If-None-Match": first.headers["etag"]},
    )

    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    values = samples(response.text)
    route = (("method", "GET"), ("route", "/api/v1/units/{code}"), ("status", "404"))
    assert values[("tthc_http_requests_total", route)] == 2
    assert values[("tthc_http_request_duration_seconds_count", route[:2])] == 2
    assert values[("tthc_dossier_events_ingested_total", (("outcome", "created"),))] == 1
    assert values[("tthc_dossier_events_ingested_total", (("outcome", "duplicate"),))] == 1
    # Every status an event can be answered with is shown from the start.
    for outcome in ("updated", "pending", "error"):
        assert values[("tthc_dossier_events_ingested_total", (("outcome", outcome),))] == 0
    for result in ("miss", "hit", "not_modified"):
        assert values[("tthc_stats_cache_requests_total", (("result", result),))] == 1
    assert values[("tthc_db_pool_connections_in_use", ())] >= 0
    # Unknown paths share one label, so that scanners cannot blow up the series count.
    await client.get("/no/such/path/1")
    await client.get("/no/such/path/2")
    again = samples((await client.get("/metrics")).text)
    assert (
        again[("tthc_http_requests_total", (("method", "GET"), ("route", "unmatched"), ("status", "404")))]
        == 2
    )


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(formatter("json"))
    logger = logging.getLogger("tthc")
    logger.addHandler(handler)
    try:
        yield buffer
    finally:
        logger.removeHandler(handler)


async def test_one_json_line_per_request_without_keys(
    client: AsyncClient, api_key: KeyFactory, json_log: io.StringIO
) -> None:
    headers = await api_key("units:write", name="portal-app")
    secret = headers["Authorization"].removeprefix("Bearer ")
    response = await client.post(
        "/api/v1/units", json={"code": "99", "name": "Tỉnh Thử", "level": "province"}, headers=headers
    )
    assert response.status_code == 201
    lines = [json.loads(line) for line in json_log.getvalue().splitlines()]
    access = [line for line in lines if line["logger"] == "tthc.access"]
    assert len(access) == 1
    (line,) = access
    assert line["method"] == "POST" and line["route"] == "/api/v1/units" and line["status"] == 201
    assert line["client"] == "portal-app" and line["level"] == "INFO" and line["duration_ms"] > 0
    assert line["request_id"] == response.headers["x-request-id"]
    assert secret not in json_log.getvalue() and secret[10:30] not in json_log.getvalue()
