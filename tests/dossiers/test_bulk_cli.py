"""`tthc dossiers import` as a process: its exit status (0 loaded, 3 with rejected lines, 1 failed)
and its end on SIGINT or SIGTERM — after the chunk under way, with a line saying where, and a rerun
that finishes the file as a load in one go would have; and the loader's ``stop`` under it, in each
phase of a file."""

import asyncio
import json
import os
import random
import re
import signal
import sys
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from httpx import AsyncClient
from sqlalchemy import func, select

from app.cli import _StopOnSignal
from app.core.security import Principal
from app.dossiers.bulk import FileProgress, Source, Stopped, grouped_cuts
from app.dossiers.models import DossierEvent
from bench import dossier_data
from tests.dossiers.test_bulk_import import _forget_dossiers, _import, _parts_of, _snapshot

ROOT = Path(__file__).resolve().parents[2]
CLIENT = "one-stop"  # the `loader` fixture's client
BAD_LINE = "{not json"
# A wall-clock bound on a process that hangs, not a margin any assertion depends on.
HANG = 300


def _histories(procedures: list[dict[str, Any]], dossiers: int) -> list[list[dict[str, Any]]]:
    return list(dossier_data.dossier_events(dossiers, procedures, seed=5))


def _events_file(
    path: Path, histories: list[list[dict[str, Any]]], *, bad_line: bool, scattered: bool = False
) -> int:
    """A file of the dossiers' events, one line not JSON near its start if asked; its number of
    lines. Grouped by dossier as the histories come (in code order), or shuffled if ``scattered``."""
    lines = [json.dumps(event) for history in histories for event in history]
    if scattered:
        random.Random(5).shuffle(lines)
    if bad_line:
        lines.insert(4, BAD_LINE)
    path.write_text("\n".join(lines) + "\n")
    return len(lines)


def _rejects(path: Path) -> Path:
    return path.with_name(path.name + ".rejected.jsonl")


def _rejected_lines(path: Path) -> list[int]:
    """The numbers of the lines in the file's rejects file, in its order."""
    return [json.loads(line)["line"] for line in _rejects(path).read_text().splitlines()]


async def _start(database_url: str, *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "app.cli",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=ROOT,
        env={**os.environ, "TTHC_DATABASE_URL": database_url},
        # A group of its own, as a terminal's foreground job: a signal is sent to all its processes.
        start_new_session=True,
    )


async def _finish(process: asyncio.subprocess.Process, err_so_far: bytes = b"") -> tuple[int, str, str]:
    out, err = await asyncio.wait_for(process.communicate(), HANG)
    assert process.returncode is not None
    return process.returncode, out.decode(), (err_so_far + err).decode()


async def _tthc(database_url: str, *args: str) -> tuple[int, str, str]:
    return await _finish(await _start(database_url, *args))


async def _events(app: FastAPI) -> int:
    async with app.state.sessionmaker() as session:
        return int(await session.scalar(select(func.count()).select_from(DossierEvent)) or 0)


async def test_exit_status_says_loaded_rejected_or_failed(
    app: FastAPI,
    database_url: str,
    bench_procedures: list[dict[str, Any]],
    loader: tuple[AsyncClient, Principal],
    tmp_path: Path,
) -> None:
    clean, faulty = tmp_path / "clean.jsonl", tmp_path / "faulty.jsonl"
    histories = _histories(bench_procedures, 40)  # dossier codes are numbered: one list for both
    _events_file(clean, histories[:20], bad_line=False)
    lines = _events_file(faulty, histories[20:], bad_line=True)

    status, out, err = await _tthc(database_url, "dossiers", "import", str(clean), "--client", CLIENT)
    assert status == 0, err
    assert "rejected" not in out

    status, out, err = await _tthc(database_url, "dossiers", "import", str(faulty), "--client", CLIENT)
    assert status == 3, err
    assert f"{lines:,} lines" in out and f"rejected lines in {faulty}.rejected.jsonl" in out
    assert _rejected_lines(faulty) == [5]

    # Finished files load nothing on rerun, and say the same of themselves; with several files,
    # rejected lines in any of them make it 3.
    status, out, err = await _tthc(
        database_url, "dossiers", "import", str(clean), str(faulty), "--client", CLIENT
    )
    assert status == 3, err
    assert out.count("nothing new") == 2 and out.count("rejected lines in") == 1
    assert _rejected_lines(faulty) == [5]

    status, out, err = await _tthc(database_url, "dossiers", "import", str(clean), "--client", "nobody")
    assert (status, err) == (1, "tthc: Client 'nobody' does not exist\n")


