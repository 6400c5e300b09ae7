"""`tthc dossiers import`: files of events or records give what the API gives for the same lines,
and a load killed at any point finishes on rerun with nothing lost or doubled."""

import gzip
import json
import random
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from httpx import AsyncClient
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.data_version import bump_version
from app.core.security import Principal
from app.dossiers.bulk import FileProgress, Source, import_file
from app.dossiers.counters import COUNTERS, DossierCounter, rebuild_counters
from app.dossiers.ingestion.work import Ingestion
from app.dossiers.models import (
    Dossier,
    DossierEvent,
    DossierEventCorrection,
    ImportCheckpoint,
    ImportStagedEvent,
)
from bench import dossier_data
from bench.ingestion import portal_record
from tests.conftest import assert_counters_equal_a_rebuild

BATCH = "/api/v1/dossier-events/batch"
SYNC = "/api/v1/sync/dvcqg"


@pytest.fixture
def province(bench_procedures: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    return list(dossier_data.dossier_events(80, bench_procedures, seed=11))


def _lines(histories: list[list[dict[str, Any]]], seed: int) -> list[str]:
    """Every event, shuffled, some sent twice, with a line that is not JSON and an invalid event."""
    rng = random.Random(seed)
    events = [event for history in histories for event in history]
    rng.shuffle(events)
    events += rng.sample(events, 10)
    lines = [json.dumps(event) for event in events]
    lines.insert(17, "{not json")
    lines.insert(40, json.dumps({**events[0], "event_id": "bad-1", "occurred_at": "yesterday"}))
    return lines


async def _snapshot(app: FastAPI) -> tuple[dict[str, Any], dict[tuple[Any, ...], tuple[int, ...]]]:
    async with app.state.sessionmaker() as session:
        dossiers = {
            row.code: {c.name: getattr(row, c.name) for c in Dossier.__table__.c if c.name[-3:] != "_at"}
            | {"received_at": row.received_at, "due_at": row.due_at, "finished_at": row.finished_at}
            for row in await session.scalars(select(Dossier))
        }
        counters = {}
        for counter in await session.scalars(select(DossierCounter)):
            values = tuple(getattr(counter, name) for name in COUNTERS)
            if any(values):
                key = (counter.unit_code, counter.sector_code, counter.procedure_code, counter.grain)
                counters[(*key, counter.bucket)] = values
    return dossiers, counters


async def _checkpoint_of(app: FastAPI, source: Source) -> tuple[int, bool, str | None]:
    async with app.state.sessionmaker() as session:
        found = await session.get(ImportCheckpoint, source.identity)
        assert found is not None
        return found.lines_done, found.staged, found.folded_through


async def _forget_dossiers(app: FastAPI) -> None:
    async with app.state.sessionmaker() as session, session.begin():
        for model in (
            DossierCounter,
            DossierEventCorrection,
            DossierEvent,
            Dossier,
            ImportCheckpoint,
            ImportStagedEvent,
        ):
            await session.execute(delete(model))


def _sender_of(app: FastAPI, principal: Principal) -> Any:
    def ingestion_of(session: AsyncSession) -> Ingestion:
        return Ingestion(session, principal, app.state.calendar, app.state.settings.secret_key)

    return ingestion_of


async def _import(app: FastAPI, principal: Principal, source: Source, **options: Any) -> FileProgress:
    return await import_file(app.state.sessionmaker, _sender_of(app, principal), source, **options)


async def test_a_file_of_events_gives_what_the_api_gives(
    app: FastAPI, province: list[list[dict[str, Any]]], loader: tuple[AsyncClient, Principal], tmp_path: Path
) -> None:
    http, principal = loader
    lines = _lines(province, seed=3)
    # The API is sent the same items (the line that is not JSON as an empty event: refused too).
    items = [json.loads(line) if line != "{not json" else {} for line in lines]
    for start in range(0, len(items), 100):
        response = await http.post(BATCH, json={"events": items[start : start + 100]})
        assert response.status_code == 200, response.text
    through_api = await _snapshot(app)
    await _forget_dossiers(app)

    path = tmp_path / "events.jsonl.gz"
    path.write_bytes(gzip.compress("\n".join(lines).encode()))
    done = await _import(app, principal, Source.of(path), chunk_size=64)

    assert (done.kind, done.lines_done) == ("events", len(lines))
    assert done.outcomes["created"] + done.outcomes["pending"] >= sum(len(h) for h in province) - 10
    assert done.outcomes["duplicate"] >= 10
    rejected = [json.loads(line) for line in Source.of(path).rejects.read_text().splitlines()]
    assert [entry["line"] for entry in rejected] == [18, 41]
    assert await _snapshot(app) == through_api
    await assert_counters_equal_a_rebuild(app)


async def test_a_file_of_records_gives_what_the_api_gives(
    app: FastAPI, province: list[list[dict[str, Any]]], loader: tuple[AsyncClient, Principal], tmp_path: Path
) -> None:
    http, principal = loader
    records = [portal_record(history) for history in province]
    response = await http.post(SYNC, json={"service": "DongBoHoSoMC", "isUpdating": False, "data": records})
    assert response.status_code == 200
    through_api = await _snapshot(app)
    await _forget_dossiers(app)

    path = tmp_path / "records.jsonl"
    path.write_text("\n".join(json.dumps(record) for record in records) + "\n")
    done = await _import(app, principal, Source.of(path), chunk_size=25)

    assert (done.kind, done.outcomes["created"]) == ("records", len(records))
    assert await _snapshot(app) == through_api


@pytest.mark.parametrize("rebuilt_between", [False, True], ids=["rerun", "stats-rebuild-then-rerun"])
async def test_a_killed_load_finishes_on_rerun_with_nothing_lost_or_doubled(
    app: FastAPI,
    province: list[list[dict[str, Any]]],
    loader: tuple[AsyncClient, Principal],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    rebuilt_between: bool,
) -> None:
    _http, principal = loader
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(_lines(province, seed=5)) + "\n")
    source = Source.of(path)
    whole = await _import(app, principal, source, chunk_size=40)
    in_one_go = await _snapshot(app)
    rejects_in_one_go = source.rejects.read_bytes()
    await _forget_dossiers(app)
    source.rejects.unlink()

    class Killed(Exception):
        pass

    def killed_after_first_chunk(progress: FileProgress) -> None:
        raise Killed  # between two chunks read: the first is staged, committed with its checkpoint

    with pytest.raises(Killed):
        await _import(app, principal, source, chunk_size=40, on_progress=killed_after_first_chunk)
    assert await _checkpoint_of(app, source) == (40, False, None)

    real_bump = bump_version
    calls = 0

    async def killed_in_third_chunk(session: AsyncSession) -> None:
        nonlocal calls
        calls += 1
        if calls == 2:  # the second fold: its dossiers and rejects are written, its commit never comes
            raise Killed
        await real_bump(session)

    monkeypatch.setattr("app.dossiers.bulk.bump_version", killed_in_third_chunk)
    with pytest.raises(Killed):
        await _import(app, principal, source, chunk_size=40)
    monkeypatch.setattr("app.dossiers.bulk.bump_version", real_bump)
    lines_read, staged, folded_through = await _checkpoint_of(app, source)
    assert (lines_read, staged) == (whole.lines_done, True) and folded_through is not None

    if rebuilt_between:
        # `tthc stats rebuild` counts the dossiers folded so far: their staged counters must go.
        # Its own sums staged every few entries, as at millions of dossiers, and merged at the end.
        monkeypatch.setattr("app.dossiers.counters._SUMS_HELD", 5)
        async with app.state.sessionmaker() as session, session.begin():
            await rebuild_counters(session, app.state.calendar)
    rerun = await _import(app, principal, source, chunk_size=40)
    assert rerun.resumed_from == whole.lines_done and 0 < rerun.folded_lines < whole.folded_lines
    assert await _snapshot(app) == in_one_go
    assert source.rejects.read_bytes() == rejects_in_one_go
    await assert_counters_equal_a_rebuild(app)
    again = await _import(app, principal, source, chunk_size=40)
    assert (again.resumed_from, sum(again.outcomes.values())) == (whole.lines_done, 0)


