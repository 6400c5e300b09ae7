"""`tthc dossiers import`: one faulty line fails itself only, whatever is wrong with it — not JSON,
nested 100,000 deep, a gzipped line of gigabytes, a lone surrogate, JSON that is not an object —
reported in the rejects file with its problem, while the rest of the file loads; and a rerun goes
past it."""

import gzip
import json
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from httpx import AsyncClient
from sqlalchemy import select

from app.core.errors import InvalidInput
from app.core.security import Principal
from app.dossiers.bulk import (
    MAX_LINE_BYTES,
    FileProgress,
    Grouping,
    Source,
    _chunks,
    _every,
    _left_chunks,
    _open,
    _parsed,
    detect_kind,
    grouped_cuts,
)
from app.dossiers.models import Dossier
from bench import dossier_data
from bench.ingestion import portal_record
from tests.conftest import assert_counters_equal_a_rebuild
from tests.dossiers.test_bulk_import import _checkpoint_of, _forget_dossiers, _import, _snapshot

BATCH = "/api/v1/dossier-events/batch"
SYNC = "/api/v1/sync/dvcqg"
DEEP = 100_000
HUGE = 64 << 20
"""A line that decompresses to 64 MiB: gzipped, a few dozen KB."""


@pytest.fixture
def province(bench_procedures: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    return list(dossier_data.dossier_events(24, bench_procedures, seed=11))


class Killed(Exception):
    pass


def _killed_after_first_chunk(progress: FileProgress) -> None:
    raise Killed  # the first chunk is committed with its checkpoint; the rest is for the rerun


def _rejected(source: Source) -> dict[int, Any]:
    """The rejects file: each rejected line's problem by its number (a line rejected twice fails)."""
    entries = [json.loads(line) for line in source.rejects.read_text().splitlines()]
    found = {entry["line"]: entry["problem"] for entry in entries}
    assert len(found) == len(entries), entries
    return found


def _fields(problem: dict[str, Any]) -> list[str]:
    return [error["field"] for error in problem.get("errors", [])]


def _assert_rejected(source: Source, expected: dict[int, str]) -> dict[int, Any]:
    """Exactly the expected lines rejected, each problem naming why (a field or the detail)."""
    rejected = _rejected(source)
    assert sorted(rejected) == sorted(expected)
    for number, why in expected.items():
        problem = rejected[number]
        assert why in (_fields(problem) if problem.get("errors") else problem["detail"]), (number, problem)
    return rejected


async def _codes(app: FastAPI) -> set[str]:
    async with app.state.sessionmaker() as session:
        return set(await session.scalars(select(Dossier.code)))


def _deep_array() -> str:
    return "[" * DEEP + "]" * DEEP


def _deep_object() -> str:
    return '{"a":' * DEEP + "1" + "}" * DEEP


def _write_gzip(path: Path, lines: list[str | int]) -> None:
    """The lines gzipped, the last without a line break; an int is a line of that many bytes (an
    event with a string that long), written in pieces and never held whole."""
    with gzip.open(path, "wb", compresslevel=1) as out:
        for number, line in enumerate(lines, start=1):
            if number > 1:
                out.write(b"\n")
            if isinstance(line, str):
                out.write(line.encode())
                continue
            head = b'{"event_id": "huge", "note": "'
            out.write(head)
            left = line - len(head) - 2
            while left > 0:
                out.write(b"x" * min(left, 1 << 20))
                left -= 1 << 20
            out.write(b'"}')


async def test_lines_that_are_no_event_fail_alone_and_a_rerun_goes_past_them(
    app: FastAPI, province: list[list[dict[str, Any]]], loader: tuple[AsyncClient, Principal], tmp_path: Path
) -> None:
    """Not JSON, nested 100,000 deep (an array, the first line, and an object), a lone surrogate
    escape in `dossier_code` or `event_id`, JSON that is not an object, an instant that leaves the
    calendar in UTC: each is its line's reject,
    with why; the good events give what the API gives them; a load killed after its first chunk
    finishes on rerun, and a third run does nothing."""
    http, principal = loader
    good = [event for history in province for event in history]
    assert (await http.post(BATCH, json={"events": good})).status_code == 200
    through_api = await _snapshot(app)
    await _forget_dossiers(app)

    sample = province[0][0]
    faulty: list[tuple[str, str]] = [
        (_deep_array(), "nests deeper than 32 levels"),
        ("{not json", "not JSON"),
        (_deep_object(), "nests deeper than 32 levels"),
        ("[" * 900 + "]" * 900, "nests deeper than 32 levels"),  # one json.loads would parse
        ("5", "not a JSON object but a number"),
        ("[]", "not a JSON object but an array"),
        ("null", "not a JSON object but null"),
        ('"an event"', "not a JSON object but a string"),
        (json.dumps({**sample, "event_id": "surrogate-code", "dossier_code": "\ud800"}), "dossier_code"),
        (json.dumps({**sample, "event_id": "\ud800"}), "event_id"),
        (json.dumps({**sample, "event_id": "bad-\udfff-id"}), "event_id"),
        # Instants that leave datetime's calendar in UTC (an OverflowError stopped the load).
        (
            json.dumps({**sample, "event_id": "day-one", "occurred_at": "0001-01-01T00:00:00+07:00"}),
            "occurred_at",
        ),
        (
            json.dumps({**sample, "event_id": "last-day", "occurred_at": "9999-12-31T23:00:00-07:00"}),
            "occurred_at",
        ),
    ]
    assert "\\ud800" in faulty[8][0]  # the escape as a portal would send it, not UTF-8
    lines = [faulty[0][0]]  # detect_kind decides by the next line
    expected: dict[int, str] = {1: faulty[0][1]}
    spread = len(good) // (len(faulty) - 1)
    for index, event in enumerate(good):
        lines.append(json.dumps(event))
        if index % spread == spread - 1 and len(expected) < len(faulty):
            line, why = faulty[len(expected)]
            lines.append(line)
            expected[len(lines)] = why
    assert len(expected) == len(faulty)
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(lines) + "\n")
    source = Source.of(path)
    assert source.kind == "events"

    with pytest.raises(Killed):
        await _import(app, principal, source, chunk_size=16, on_progress=_killed_after_first_chunk)
    assert (await _checkpoint_of(app, source))[0] == 16
    done = await _import(app, principal, source, chunk_size=16)

    assert (done.resumed_from, done.lines_done) == (16, len(lines))
    _assert_rejected(source, expected)
    assert await _snapshot(app) == through_api
    await assert_counters_equal_a_rebuild(app)
    kept = source.rejects.read_bytes()
    again = await _import(app, principal, source, chunk_size=16)
    assert sum(again.outcomes.values()) == 0
    assert source.rejects.read_bytes() == kept
    assert await _snapshot(app) == through_api


