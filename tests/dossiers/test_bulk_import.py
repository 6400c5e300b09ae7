"""`tthc dossiers import`: files of events or records give what the API gives for the same lines,
and a load killed at any point finishes on rerun with nothing lost or doubled."""

import asyncio
import gzip
import json
import os
import random
import signal
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from fastapi import FastAPI
from httpx import AsyncClient
from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.data_version import bump_version
from app.core.errors import Conflict
from app.core.security import Principal
from app.dossiers import bulk
from app.dossiers.bulk import FileProgress, Source, _requests, grouped_cuts, import_file
from app.dossiers.counters import (
    COUNTERS,
    DossierCounter,
    StagedCounter,
    merge_staged_counters,
    merge_staged_counters_of,
    rebuild_counters,
)
from app.dossiers.dvcqg import MAX_RECORDS, history_parts
from app.dossiers.ingestion import events as events_module
from app.dossiers.ingestion.records import MAX_HISTORY_PARTS, MAX_SAME_DOSSIER
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


def _grouped_lines(histories: list[list[dict[str, Any]]], seed: int) -> list[str]:
    """Every dossier's events together, the dossiers in code order (as an export sorted by dossier
    writes them); within a dossier shuffled, some sent twice; a line that is not JSON and an
    invalid event among them."""
    rng = random.Random(seed)
    events = []
    for history in sorted(histories, key=lambda history: history[0]["dossier_code"]):
        mine = history + rng.sample(history, min(len(history), rng.randint(0, 1)))
        rng.shuffle(mine)
        events += mine
    lines = [json.dumps(event) for event in events]
    lines.insert(17, "{not json")
    lines.insert(40, json.dumps({**events[39], "event_id": "bad-1", "occurred_at": "yesterday"}))
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


class Killed(Exception):
    """The process dies here."""


def _killed_at_commit(monkeypatch: pytest.MonkeyPatch, number: int, *, hard: bool = False) -> None:
    """The load dies in its ``number``-th committing transaction (a chunk's): its dossiers and
    rejects are written, its commit never comes. ``hard``: its process is killed (SIGKILL), for
    a part's process only."""
    calls = 0

    async def bump_then_die(session: AsyncSession) -> None:
        nonlocal calls
        calls += 1
        if calls == number and hard:
            os.kill(os.getpid(), signal.SIGKILL)
        if calls == number:
            raise Killed
        await bump_version(session)

    monkeypatch.setattr("app.dossiers.bulk.bump_version", bump_then_die)


@pytest.fixture
def in_parts(database_url: str) -> bool:
    """Whether ``jobs`` loads a file in parts here: on PostgreSQL (SQLite loads in one go)."""
    return database_url.startswith("postgresql")


async def _dies_in_three_parts(
    app: FastAPI,
    principal: Principal,
    source: Source,
    monkeypatch: pytest.MonkeyPatch,
    in_parts: bool,
    *,
    at_commit: int,
    chunk_size: int,
    hard: bool = False,
) -> BaseException:
    """The load with ``jobs=3`` dying at each process's ``at_commit``-th commit
    (``_killed_at_commit``; ``hard``, in parts only): the load fails, in parts with the parts'
    failures; what it raised. The commits are left as they were."""
    _killed_at_commit(monkeypatch, at_commit, hard=hard and in_parts)
    with pytest.raises(RuntimeError if in_parts else Killed) as died:
        await _import(app, principal, source, chunk_size=chunk_size, jobs=3)
    monkeypatch.setattr(bulk, "bump_version", bump_version)
    return died.value


async def _in_one_go(app: FastAPI, principal: Principal, source: Source) -> tuple[FileProgress, Any, bytes]:
    """The file loaded in one go (chunks of 40): its progress, the database and the rejects it
    made; then the database and the rejects emptied for the same file again."""
    whole = await _import(app, principal, source, chunk_size=40)
    made, rejects = await _snapshot(app), source.rejects.read_bytes()
    await _forget_dossiers(app)
    source.rejects.unlink()
    return whole, made, rejects