async def test_an_event_id_stored_under_another_dossier_sends_the_chunk_through_the_api(
    app: FastAPI,
    province: list[list[dict[str, Any]]],
    loader: tuple[AsyncClient, Principal],
    tmp_path: Path,
) -> None:
    """The fold writes new dossiers set-based; an event id this client already used elsewhere
    makes that write clash, and the chunk is answered by the API's ingestion instead."""
    http, principal = loader
    first, second = province[0], province[1]
    # The second dossier's reception reuses the id of the first's: the API refuses it.
    clashing = [{**second[0], "event_id": first[0]["event_id"]}, *second[1:]]
    lines = [json.dumps(event) for event in clashing]
    response = await http.post(BATCH, json={"events": first + clashing})
    assert response.status_code == 200
    answers = [result["status"] for result in response.json()["results"]][len(first) :]
    through_api = await _snapshot(app)
    await _forget_dossiers(app)
    assert (await http.post(BATCH, json={"events": first})).status_code == 200

    path = tmp_path / "clash.jsonl"
    path.write_text("\n".join(lines) + "\n")
    done = await _import(app, principal, Source.of(path), chunk_size=1000)

    assert sum(done.outcomes.values()) == len(lines) and done.outcomes["error"] == answers.count("error") == 1
    rejected = [json.loads(line) for line in Source.of(path).rejects.read_text().splitlines()]
    assert [(entry["line"], entry["problem"]["errors"][0]["type"]) for entry in rejected] == [
        (1, "event_id_reused")
    ]
    assert await _snapshot(app) == through_api
    await assert_counters_equal_a_rebuild(app)


async def test_an_event_id_under_two_dossiers_of_the_file_is_decided_in_file_order(
    app: FastAPI,
    province: list[list[dict[str, Any]]],
    loader: tuple[AsyncClient, Principal],
    tmp_path: Path,
) -> None:
    """The later dossier code comes first in the file with the id; the API keeps it there and
    refuses the earlier code's correction. Folding in code order must not reverse that. The file
    also starts with a byte-order mark, on a line that goes through the API's ingestion."""
    http, principal = loader
    earlier, later = province[0], province[1]
    assert earlier[0]["dossier_code"] < later[0]["dossier_code"]
    events = [
        {**later[0], "event_id": "shared"},
        *later[1:],
        *(event for history in province[2:12] for event in history),
        {**earlier[0], "event_id": "shared", "revision": 2},
        *earlier[1:],
    ]
    response = await http.post(BATCH, json={"events": events})
    assert response.status_code == 200
    refused = [n + 1 for n, r in enumerate(response.json()["results"]) if r["status"] == "error"]
    through_api = await _snapshot(app)
    await _forget_dossiers(app)

    path = tmp_path / "entangled.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + "\n".join(json.dumps(event) for event in events).encode() + b"\n")
    done = await _import(app, principal, Source.of(path), chunk_size=1)  # a dossier per fold

    assert sum(done.outcomes.values()) == len(events)
    rejected = [json.loads(line)["line"] for line in Source.of(path).rejects.read_text().splitlines()]
    assert sorted(rejected) == refused and len(refused) == 1
    assert await _snapshot(app) == through_api
    await assert_counters_equal_a_rebuild(app)