async def test_a_gzipped_line_of_64_mib_fails_alone_and_is_never_held(
    app: FastAPI, province: list[list[dict[str, Any]]], loader: tuple[AsyncClient, Principal], tmp_path: Path
) -> None:
    """A line longer than MAX_LINE_BYTES is rejected as such, read and dropped in bounded pieces:
    the load's memory stays far below the line's size. A line of exactly MAX_LINE_BYTES (an event
    padded with spaces) is read; the lines after the long ones keep their numbers, on a rerun too,
    which skips the long line it already counted. The last line has no line break."""
    _http, principal = loader
    events = [json.dumps(event) for history in province[:8] for event in history]
    padded = events[1] + " " * (MAX_LINE_BYTES - len(events[1]))
    lines: list[str | int] = [*events[:3], HUGE, padded, MAX_LINE_BYTES + 1, *events[3:], HUGE]
    path = tmp_path / "events.jsonl.gz"
    _write_gzip(path, lines)
    assert path.stat().st_size < 1 << 20
    source = Source.of(path)
    assert source.kind == "events"

    tracemalloc.start()
    try:
        with pytest.raises(Killed):
            await _import(app, principal, source, chunk_size=5, on_progress=_killed_after_first_chunk)
        assert (await _checkpoint_of(app, source))[0] == 5
        done = await _import(app, principal, source, chunk_size=5)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 * MAX_LINE_BYTES <= HUGE // 8, peak  # a few lines of 1 MiB at most, never one of 64

    assert (done.resumed_from, done.lines_done) == (5, len(lines))
    rejected = _rejected(source)
    too_long = [number for number, line in enumerate(lines, start=1) if line in (HUGE, MAX_LINE_BYTES + 1)]
    assert too_long == [4, 6, len(lines)]
    assert sorted(rejected) == too_long  # the padded line 5 is read: a duplicate of line 2, no reject
    for number in too_long:
        assert rejected[number] == {"detail": f"line longer than {MAX_LINE_BYTES} bytes"}
    # The rerun read lines 6 on (line 4 was the killed run's reject) and folded every staged line.
    assert (done.outcomes["error"], done.outcomes["duplicate"]) == (2, 1)
    assert await _codes(app) == {history[0]["dossier_code"] for history in province[:8]}
    await assert_counters_equal_a_rebuild(app)
    again = await _import(app, principal, source, chunk_size=5)
    assert sum(again.outcomes.values()) == 0 and _rejected(source) == rejected