async def _assert_as_in_one_go(
    app: FastAPI, principal: Principal, source: Source, whole: FileProgress, made: Any, rejects: bytes
) -> None:
    """A resumed load ended as the load in one go did (``_in_one_go``): the same database,
    rejects byte for byte and counters a rebuild agrees with; a further rerun finds nothing to do."""
    assert await _snapshot(app) == made
    assert source.rejects.read_bytes() == rejects
    await assert_counters_equal_a_rebuild(app)
    again = await _import(app, principal, source, chunk_size=40)
    assert (again.resumed_from, sum(again.outcomes.values())) == (whole.lines_done, 0)


async def _api_made(app: FastAPI, http: AsyncClient, lines: list[str]) -> Any:
    """What the API makes of the same items in batches of 100 (a line that is not JSON as an empty
    event: refused too); then the database emptied for the file."""
    items = [json.loads(line) if line != "{not json" else {} for line in lines]
    for start in range(0, len(items), 100):
        response = await http.post(BATCH, json={"events": items[start : start + 100]})
        assert response.status_code == 200, response.text
    made = await _snapshot(app)
    await _forget_dossiers(app)
    return made


async def test_a_file_of_events_gives_what_the_api_gives(
    app: FastAPI, province: list[list[dict[str, Any]]], loader: tuple[AsyncClient, Principal], tmp_path: Path
) -> None:
    http, principal = loader
    lines = _lines(province, seed=3)
    through_api = await _api_made(app, http, lines)

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