async def _read_until(process: asyncio.subprocess.Process, seen: bytes, pattern: bytes) -> bytes:
    """``seen`` and what the process writes to stderr next, up to where ``pattern`` is found."""
    assert process.stderr is not None
    while not re.search(pattern, seen):
        piece = await asyncio.wait_for(process.stderr.read(4096), HANG)
        assert piece, f"the import ended before {pattern!r}: {seen.decode()}"
        seen += piece
    return seen


def _cuts(path: Path, chunk: int) -> list[int]:
    grouping = grouped_cuts(path, 0, chunk)
    assert grouping is not None
    return grouping.cuts


@pytest.mark.parametrize("jobs", [1, 3])
@pytest.mark.parametrize(
    ("signals", "status"),
    [((signal.SIGINT,), 130), ((signal.SIGTERM,), 143), ((signal.SIGINT, signal.SIGINT), 130)],
    ids=["sigint", "sigterm", "sigint-twice"],
)
async def test_a_signal_stops_the_import_cleanly_and_a_rerun_finishes_it(
    app: FastAPI,
    database_url: str,
    bench_procedures: list[dict[str, Any]],
    loader: tuple[AsyncClient, Principal],
    tmp_path: Path,
    signals: tuple[int, ...],
    status: int,
    jobs: int,
) -> None:
    """With ``--jobs 3`` on PostgreSQL the file is loaded in three parts, each a process: the
    signal reaches them all (as Ctrl-C reaches a terminal's foreground processes), and the load's
    process stops them; the rerun (with one job: a rerun keeps the parts) ends as one go does."""
    path, chunk = tmp_path / "events.jsonl", 100
    lines = _events_file(path, _histories(bench_procedures, 1100), bad_line=True)
    assert lines > 3000
    command = ("dossiers", "import", str(path), "--client", CLIENT, "--chunk", str(chunk))
    in_parts = jobs > 1 and database_url.startswith("postgresql")

    process = await _start(database_url, *command, "--jobs", str(jobs))
    # Its progress line says the first chunk is committed (the file is grouped: loaded as read).
    seen = await _read_until(process, b"", rb"loaded +[\d,]+ lines")
    os.killpg(process.pid, signals[0])
    if len(signals) > 1:
        # Two signals sent at once may arrive as one: the second waits for the first's answer.
        seen = await _read_until(process, seen, rb"stopping after the chunk under way")
        os.killpg(process.pid, signals[1])
    code, out, err = await _finish(process, seen)
    assert code == status, err
    assert "Traceback" not in err, err
    if len(signals) == 1:
        # The first signal lets the chunk under way commit with its checkpoint: the stop falls
        # between chunks, and before the end of the file.
        stopped = re.search(r"stopped after line ([\d,]+); rerun the same command to continue\n", err)
        assert stopped is not None, err
        stopped_at = int(stopped[1].replace(",", ""))
        # In parts, the lines done are the parts' added up: each stopped after a chunk of its own.
        assert (in_parts or stopped_at in _cuts(path, chunk)) and chunk <= stopped_at < lines
    else:
        # The second stops at once (or the chunk was done first, and the stop fell between chunks).
        assert re.search(r"stopped (at once|after line [\d,]+).*; rerun the same command to continue\n", err)
    # In parts, the parts' checkpoints stand where the load said it stopped.
    parts = await _parts_of(app, Source.of(path))
    assert len(parts) == (3 if in_parts else 0)
    if in_parts and len(signals) == 1:
        begins = [0, *(part.last_line or 0 for part in parts[:-1])]
        assert sum(part.lines_done - begin for part, begin in zip(parts, begins, strict=True)) == stopped_at

    # The rerun continues where the checkpoint says; the line rejected before the stop is counted
    # in the exit status, and is in the rejects file once.
    code, out, err = await _tthc(database_url, *command, "--jobs", "1")
    assert code == 3, err
    assert "resumed after line" in out
    assert _rejected_lines(path) == [5]
    resumed = await _snapshot(app), await _events(app)

    # What a load in one go makes of the same file.
    await _forget_dossiers(app)
    _, principal = loader
    done = await _import(app, principal, Source.of(path), chunk_size=chunk)
    assert (done.lines_done, done.outcomes["error"]) == (lines, 1)
    assert (await _snapshot(app), await _events(app)) == resumed