async def test_faulty_records_fail_alone(
    app: FastAPI, province: list[list[dict[str, Any]]], loader: tuple[AsyncClient, Principal], tmp_path: Path
) -> None:
    """A file of DongBoHoSoMC records: a lone surrogate in `MaHoSo`, nesting, a line too long, JSON
    that is not an object are each their line's reject. `MucDo: ""` means absent (SPEC §4): an
    online record takes its procedure's level, or, when the procedure offers no online service,
    is its own reject naming MucDo. The rest load as the API loads them."""
    http, principal = loader
    records = [portal_record(history) for history in province]
    online = [n for n, record in enumerate(records) if record["KenhThucHien"] == 2]
    assert len(online) >= 2
    loose, offline = online[0], online[1]
    records[loose]["MucDo"] = ""
    records[offline] = {**records[offline], "MucDo": "", "MaTTHC": "9.999999"}
    response = await http.post(SYNC, json={"service": "DongBoHoSoMC", "isUpdating": False, "data": records})
    assert response.status_code == 200
    answers = response.json()["results"]
    assert answers[loose]["status"] == "created"
    assert answers[offline]["status"] == "error" and _fields(answers[offline]["problem"]) == ["MucDo"]
    through_api = await _snapshot(app)
    await _forget_dossiers(app)

    faulty: list[tuple[str, str]] = [
        (json.dumps({**records[2], "MaHoSo": "\ud800"}), "MaHoSo"),
        (_deep_object(), "nests deeper than 32 levels"),
        ("null", "not a JSON object but null"),
        ('[{"MaHoSo": "X"}]', "not a JSON object but an array"),
        (json.dumps({**records[3], "pad": "x" * MAX_LINE_BYTES}), f"line longer than {MAX_LINE_BYTES} bytes"),
        ("{", "not JSON"),
    ]
    lines: list[str] = []
    expected: dict[int, str] = {}
    for index, record in enumerate(records):
        lines.append(json.dumps(record))
        if index == offline:
            expected[len(lines)] = "MucDo"
        if index % 3 == 0 and index // 3 < len(faulty):
            lines.append(faulty[index // 3][0])
            expected[len(lines)] = faulty[index // 3][1]
    path = tmp_path / "records.jsonl"
    path.write_text("\n".join(lines) + "\n")
    source = Source.of(path)
    done = await _import(app, principal, source, chunk_size=7)

    assert (done.kind, done.lines_done) == ("records", len(lines))
    assert (done.outcomes["created"], done.outcomes["error"]) == (len(records) - 1, len(expected))
    rejected = _assert_rejected(source, expected)
    assert await _snapshot(app) == through_api
    await assert_counters_equal_a_rebuild(app)
    again = await _import(app, principal, source, chunk_size=7)
    assert sum(again.outcomes.values()) == 0 and _rejected(source) == rejected


# --- The reader alone ------------------------------------------------------------------------------


def _read(path: Path, skip: int = 0) -> Iterator[tuple[int, bytes]]:
    raw, lines = _open(path)
    with raw:
        for chunk in _chunks(lines, skip, _every(3, skip)):
            yield from chunk


def test_lines_are_read_up_to_max_line_bytes_and_numbered_past_longer_ones(tmp_path: Path) -> None:
    event = b'{"event_id": "e"}'
    exact = event + b" " * (MAX_LINE_BYTES - len(event))
    path = tmp_path / "lines.jsonl"
    path.write_bytes(
        b"\n".join(
            [exact, exact + b" ", b"", exact + b"\r", b"x" * (3 * MAX_LINE_BYTES), event, exact + b"  "]
        )
    )
    read = list(_read(path))
    assert [number for number, _ in read] == [1, 2, 3, 4, 5, 6, 7]
    assert read[0][1] == exact + b"\n" and read[5][1] == event + b"\n"
    numbers, values, broken = _parsed(read)
    assert numbers == [1, 6] and values == [{"event_id": "e"}] * 2
    too_long = f"line longer than {MAX_LINE_BYTES} bytes"
    assert broken == {2: too_long, 4: too_long, 5: too_long, 7: too_long}
    # A rerun skips what its checkpoint counted, the long lines among them, and numbers on from there.
    assert [number for number, _ in _read(path, skip=4)] == [5, 6, 7]
    assert _parsed(list(_read(path, skip=4)))[0] == [6]


def test_a_gzipped_line_of_64_mib_is_read_in_bounded_memory(tmp_path: Path) -> None:
    path = tmp_path / "huge.jsonl.gz"
    _write_gzip(path, ['{"event_id": "a"}', HUGE, '{"event_id": "b"}'])
    tracemalloc.start()
    try:
        read = list(_read(path))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * MAX_LINE_BYTES, peak
    numbers, values, broken = _parsed(read)
    assert (numbers, values) == ([1, 3], [{"event_id": "a"}, {"event_id": "b"}])
    assert broken == {2: f"line longer than {MAX_LINE_BYTES} bytes"}


@pytest.mark.parametrize(
    "first",
    [_deep_array(), _deep_object(), "{not json", "null", "[]", '{"neither": 1}', "x" * (MAX_LINE_BYTES + 1)],
    ids=["deep-array", "deep-object", "not-json", "null", "array", "neither", "too-long"],
)
def test_the_kind_is_that_of_the_first_line_naming_one(tmp_path: Path, first: str) -> None:
    path = tmp_path / "file.jsonl"
    path.write_text(f"{first}\n\n" + '{"MaHoSo": "A"}\n{"event_id": "e"}\n')
    assert detect_kind(path) == "records"


def test_a_file_whose_first_100_lines_name_no_kind_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "file.jsonl"
    path.write_text('{"neither": 1}\n{not json\n\n' * 50 + '{"event_id": "e"}\n')
    with pytest.raises(InvalidInput, match=r"neither .* in its first 100 lines"):
        detect_kind(path)
    path.write_text('{"neither": 1}\n{not json\n\n' * 49 + '{"event_id": "e"}\n')
    assert detect_kind(path) == "events"


def _coded(path: Path, lines: list[str]) -> Path:
    """A file of these lines: a code stands for an event of that dossier; other lines as they are."""
    path.write_text(
        "".join((json.dumps({"dossier_code": line}) if line.isalnum() else line) + "\n" for line in lines)
    )
    return path


def test_a_grouped_file_is_cut_into_chunks_of_whole_dossiers(tmp_path: Path) -> None:
    path = _coded(tmp_path / "grouped.jsonl", ["A", "A", "B", "B", "B", "C", "", "{not json", "D"])
    # About 2 lines a chunk, never inside a dossier; a line with no code goes with the lines before.
    assert grouped_cuts(path, 0, 2) == Grouping([2, 5, 8, 9], [])
    # A rerun after line 5 (a cut) counts its chunks from there.
    assert grouped_cuts(path, 5, 2) == Grouping([8, 9], [])
    raw, lines = _open(path)
    with raw:
        chunks = [[number for number, _ in chunk] for chunk in _chunks(lines, 5, [8, 9])]
    assert chunks == [[6, 7, 8], [9]]
    # A dossier longer than a chunk stays whole.
    assert grouped_cuts(_coded(tmp_path / "long.jsonl", ["A"] * 5 + ["B"]), 0, 2) == Grouping([5, 6], [])


def test_a_dossier_with_an_event_id_of_an_earlier_one_is_left_for_last(tmp_path: Path) -> None:
    """Whatever part of a load in parts comes first, the earlier dossier keeps a shared id: the
    later ones are taken at the end, in file order. A revision within a dossier shares nothing."""
    path = tmp_path / "shared.jsonl"
    lines = [("A", "a1"), ("A", "a1"), ("B", "b1"), ("C", "x"), ("C", "a1"), (None, None), ("C", "c1")]
    lines += [("D", "d1"), ("E", "x"), ("F", "f1"), ("G", "b1")]
    path.write_text(
        "".join(
            (json.dumps({"dossier_code": code, "event_id": event_id}) if code else "{not json") + "\n"
            for code, event_id in lines
        )
    )
    grouping = grouped_cuts(path, 0, 3)
    assert grouping == Grouping([3, 7, 10, 11], [(4, 7, "C"), (9, 9, "E"), (11, 11, "G")])
    raw, read = _open(path)
    with raw:
        chunks = [
            [number for number, _ in grouping.outside(chunk)] for chunk in _chunks(read, 0, grouping.cuts)
        ]
    assert chunks == [[1, 2, 3], [], [8, 10], []]
    assert [number for number in range(1, 12) if grouping.is_left(number)] == [4, 5, 6, 7, 9, 11]
    # Taken at the end in chunks of whole dossiers, each with its last code; a rerun after "C".
    left = [(code, [number for number, _ in chunk]) for code, chunk in _left_chunks(path, grouping, None, 2)]
    assert left == [("C", [4, 5, 6, 7]), ("G", [9, 11])]
    left = [(code, [number for number, _ in chunk]) for code, chunk in _left_chunks(path, grouping, "C", 2)]
    assert left == [("G", [9, 11])]


@pytest.mark.parametrize(
    "lines",
    [
        ["A", "B", "A"],  # a dossier's lines apart
        ["B", "A"],  # in order, but not the codes' order
        ["A", json.dumps({"dossier_code": "0"}), "B"],  # a code going back, even one the API refuses
    ],
)
def test_a_file_whose_codes_go_back_is_not_grouped(tmp_path: Path, lines: list[str]) -> None:
    assert grouped_cuts(_coded(tmp_path / "scattered.jsonl", lines), 0, 2) is None