async def test_a_grouped_file_is_folded_as_read_and_gives_what_the_api_gives(
    app: FastAPI,
    province: list[list[dict[str, Any]]],
    loader: tuple[AsyncClient, Principal],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    http, principal = loader
    lines = _grouped_lines(province, seed=4)
    through_api = await _api_made(app, http, lines)

    async def never_staged(*args: Any) -> None:
        raise AssertionError("a grouped file is folded as read, nothing staged")

    monkeypatch.setattr("app.dossiers.bulk._stage", never_staged)
    path = tmp_path / "grouped.jsonl"
    path.write_text("\n".join(lines) + "\n")
    phases: set[str] = set()
    source = Source.of(path)
    done = await _import(app, principal, source, chunk_size=30, on_progress=lambda p: phases.add(p.phase))

    assert phases == {"loading"} and done.lines_done == len(lines)
    assert done.outcomes["duplicate"] >= 1 and done.outcomes["error"] == 2
    rejected = [json.loads(line)["line"] for line in source.rejects.read_text().splitlines()]
    assert rejected == [18, 41]
    assert await _snapshot(app) == through_api
    await assert_counters_equal_a_rebuild(app)


async def test_a_grouped_file_meets_dossiers_the_database_knows(
    app: FastAPI, province: list[list[dict[str, Any]]], loader: tuple[AsyncClient, Principal], tmp_path: Path
) -> None:
    """Dossiers of a chunk that the API already has — one received, one only as an event waiting
    for its reception (no dossier row) — are found by their codes and go through the API's
    ingestion; the others are folded. The database is the API's for the same lines."""
    http, principal = loader
    ordered = sorted(province, key=lambda history: history[0]["dossier_code"])
    received, waiting = ordered[3], ordered[5]
    assert len(waiting) > 1
    sent_before = [*received, waiting[-1]]
    events = [event for history in ordered for event in history if event not in sent_before]
    lines = [json.dumps(event) for event in events]
    assert (await http.post(BATCH, json={"events": sent_before})).status_code == 200
    for start in range(0, len(events), 100):
        assert (await http.post(BATCH, json={"events": events[start : start + 100]})).status_code == 200
    through_api = await _snapshot(app)
    await _forget_dossiers(app)

    assert (await http.post(BATCH, json={"events": sent_before})).status_code == 200
    path = tmp_path / "grouped-known.jsonl"
    path.write_text("\n".join(lines) + "\n")
    done = await _import(app, principal, Source.of(path), chunk_size=25)

    assert done.lines_done == len(lines) and done.outcomes["error"] == 0
    assert await _snapshot(app) == through_api
    await assert_counters_equal_a_rebuild(app)


def _grouped_file(histories: list[list[dict[str, Any]]], folder: Path, seed: int) -> tuple[Source, list[int]]:
    """A grouped file of the histories (``_grouped_lines``) and its cuts in chunks of 40 lines."""
    path = folder / "grouped.jsonl"
    path.write_text("\n".join(_grouped_lines(histories, seed)) + "\n")
    grouping = grouped_cuts(path, 0, 40)
    assert grouping is not None
    return Source.of(path), grouping.cuts


async def test_a_killed_grouped_load_finishes_on_rerun_with_nothing_lost_or_doubled(
    app: FastAPI,
    province: list[list[dict[str, Any]]],
    loader: tuple[AsyncClient, Principal],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _http, principal = loader
    source, cuts = _grouped_file(province, tmp_path, seed=6)
    whole, in_one_go, rejects_in_one_go = await _in_one_go(app, principal, source)
    assert len(cuts) > 3

    _killed_at_commit(monkeypatch, 3)
    with pytest.raises(Killed):
        await _import(app, principal, source, chunk_size=40)
    monkeypatch.setattr("app.dossiers.bulk.bump_version", bump_version)
    assert await _checkpoint_of(app, source) == (cuts[1], False, None)

    # Another chunk size on the rerun: it cuts from the checkpoint on.
    rerun = await _import(app, principal, source, chunk_size=25)
    assert rerun.resumed_from == cuts[1] and rerun.lines_done == whole.lines_done
    await _assert_as_in_one_go(app, principal, source, whole, in_one_go, rejects_in_one_go)


@pytest.mark.parametrize("hard", [False, True], ids=["raises", "killed"])
async def test_a_grouped_file_in_parts_ends_as_in_one_go_even_when_a_part_dies(
    app: FastAPI,
    in_parts: bool,
    province: list[list[dict[str, Any]]],
    loader: tuple[AsyncClient, Principal],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    hard: bool,
) -> None:
    """``jobs``: on PostgreSQL the file is loaded in three parts, each a process (forked: each dies
    in its second chunk's transaction, as patched here before the fork: an exception, or killed
    with SIGKILL, saying nothing). A part that dies stops the load; the rerun, with one job and
    another chunk size, keeps the parts, and each goes on from its checkpoint: the load ends as
    the load in one go. On SQLite the file is loaded in one go (killed by the exception)."""
    _http, principal = loader
    source, cuts = _grouped_file(province, tmp_path, seed=7)
    whole, in_one_go, rejects_in_one_go = await _in_one_go(app, principal, source)
    assert len(cuts) > 6

    died = await _dies_in_three_parts(
        app, principal, source, monkeypatch, in_parts, at_commit=2, chunk_size=40, hard=hard
    )
    parts = [(part.lines_done, part.last_line or 0) for part in await _parts_of(app, source)]
    if in_parts:
        # A part that died stops the others after their chunk under way: some may stop so before
        # their own death, the others die too.
        why = "exit status -9" if hard else "test_bulk_import.Killed"
        assert str(died).count(why) >= 1
        # Each part committed its first chunk: it stands one chunk past where it began.
        begins = [0, *(last for _, last in parts[:-1])]
        assert len(parts) == 3 and parts[-1][1] == whole.lines_done
        assert all(begin < done < last for (done, last), begin in zip(parts, begins, strict=True))
        assert all(done in cuts for done, _ in parts)
    else:
        assert parts == []

    rerun = await _import(app, principal, source, chunk_size=25, jobs=1)
    assert rerun.lines_done == whole.lines_done
    await _assert_as_in_one_go(app, principal, source, whole, in_one_go, rejects_in_one_go)
    assert [path.name for path in os.scandir(tmp_path) if ".part" in path.name] == []


@pytest.mark.parametrize("order", ["grouped", "scattered"])
async def test_a_file_in_parts_makes_what_the_load_in_one_go_makes(
    app: FastAPI,
    province: list[list[dict[str, Any]]],
    loader: tuple[AsyncClient, Principal],
    tmp_path: Path,
    order: str,
) -> None:
    """The same dossiers, events, counters, outcomes and rejects, byte for byte, in one go and in
    three parts with another chunk size (on PostgreSQL; SQLite loads in one go). The scattered
    file ends with two event ids used again with another payload, the later dossier's first: a
    fold writes its rejects in dossier order, so where its chunks and parts are cut would decide
    their order, but the rejects file of a finished load is in line order."""
    _http, principal = loader
    path = tmp_path / f"{order}.jsonl"
    if order == "grouped":
        lines = _grouped_lines(province, seed=9)
    else:
        ordered = sorted(province, key=lambda history: history[0]["dossier_code"])
        reused = [{**ordered[n][0], "digitized": not ordered[n][0].get("digitized")} for n in (1, 0)]
        lines = _lines(province, seed=9) + [json.dumps(event) for event in reused]
    path.write_text("\n".join(lines) + "\n")
    source = Source.of(path)

    whole = await _import(app, principal, source, chunk_size=1)  # a dossier a chunk
    made, rejects, events = await _snapshot(app), source.rejects.read_bytes(), await _stored_events(app)
    assert whole.outcomes["error"] >= 2
    await _forget_dossiers(app)
    source.rejects.unlink()
    in_parts = await _import(app, principal, source, chunk_size=7, jobs=3)
    assert (in_parts.lines_done, in_parts.outcomes) == (whole.lines_done, whole.outcomes)
    assert (await _snapshot(app), await _stored_events(app)) == (made, events)
    assert source.rejects.read_bytes() == rejects
    rejected = [json.loads(line)["line"] for line in rejects.splitlines()]
    assert rejected == sorted(rejected)
    if order == "scattered":
        assert rejected[-2:] == [len(lines) - 1, len(lines)]
    await assert_counters_equal_a_rebuild(app)


async def _stored_events(app: FastAPI) -> dict[str, tuple[Any, ...]]:
    async with app.state.sessionmaker() as session:
        rows = await session.execute(
            select(
                DossierEvent.event_id,
                DossierEvent.dossier_code,
                DossierEvent.revision,
                DossierEvent.status,
                DossierEvent.payload_hash,
            )
        )
        return {row[0]: tuple(row[1:]) for row in rows}


@pytest.mark.parametrize("jobs", [1, 3])
async def test_an_event_id_under_two_dossiers_of_a_grouped_file_is_decided_in_file_order(
    app: FastAPI,
    province: list[list[dict[str, Any]]],
    loader: tuple[AsyncClient, Principal],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    jobs: int,
) -> None:
    """In a grouped file the dossier that comes first keeps an id two dossiers carry, as the API
    keeps it for the line it takes first: here the two are chunks apart, and within one chunk.
    The later ones are left for last (``Grouping.left_for_last``). With three jobs on PostgreSQL
    the first and the far one are in the first and the last part, and the first part is held back
    a second: without that rule the far one, folded first, would keep the id."""
    http, principal = loader
    ordered = sorted(province, key=lambda history: history[0]["dossier_code"])
    first, near, far = ordered[0], ordered[1], ordered[-1]
    events = [
        {**first[0], "event_id": "shared"},
        *first[1:],
        {**near[0], "event_id": "shared"},
        *near[1:],
        *(event for history in ordered[2:-1] for event in history),
        {**far[-1], "event_id": "shared"},
        *far[:-1],
    ]
    through_api = await _api_made(app, http, [json.dumps(event) for event in events])
    path = tmp_path / "grouped-entangled.jsonl"
    path.write_text("\n".join(json.dumps(event) for event in events) + "\n")
    assert grouped_cuts(path, 0, 20) is not None
    load_chunks = bulk._Load.load_chunks

    async def first_part_late(load: bulk._Load, *args: Any) -> None:
        if load.point.identity.endswith("#0"):
            await asyncio.sleep(1)
        await load_chunks(load, *args)

    monkeypatch.setattr(bulk._Load, "load_chunks", first_part_late)
    done = await _import(app, principal, Source.of(path), chunk_size=20, jobs=jobs)

    rejected = [json.loads(line)["line"] for line in Source.of(path).rejects.read_text().splitlines()]
    assert rejected == [len(first) + 1, len(events) - len(far) + 1] and done.outcomes["error"] == 2
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


async def test_a_transaction_the_database_rolls_back_to_break_a_deadlock_is_replayed(app: FastAPI) -> None:
    """Parts of a load take counter rows of the same units: PostgreSQL may end one's transaction to
    break a deadlock (raised by SQLAlchemy, or by asyncpg itself for a statement sent raw). The
    chunk is replayed from its start in a new transaction; any other error is the load's."""
    attempts: list[bool] = []

    async def deadlocked_once() -> str:
        attempts.append(session.in_transaction())
        await session.execute(select(func.count()).select_from(DossierEvent))
        if len(attempts) == 1:
            raise asyncpg.exceptions.DeadlockDetectedError("deadlock detected")
        return "done"

    async with app.state.sessionmaker() as session:
        assert await bulk._replayed(session, deadlocked_once) == "done"
        assert attempts == [False, False]  # the second began anew: the first was rolled back

        async def broken() -> None:
            raise asyncpg.exceptions.UniqueViolationError("not a deadlock")

        with pytest.raises(asyncpg.exceptions.UniqueViolationError):
            await bulk._replayed(session, broken)

        # As SQLAlchemy raises it for a statement of the session.
        attempts.clear()

        async def wrapped_once() -> str:
            attempts.append(session.in_transaction())
            if len(attempts) == 1:
                cause = asyncpg.exceptions.DeadlockDetectedError("deadlock detected")
                raise OperationalError("UPDATE dossier_counters …", {}, cause)
            return "done"

        assert await bulk._replayed(session, wrapped_once) == "done" and len(attempts) == 2


async def test_a_second_load_of_a_file_beside_the_first_is_refused(
    app: FastAPI,
    in_parts: bool,
    province: list[list[dict[str, Any]]],
    loader: tuple[AsyncClient, Principal],
    tmp_path: Path,
) -> None:
    """On PostgreSQL a load holds its file (an advisory lock, by its own connection, from start
    to end): a second load of the same file meanwhile is refused at once and changes nothing —
    it would redo the first's chunks and write into its rejects file. Another file loads."""
    _http, principal = loader
    source, _cuts = _grouped_file(province, tmp_path, seed=10)
    if not in_parts:
        # SQLite: one writer at a time; the file loads as usual.
        assert (await _import(app, principal, source)).lines_done > 0
        return
    async with app.state.sessionmaker.kw["bind"].connect() as first:
        assert await first.scalar(bulk._LOAD_LOCK, {"key": source.identity})
        with pytest.raises(Conflict, match="being loaded by another process"):
            await _import(app, principal, source)
        assert await _checkpoint_rows(app) == 0
        await first.execute(bulk._LOAD_UNLOCK, {"key": source.identity})
        await first.commit()
    assert (await _import(app, principal, source, jobs=3)).lines_done > 0


async def _checkpoint_rows(app: FastAPI) -> int:
    async with app.state.sessionmaker() as session:
        return int(await session.scalar(select(func.count()).select_from(ImportCheckpoint)) or 0)


@pytest.mark.parametrize("dies", [False, True], ids=["whole", "parts-die"])
async def test_a_records_file_in_parts_makes_what_the_load_in_one_go_makes(
    app: FastAPI,
    in_parts: bool,
    province: list[list[dict[str, Any]]],
    loader: tuple[AsyncClient, Principal],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    dies: bool,
) -> None:
    """``jobs``: on PostgreSQL a records file is loaded in three parts, each going through every
    line and loading the records of its dossiers (by the digest of ``MaHoSo``: all of a dossier's,
    in file order). Each dossier's record comes twice, far apart: as it stood halfway, then whole;
    two lines are not records. The same database, outcomes and rejects as in one go; or, the parts
    dying at their third request, a rerun with one job keeps the parts and ends the same."""
    _http, principal = loader
    halfway = [portal_record(history[: max(len(history) // 2, 1)]) for history in province]
    whole_records = [portal_record(history) for history in province]
    # A faulty record of a dossier of another part than the first's (which takes the lines that
    # name none) before them: the rejects of two parts, gathered, in line order.
    elsewhere = next(
        code for code in (f"ZZ-{n}" for n in range(99)) if bulk._share_of({"MaHoSo": code}, 3) == 2
    )
    lines = [json.dumps(record) for record in halfway]
    lines += [json.dumps({"MaHoSo": elsewhere}), "{not json", '{"MaHoSo": 5}']
    lines += [json.dumps(record) for record in whole_records]
    path = tmp_path / "records.jsonl"
    path.write_text("\n".join(lines) + "\n")
    source = Source.of(path)
    whole, in_one_go, rejects_in_one_go = await _in_one_go(app, principal, source)
    assert whole.outcomes["updated"] > 0 and whole.outcomes["error"] == 3

    if dies:
        await _dies_in_three_parts(app, principal, source, monkeypatch, in_parts, at_commit=3, chunk_size=30)
        assert len(await _parts_of(app, source)) == (3 if in_parts else 0)
        await _import(app, principal, source, chunk_size=30, jobs=1)
        await _assert_as_in_one_go(app, principal, source, whole, in_one_go, rejects_in_one_go)
        return
    done = await _import(app, principal, source, chunk_size=30, jobs=3)
    assert (done.lines_done, done.outcomes) == (whole.lines_done, whole.outcomes)
    await _assert_as_in_one_go(app, principal, source, whole, in_one_go, rejects_in_one_go)


async def test_records_past_one_requests_budget_are_sent_as_several_requests(
    app: FastAPI,
    bench_procedures: list[dict[str, Any]],
    loader: tuple[AsyncClient, Principal],
    tmp_path: Path,
) -> None:
    """A chunk of records carries more history than one request may (``MAX_HISTORY_PARTS``): the
    load sends it as several requests, each committed with its checkpoint, and refuses none."""
    _http, principal = loader
    histories = list(dossier_data.dossier_events(1_400, bench_procedures, seed=12))
    records = [portal_record(history) for history in histories]
    # A dossier's states queued by a sync: more records of one MaHoSo than one request may carry.
    records += [records[0]] * (MAX_SAME_DOSSIER + 5)
    assert sum(map(history_parts, records)) > MAX_HISTORY_PARTS
    path = tmp_path / "records.jsonl"
    path.write_text("\n".join(json.dumps(record) for record in records) + "\n")
    source = Source.of(path)
    commits: list[int] = []
    done = await _import(app, principal, source, chunk_size=5_000, on_progress=lambda p: commits.append(1))

    assert done.lines_done == len(records) and done.outcomes["error"] == 0 and not source.rejects.read_text()
    assert done.outcomes["created"] == len(histories)
    assert done.outcomes["unchanged"] == MAX_SAME_DOSSIER + 5
    async with app.state.sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(Dossier)) == len(histories)
    await assert_counters_equal_a_rebuild(app)


async def test_a_rerun_after_the_rejects_file_was_removed_writes_no_padding(
    app: FastAPI, province: list[list[dict[str, Any]]], loader: tuple[AsyncClient, Principal], tmp_path: Path
) -> None:
    _http, principal = loader
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(_lines(province, seed=8)) + "\n")
    source = Source.of(path)
    await _import(app, principal, source, chunk_size=50)
    assert source.rejects.stat().st_size > 0
    source.rejects.unlink()
    again = await _import(app, principal, source, chunk_size=50)
    assert sum(again.outcomes.values()) == 0 and source.rejects.read_bytes() == b""
    # Lines were rejected in a run of this file: its checkpoint still says so (the exit status 3).
    assert again.rejects_bytes > 0


def test_a_chunk_of_records_is_cut_into_requests_within_the_apis_bounds() -> None:
    def record(code: str, supplements: int) -> dict[str, Any]:
        return {"MaHoSo": code, "DanhSachHoSoBoSung": [{}] * supplements}

    # 4 parts each, 2 more per supplement request: 208 records of 24 parts fill one request.
    values = [record(f"A{n}", 10) for n in range(209)] + [record("B", 1), "not a record", record("B", 0)]
    numbers = list(range(10, 10 + 2 * len(values), 2))  # lines between them are blank or not JSON
    requests = _requests(9_999, numbers, values)
    assert [(end, len(request)) for end, request in requests] == [(numbers[208] - 1, 208), (9_999, 4)]
    assert [number for _, request in requests for number, _ in request] == numbers
    # At most MAX_RECORDS records a request, as the route takes them.
    small = [record(f"D{n}", 0) for n in range(MAX_RECORDS + 1)]
    assert [len(request) for _, request in _requests(5_000, list(range(1, MAX_RECORDS + 2)), small)] == [
        MAX_RECORDS,
        1,
    ]
    # A dossier's 21st record of a request starts the next one.
    same = [record("C", 0)] * (MAX_SAME_DOSSIER + 1)
    cut = _requests(100, list(range(1, MAX_SAME_DOSSIER + 2)), same)
    assert [(end, len(request)) for end, request in cut] == [(MAX_SAME_DOSSIER, MAX_SAME_DOSSIER), (100, 1)]


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
    whole, in_one_go, rejects_in_one_go = await _in_one_go(app, principal, source)

    def killed_after_first_chunk(progress: FileProgress) -> None:
        raise Killed  # between two chunks read: the first is staged, committed with its checkpoint

    with pytest.raises(Killed):
        await _import(app, principal, source, chunk_size=40, on_progress=killed_after_first_chunk)
    assert await _checkpoint_of(app, source) == (40, False, None)

    _killed_at_commit(monkeypatch, 2)  # the second fold
    with pytest.raises(Killed):
        await _import(app, principal, source, chunk_size=40)
    monkeypatch.setattr("app.dossiers.bulk.bump_version", bump_version)
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
    await _assert_as_in_one_go(app, principal, source, whole, in_one_go, rejects_in_one_go)


def _killed_at_call(monkeypatch: pytest.MonkeyPatch, name: str, number: int) -> None:
    """The load dies at its ``number``-th call of the coroutine function ``name`` (in each process
    of a load in parts: patched before they are forked)."""
    calls = 0
    original = getattr(bulk, name)

    async def call_then_die(*args: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == number:
            raise Killed
        return await original(*args)

    monkeypatch.setattr(bulk, name, call_then_die)


async def test_a_scattered_file_in_parts_ends_as_in_one_go_even_when_parts_die(
    app: FastAPI,
    in_parts: bool,
    province: list[list[dict[str, Any]]],
    loader: tuple[AsyncClient, Principal],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``jobs``: on PostgreSQL a scattered file is read and staged in three parts of its lines,
    then folded in three parts of its dossiers, each part a process. Parts that die (here each in
    its second chunk, first while reading, then while folding) stop the load; each rerun keeps
    the parts and continues each from its checkpoint, and the load ends as the load in one go. On
    SQLite it is loaded in one go, killed at the same places."""
    _http, principal = loader
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(_lines(province, seed=8)) + "\n")
    source = Source.of(path)
    whole, in_one_go, rejects_in_one_go = await _in_one_go(app, principal, source)

    stage = bulk._stage
    _killed_at_call(monkeypatch, "_stage", 2)
    with pytest.raises(RuntimeError if in_parts else Killed):
        await _import(app, principal, source, chunk_size=40, jobs=3)
    monkeypatch.setattr(bulk, "_stage", stage)
    parts = await _parts_of(app, source)
    if in_parts:
        # Each part of the lines staged its first chunk, and stands 40 lines past its beginning.
        begins = [0, *(part.last_line or 0 for part in parts[:-1])]
        assert [part.lines_done - begin for part, begin in zip(parts, begins, strict=True)] == [40] * 3
        assert parts[-1].last_line == whole.lines_done
    else:
        assert parts == [] and await _checkpoint_of(app, source) == (40, False, None)

    await _dies_in_three_parts(app, principal, source, monkeypatch, in_parts, at_commit=2, chunk_size=40)
    lines_read, staged, _ = await _checkpoint_of(app, source)
    assert (lines_read, staged) == (whole.lines_done, True)
    parts = await _parts_of(app, source)
    if in_parts:
        # The parts of the dossiers, each one chunk into its codes.
        assert len(parts) == 3 and all(part.last_line is None for part in parts)
        stood = [(part.folded_through or "", part.last_code or "") for part in parts]
        assert all("" < folded_through < last_code for folded_through, last_code in stood)

    rerun = await _import(app, principal, source, chunk_size=40, jobs=1)
    assert rerun.resumed_from == whole.lines_done
    await _assert_as_in_one_go(app, principal, source, whole, in_one_go, rejects_in_one_go)
    assert [path.name for path in os.scandir(tmp_path) if ".part" in path.name] == []


async def _parts_of(app: FastAPI, source: Source) -> list[ImportCheckpoint]:
    async with app.state.sessionmaker() as session:
        found = await session.scalars(
            select(ImportCheckpoint).where(ImportCheckpoint.part_of == source.identity)
        )
        return sorted(found, key=lambda part: part.file_identity)


@pytest.mark.parametrize("dies_in", ["a share", "the last transaction"])
async def test_a_load_killed_while_its_counters_are_merged_ends_on_rerun_as_in_one_go(
    app: FastAPI,
    in_parts: bool,
    province: list[list[dict[str, Any]]],
    loader: tuple[AsyncClient, Principal],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    dies_in: str,
) -> None:
    """On PostgreSQL, with ``jobs`` above one, a file's staged counters are merged before its last
    transaction by as many transactions at once, each for a share of the units. The load dies in
    its second share once the first has committed (the third cancelled, or committed), or in the
    last transaction after every share committed: the rerun merges what is still staged, once, and
    ends as the load in one go. On SQLite the last transaction merges them all: it has no shares."""
    _http, principal = loader
    source, _cuts = _grouped_file(province, tmp_path, seed=7)
    whole, in_one_go, rejects_in_one_go = await _in_one_go(app, principal, source)

    async def staged_rows() -> int:
        async with app.state.sessionmaker() as session:
            return int(await session.scalar(select(func.count()).select_from(StagedCounter)) or 0)

    merge_share, merge_rest = merge_staged_counters_of, merge_staged_counters
    shares = 0
    before_shares = asyncio.get_running_loop().create_future()

    async def second_share_dies_once_the_first_committed(
        session: AsyncSession, identity: str, units: list[str]
    ) -> None:
        nonlocal shares
        shares += 1
        if shares == 1:
            before_shares.set_result(await staged_rows())
            return await merge_share(session, identity, units)
        if shares == 2:
            staged_before = await before_shares
            for _ in range(400):  # the first share's commit, awaited rather than timed
                if await staged_rows() < staged_before:
                    break
                await asyncio.sleep(0.05)
            raise Killed
        return await merge_share(session, identity, units)

    async def dies(*_args: Any) -> None:
        raise Killed

    if dies_in == "a share":
        monkeypatch.setattr(bulk, "merge_staged_counters_of", second_share_dies_once_the_first_committed)
    else:
        monkeypatch.setattr(bulk, "merge_staged_counters", dies)
    if in_parts or dies_in == "the last transaction":
        with pytest.raises(Killed):
            await _import(app, principal, source, chunk_size=40, jobs=3)
        async with app.state.sessionmaker() as session:
            finished = await session.get(ImportCheckpoint, source.identity)
        assert finished is not None and not finished.finished
        left = await staged_rows()
        if dies_in == "a share":
            # The first share's rows merged and gone, the second's still staged.
            assert 0 < left < before_shares.result()
        else:
            assert (left == 0) is in_parts  # every share committed before the last transaction
        monkeypatch.setattr(bulk, "merge_staged_counters_of", merge_share)
        monkeypatch.setattr(bulk, "merge_staged_counters", merge_rest)
        rerun = await _import(app, principal, source, chunk_size=40, jobs=3)
        assert rerun.resumed_from == whole.lines_done
    else:
        await _import(app, principal, source, chunk_size=40, jobs=3)
    await _assert_as_in_one_go(app, principal, source, whole, in_one_go, rejects_in_one_go)


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


@pytest.mark.parametrize("lost_race", [False, True], ids=["alone", "a-lost-race"])
async def test_an_event_id_under_two_dossiers_of_the_file_is_decided_in_file_order(
    app: FastAPI,
    province: list[list[dict[str, Any]]],
    loader: tuple[AsyncClient, Principal],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    lost_race: bool,
) -> None:
    """The later dossier code comes first in the file with the id; the API keeps it there and
    refuses the earlier code's correction. Folding in code order must not reverse that. The file
    also starts with a byte-order mark, on a line that goes through the API's ingestion.

    ``a-lost-race``: the two dossiers' ingestion at the end of the file first loses a race on a
    unique key (as beside a live sender of the same ids): the API's ingestion rolls the
    transaction back and replays it, and the load ends the same."""
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
    lost: list[bool] = []
    if lost_race:
        judged = events_module._judged

        async def losing_once(ingestion: Ingestion, request: Any) -> Any:
            if not lost and any(item.event.event_id == "shared" for item in request.parsed):
                lost.append(True)
                await ingestion.session.flush()
                raise IntegrityError("INSERT INTO dossier_events …", {}, Exception("unique violation"))
            return await judged(ingestion, request)

        monkeypatch.setattr(events_module, "_judged", losing_once)
    done = await _import(app, principal, Source.of(path), chunk_size=1)  # a dossier per fold

    assert sum(done.outcomes.values()) == len(events)
    rejected = [json.loads(line)["line"] for line in Source.of(path).rejects.read_text().splitlines()]
    assert sorted(rejected) == refused and len(refused) == 1
    assert await _snapshot(app) == through_api
    assert lost == ([True] if lost_race else [])
    await assert_counters_equal_a_rebuild(app)