@pytest.mark.parametrize("ended", [False, True], ids=["during the load", "after it"])
async def test_a_second_signal_cuts_the_load_short_but_never_its_cleanup(ended: bool) -> None:
    # A second signal that came once a stopped load had ended cancelled the engine's disposal:
    # an SQLite connection was left half closed, its traceback logged (a run of the test above).
    async def the_import() -> None:
        stop = _StopOnSignal()
        stop.install()
        try:
            if ended:
                stop.load_ended()
            os.kill(os.getpid(), signal.SIGINT)
            await asyncio.wait_for(stop.asked.wait(), timeout=60)
            os.kill(os.getpid(), signal.SIGINT)
            # The handler runs on the loop: yielding until the signal's byte has been read.
            for _ in range(100):
                await asyncio.sleep(0)
        finally:
            loop = asyncio.get_running_loop()
            for number in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(number)

    task = asyncio.create_task(the_import())
    if ended:
        await task
    else:
        with pytest.raises(asyncio.CancelledError):
            await task


@pytest.mark.parametrize("phase", ["loading", "reading", "folding"])
async def test_a_load_asked_to_stop_ends_after_the_chunk_and_resumes_to_the_same_end(
    app: FastAPI,
    bench_procedures: list[dict[str, Any]],
    loader: tuple[AsyncClient, Principal],
    tmp_path: Path,
    phase: str,
) -> None:
    """bulk.import_file's ``stop``, in each phase of an events file (loading: a grouped file;
    reading and folding: a scattered one): asked during a chunk (here, as the first one of the
    phase is told), the load raises ``Stopped`` when that chunk is committed."""
    _, principal = loader
    path, chunk = tmp_path / "events.jsonl", 50
    scattered = phase != "loading"
    lines = _events_file(path, _histories(bench_procedures, 100), bad_line=True, scattered=scattered)
    stop = asyncio.Event()

    def ask_to_stop(progress: FileProgress) -> None:
        if progress.phase == phase:
            stop.set()

    with pytest.raises(Stopped) as stopped:
        await _import(app, principal, Source.of(path), chunk_size=chunk, on_progress=ask_to_stop, stop=stop)
    progress = stopped.value.progress
    assert progress.phase == phase
    if phase == "loading":
        # The first chunk of whole dossiers, about `chunk` lines: folded, nothing staged.
        assert progress.lines_done == _cuts(path, chunk)[0] >= chunk
        assert progress.folded_through is None and 0 < progress.folded_lines <= progress.lines_done
    elif phase == "reading":
        assert (progress.lines_done, progress.folded_through) == (chunk, None)
    else:
        assert progress.lines_done == lines and progress.folded_through is not None
        assert 0 < progress.folded_lines < lines

    done = await _import(app, principal, Source.of(path), chunk_size=chunk)
    assert done.lines_done == lines
    assert _rejected_lines(path) == [5]
    resumed = await _snapshot(app), await _events(app)

    await _forget_dossiers(app)
    await _import(app, principal, Source.of(path), chunk_size=chunk)
    assert (await _snapshot(app), await _events(app)) == resumed
