"""A bulk import moves the data version of every province whose statistics it changes (SPEC §9:
statistics carry an ETag, and `If-None-Match` gives 304 only while they are what the client has).

The file holds dossiers of two provinces, and one event id under two dossiers of different
provinces: those two go through the API's ingestion at the end of the load, in the transaction
that also merges the other dossiers' counters into the statistics. A poller that asked before the
load, or while it ran, must get the new figures after it — those `tthc stats rebuild` gives —
from the same running app, its statistics cache on.
"""

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession

from app.clients.service import get_client_by_name
from app.core.data_version import bump_version
from app.core.security import Principal
from app.dossiers.bulk import Source, import_file
from app.dossiers.counters import merge_staged_counters, rebuild_counters
from app.dossiers.ingestion.work import Ingestion
from tests.conftest import KeyFactory, assert_counters_equal_a_rebuild
from tests.dossiers.conftest import received, step

STATS = "/api/v1/stats/dossiers"
PERIOD = "2023"
# Hải Phòng (31) comes with the `world` fixture; Hà Nội (01) is added here.
HANOI = [
    {"code": "01", "name": "Thành phố Hà Nội", "level": "province"},
    {
        "code": "001",
        "name": "Quận Ba Đình",
        "level": "district",
        "parent_code": "01",
        "valid_to": "2025-06-30",
    },
    {
        "code": "00001",
        "name": "Phường Phúc Xá",
        "level": "commune",
        "parent_code": "001",
        "valid_to": "2025-06-30",
    },
]
PROVINCES = ("31", "01")


@pytest.fixture
async def two_provinces(writer: AsyncClient, world: None) -> None:
    for unit in HANOI:
        assert (await writer.post("/api/v1/units", json=unit)).status_code == 201


@pytest.fixture
async def loader(app: FastAPI, api_key: KeyFactory, two_provinces: None) -> Principal:
    await api_key("dossiers:write", "dossiers:read", name="one-stop")
    async with app.state.sessionmaker() as session:
        client = await get_client_by_name(session, "one-stop")
    return Principal(client.id, client.name, frozenset(client.scopes), client.unit_code)


@pytest.fixture
async def poller(app: FastAPI) -> AsyncIterator[AsyncClient]:
    """Anonymous, as dashboards poll: statistics are public. The app (and its cache) is the test's."""
    assert app.state.stats_cache is not None, "the statistics cache must be on (TTHC_STATS_CACHE_BYTES)"
    async with AsyncClient(transport=ASGITransport(app=app), base_url="http://poller") as http:
        yield http


def _history(code: str, unit: str, day: str, *, first_id: str | None = None) -> list[dict[str, Any]]:
    """A dossier received and resolved on time on ``day`` (2023): it counts in the year's figures."""
    return [
        received(code, f"{day}T09:00:00+07:00", event_id=first_id, unit=unit, channel="direct"),
        step(code, "processing", f"{day}T10:00:00+07:00"),
        step(code, "resolved", f"{day}T15:00:00+07:00"),
    ]


def _events() -> list[dict[str, Any]]:
    """Dossiers of both provinces folded as new; and the id `shared` used first by a Hải Phòng
    dossier's reception, then by a Hà Nội dossier's (which the API refuses: event_id_reused)."""
    return [
        *_history("HN-0001", "00001", "2023-03-01"),
        *_history("HN-0002", "00001", "2023-03-02"),
        *_history("HP-0001", "11680", "2023-03-01"),
        *_history("HP-0009", "11680", "2023-04-03", first_id="shared"),
        *_history("HN-0009", "00001", "2023-04-03", first_id="shared"),
        *_history("HP-0002", "11737", "2023-05-02"),
    ]


async def _poll(http: AsyncClient, province: str, etag: str | None = None) -> tuple[int, str, Any]:
    headers = {"If-None-Match": etag} if etag is not None else {}
    response = await http.get(STATS, params={"unit": province, "period": PERIOD}, headers=headers)
    assert response.status_code in (200, 304), response.text
    body = response.json()["total"] if response.status_code == 200 else None
    return response.status_code, response.headers["ETag"], body


async def _rebuilt_figures(app: FastAPI, http: AsyncClient) -> dict[str, Any]:
    """What `tthc stats rebuild` gives, read through a cache that cannot have seen it."""
    async with app.state.sessionmaker() as session, session.begin():
        await rebuild_counters(session, app.state.calendar)
        await bump_version(session)  # as the command does: the global version, so no answer is reused
    figures = {}
    for province in PROVINCES:
        _status, _etag, figures[province] = await _poll(http, province)
    return figures


def _sender_of(app: FastAPI, principal: Principal) -> Any:
    def ingestion_of(session: AsyncSession) -> Ingestion:
        return Ingestion(session, principal, app.state.calendar, app.state.settings.secret_key)

    return ingestion_of


async def test_every_province_a_load_changes_moves_its_version(
    app: FastAPI,
    loader: Principal,
    poller: AsyncClient,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    before: dict[str, tuple[str, Any]] = {}
    for province in PROVINCES:
        status, etag, figures = await _poll(poller, province)
        assert status == 200 and figures["counts"]["received"] == 0
        before[province] = (etag, figures)

    # While the load runs (its dossiers folded, their counters not merged yet) the poller asks
    # again: the same app keeps that answer under the tag it was given.
    during: dict[str, tuple[str, Any]] = {}

    async def polled_then_merged(session: AsyncSession, identity: str) -> None:
        for province in PROVINCES:
            if province not in during:
                status, etag, figures = await _poll(poller, province)
                assert status == 200
                during[province] = (etag, figures)
        await merge_staged_counters(session, identity)

    monkeypatch.setattr("app.dossiers.bulk.merge_staged_counters", polled_then_merged)
    events = _events()
    path = tmp_path / "two-provinces.jsonl"
    path.write_text("\n".join(json.dumps(event) for event in events) + "\n")
    done = await import_file(app.state.sessionmaker, _sender_of(app, loader), Source.of(path), chunk_size=4)
    monkeypatch.undo()

    assert set(during) == set(PROVINCES)
    assert done.outcomes["error"] == 1  # HN-0009's reception: the id is Hải Phòng's
    rejected = [json.loads(line) for line in Source.of(path).rejects.read_text().splitlines()]
    assert [entry["problem"]["errors"][0]["type"] for entry in rejected] == ["event_id_reused"]

    after: dict[tuple[str, str], Any] = {}
    for province in PROVINCES:
        for when, (old_etag, old_figures) in (("before", before[province]), ("during", during[province])):
            status, etag, figures = await _poll(poller, province, old_etag)
            assert status == 200, f"{province}: a 304 for figures the load changed (tag from {when} it)"
            assert etag != old_etag and figures != old_figures
            after[province, when] = figures

    await assert_counters_equal_a_rebuild(app)
    rebuilt = await _rebuilt_figures(app, poller)
    assert after == {(province, when): rebuilt[province] for province, when in after}
    # Each province received what the file gave it: Hà Nội 2 (HN-0009's reception was refused).
    assert {p: rebuilt[p]["counts"]["received"] for p in PROVINCES} == {"31": 3, "01": 2}
