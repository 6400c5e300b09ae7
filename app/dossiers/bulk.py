"""Years of history loaded from files: JSON Lines of events (the API's shape) or of DongBoHoSoMC
records, plain or gzipped, with the result the API would have made of the same lines.

Records are loaded as they are read through the API's ingestion, each chunk sent as the requests
the API takes whole (``_requests``), a transaction each. Events
are folded whole dossiers per transaction (app.dossiers.ingestion.folding): a dossier new to the
database is worked with all its events at once in memory and written set-based; one the database
knows, or one whose lines resend or cancel an event, goes through the API's ingestion line by
line. Each line is first validated and put in its canonical form as the API does. How the lines
reach the fold depends on the file:

- **grouped** (each dossier's lines together, the dossier codes never going back, as an export
  sorted by dossier writes them; ``grouped_cuts`` reads the file once to tell): each chunk of whole
  dossiers is validated and folded as it is read (``_Load.load_grouped``), nothing staged;
- **otherwise**: every valid line is staged first (``import_staged_events``, COPY on PostgreSQL),
  then the staged lines are folded in dossier-code order (``_Load.read``, then ``_Load.fold``), so
  that a dossier whose lines are scattered over the file is still folded with all of them at once.

Resumable: each chunk commits with its file's checkpoint (lines read, the last dossier folded,
the size of the rejects file), so a load killed at any point continues on rerun from the last
committed chunk, and the rejects file is cut back to what the checkpoint counted. Asked to stop
(``stop``), a load ends after the chunk under way, raising ``Stopped``.
"""

import asyncio
import bisect
import contextlib
import ctypes
import gzip
import hashlib
import itertools
import json
import logging
import multiprocessing
import os
import signal
import traceback
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from functools import partial
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import IO, Any, BinaryIO, Literal, Protocol, TypeVar

import msgspec
from sqlalchemy import Table, delete, distinct, func, select, text, true
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core import json_values
from app.core.data_version import bump_version, touch
from app.core.db import bulk_insert, pooled_connections
from app.core.errors import Conflict, InvalidInput, problem_of, transaction_rolled_back
from app.core.hygiene import MAX_JSON_DEPTH, json_depth
from app.core.timezone import utcnow
from app.dossiers.counters import merge_staged_counters, merge_staged_counters_of, staged_units
from app.dossiers.dvcqg import MAX_RECORDS, history_parts
from app.dossiers.ingestion.events import parse
from app.dossiers.ingestion.folding import STAGED_COLUMNS, LineResult, StagedLine, fold, through_api
from app.dossiers.ingestion.records import MAX_HISTORY_PARTS, MAX_SAME_DOSSIER, ingest_records
from app.dossiers.ingestion.work import Ingestion
from app.dossiers.ingestion.writes import StagedCounters
from app.dossiers.models import ImportCheckpoint, ImportStagedEvent
from app.dossiers.schemas import ResultStatus
from app.units.access import provinces_of

Kind = Literal["events", "records"]
_STAGED: Table = ImportStagedEvent.__table__  # type: ignore[assignment]
DEFAULT_CHUNK = 2000
_ATTEMPTS = 5
logger = logging.getLogger(__name__)
_IDENTITY_BYTES = 1 << 20


@dataclass
class FileProgress:
    """Where the load of one file stands; ``on_progress`` is told after every chunk."""

    path: Path
    kind: Kind
    size: int
    lines_done: int = 0
    position: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    resumed_from: int = 0
    resumed_fold_after: str | None = None
    """The last dossier folded before this run, when it resumed a fold."""
    phase: Literal["reading", "folding", "loading"] = "reading"
    """Records are loaded as they are read (reading); events of a grouped file are validated and
    folded as they are read (loading); other events are read (validated and staged), then folded."""
    folded_through: str | None = None
    staged_lines: int = 0
    folded_lines: int = 0
    rejects_bytes: int = 0
    """The size of the rejects file its checkpoint counts."""

    @property
    def has_rejects(self) -> bool:
        """Lines were rejected, in this run or an earlier one of the same file (a rejects file
        removed by hand since does not clear them)."""
        return self.rejects_bytes > 0


Progress = Callable[[FileProgress], None]


class Stopped(Exception):
    """The load ended after a committed chunk because it was asked to stop: a rerun continues."""

    def __init__(self, progress: FileProgress) -> None:
        super().__init__(f"{progress.path.name}: stopped after line {progress.lines_done}")
        self.progress = progress


def file_identity(path: Path) -> str:
    """The file's identity for its checkpoint: its size and the digest of its first megabyte (a
    file moved or renamed keeps its checkpoint; a different file does not get another's)."""
    digest = hashlib.sha256()
    with path.open("rb") as raw:
        digest.update(raw.read(_IDENTITY_BYTES))
    return f"{path.stat().st_size}:{digest.hexdigest()}"


def _open(path: Path) -> tuple[IO[bytes], IO[bytes]]:
    """(the file as read, the lines): gzip is recognised by its magic bytes, whatever the name.
    Read the lines with ``_lines``, never by iterating: a line is only ever held up to its bound."""
    raw = path.open("rb")
    if raw.read(2) == b"\x1f\x8b":
        raw.seek(0)
        return raw, gzip.GzipFile(fileobj=raw)  # type: ignore[return-value]
    raw.seek(0)
    return raw, raw


MAX_LINE_BYTES = 1 << 20
"""The longest line read, its line break aside. An event is a few hundred bytes and a record a few
KB (it carries at most 50 supplement requests): a longer line is that line's error, found without
ever holding it — a gzipped line may decompress to gigabytes."""
_DISCARDED_BYTES = 1 << 16
"""The piece in which the rest of a line longer than ``MAX_LINE_BYTES`` is read and dropped."""


class _TooLong(bytes):
    """Stands in for a line longer than ``MAX_LINE_BYTES``, in its place among the lines."""


def _lines(stream: IO[bytes]) -> Iterator[bytes]:
    """Every line of the stream, each at most ``MAX_LINE_BYTES`` (and its line break) held; a
    longer one is read to its end in bounded pieces, dropped, and given as a ``_TooLong``."""
    while line := stream.readline(MAX_LINE_BYTES + 1):
        if len(line) <= MAX_LINE_BYTES or line.endswith(b"\n"):
            yield line
            continue
        while (rest := stream.readline(_DISCARDED_BYTES)) and not rest.endswith(b"\n"):
            pass
        yield _TooLong()


def _object_of(line: bytes) -> dict[str, Any]:
    """The JSON object of a line; ValueError saying why the line is not one. Nesting is bounded as
    the API bounds a request's (``MAX_JSON_DEPTH``), before parsing: ``json.loads`` would recurse."""
    if isinstance(line, _TooLong):
        raise ValueError(f"line longer than {MAX_LINE_BYTES} bytes")
    # Counting brackets is cheap; only a line with many of them is measured (strings skipped).
    if line.count(b"[") + line.count(b"{") > MAX_JSON_DEPTH and json_depth(line) > MAX_JSON_DEPTH:
        raise ValueError(f"the JSON nests deeper than {MAX_JSON_DEPTH} levels")
    try:
        value = json_values.loads(line)
    except RecursionError as exc:
        raise ValueError(f"the JSON nests too deeply to parse ({exc})") from exc
    except ValueError as exc:
        raise ValueError(f"not JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise ValueError(f"not a JSON object but {_KINDS_OF_JSON.get(type(value), 'a value')}")
    return value


_KINDS_OF_JSON: dict[type, str] = {
    list: "an array",
    str: "a string",
    int: "a number",
    float: "a number",
    bool: "true or false",
    type(None): "null",
}
_LINES_TO_DECIDE = 100
"""How many lines (blank ones aside) are looked at for one that names its kind."""


def detect_kind(path: Path) -> Kind:
    """Records name their dossier ``MaHoSo``; events carry an ``event_id``. The first line that is
    an object naming either decides: a faulty line before it is that line's error at the load."""
    raw, lines = _open(path)
    with raw:
        looked = 0
        for line in _lines(lines):
            if not isinstance(line, _TooLong) and not line.strip():
                continue
            looked += 1
            if looked > _LINES_TO_DECIDE:
                break
            try:
                first = _object_of(line)
            except ValueError:
                continue
            if "MaHoSo" in first:
                return "records"
            if "event_id" in first:
                return "events"
    raise InvalidInput(
        f"{path.name}: neither dossier events (event_id) nor DongBoHoSoMC records (MaHoSo) "
        f"in its first {_LINES_TO_DECIDE} lines"
    )


def _chunks(lines: IO[bytes], skip: int, cuts: Iterable[int]) -> Iterator[list[tuple[int, bytes]]]:
    """(line number, line) in chunks after the first ``skip`` lines, each ending at the next of
    ``cuts`` (ascending line numbers; the lines after the last cut make the last chunk). A line
    longer than ``MAX_LINE_BYTES`` is a ``_TooLong`` under its number (``_lines``)."""
    ends = (cut for cut in cuts if cut > skip)
    end = next(ends, None)
    chunk: list[tuple[int, bytes]] = []
    for number, line in enumerate(_lines(lines), start=1):
        if number <= skip:
            continue
        chunk.append((number, line))
        if number == end:
            yield chunk
            chunk = []
            end = next(ends, None)
    if chunk:
        yield chunk


def _every(size: int, skip: int) -> Iterator[int]:
    """The cuts of chunks of ``size`` lines after line ``skip``."""
    return itertools.count(skip + size, size)


@dataclass(frozen=True)
class Grouping:
    """How a grouped file (``grouped_cuts``) is loaded from where its load stands."""

    cuts: list[int]
    """The last line of each chunk of whole dossiers, ascending; the last is the file's last line
    (none: every line is done)."""
    left_for_last: list[tuple[int, int, str]]
    """The first and last line and the code of each dossier with an event id that a dossier before
    it in the file has too, in file order: such a dossier is taken at the end, through the API,
    after every other (so the earlier dossier keeps the id, as the API answers the later line,
    whichever part of a load in parts comes first: ``--jobs``)."""

    def outside(self, chunk: list[tuple[int, bytes]]) -> list[tuple[int, bytes]]:
        """The chunk's lines that are not left for last."""
        if not self.left_for_last:
            return chunk
        return [(number, line) for number, line in chunk if not self.is_left(number)]

    def is_left(self, number: int) -> bool:
        at = bisect.bisect_right(self.left_for_last, (number, _LAST_LINE)) - 1
        return at >= 0 and self.left_for_last[at][0] <= number <= self.left_for_last[at][1]


_LAST_LINE = 1 << 62


def grouped_cuts(path: Path, skip: int, size: int) -> Grouping | None:
    """How a file of events whose dossiers come grouped — each dossier's lines together, the
    dossier codes never going back — is loaded after line ``skip``: cut into chunks of whole
    dossiers, about ``size`` lines each, and the dossiers left for last (``Grouping``). None when
    the codes go back somewhere: a dossier may then have lines far apart, and the file is staged
    and folded in code order.

    A line's code and event id are read with the load's own JSON rules (``_object_of``); a line
    that has no code (blank, not JSON, no string ``dossier_code``) is refused or skipped by the
    load and is cut with the lines before it. The check is of the raw code: a code the API would
    refuse only makes the file count as not grouped. Event ids are compared by a 64-bit digest: two
    ids that share one leave a dossier for last that need not be, which changes no outcome."""
    cuts: list[int] = []
    left: list[tuple[int, int, str]] = []
    earlier_ids: set[int] = set()
    dossier_ids: set[int] = set()
    previous = ""
    first = last = in_chunk = number = 0
    raw, lines = _open(path)
    with raw:
        for number, line in enumerate(_lines(lines), start=1):
            code, event_id = _code_and_event_id(line)
            if code is not None:
                if code < previous:
                    return None
                if code != previous:
                    if dossier_ids & earlier_ids:
                        left.append((first, last, previous))
                    earlier_ids |= dossier_ids
                    dossier_ids = set()
                    first = number
                    if in_chunk >= size:
                        cuts.append(number - 1)
                        in_chunk = 0
                previous, last = code, number
                if event_id is not None:
                    dossier_ids.add(_digest(event_id))
            if number > skip:
                in_chunk += 1
    if dossier_ids & earlier_ids:
        left.append((first, last, previous))
    if in_chunk:
        cuts.append(number)
    return Grouping(cuts, left)


def _code_and_event_id(line: bytes) -> tuple[str | None, str | None]:
    """The line's code and event id, each if it is a string, as ``_object_of`` reads the line:
    by ``_named_quickly`` where it can, else by ``_object_of`` itself."""
    named = _named_quickly(line)
    return named if named is not None else _code_and_event_id_of_object(line)


def _named_quickly(line: bytes) -> tuple[str | None, str | None] | None:
    """The code and event id of a line read as an object of those two members alone (msgspec: the
    others are checked as JSON and skipped, not built; the pre-pass 2.3 → 1.6 µs a line), or None
    where ``_object_of``'s answer might differ: a line too long or with brackets enough to nest
    too deeply, bytes that are not UTF-8 (which msgspec does not look at in a member it skips),
    and whatever msgspec refuses (not strict JSON, not an object, a byte-order mark, a lone
    surrogate). Where it answers it gives ``json.loads``'s values, the last of duplicate members
    included (tests/dossiers/test_bulk_naming.py)."""
    if isinstance(line, _TooLong) or line.count(b"[") + line.count(b"{") > MAX_JSON_DEPTH:
        return None
    try:
        if not line.isascii():
            line.decode("utf-8", "surrogatepass")
        named = _NAMING(line)
    except ValueError:  # msgspec's DecodeError is one, and so is UnicodeDecodeError
        return None
    return _text(named.dossier_code), _text(named.event_id)


class _Naming(msgspec.Struct):
    dossier_code: Any = None
    event_id: Any = None


_NAMING = msgspec.json.Decoder(_Naming).decode


def _code_and_event_id_of_object(line: bytes) -> tuple[str | None, str | None]:
    if not isinstance(line, _TooLong) and not line.strip():
        return None, None
    try:
        value = _object_of(line)
    except ValueError:
        return None, None
    return _text(value.get("dossier_code")), _text(value.get("event_id"))


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _digest(value: str) -> int:
    # Not hash(): a rerun must cut the file as the run it continues did.
    digest = hashlib.blake2b(value.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def _parsed(chunk: list[tuple[int, bytes]]) -> tuple[list[int], list[Any], dict[int, str]]:
    """Line numbers and values of the lines that are JSON objects; the reason for each other line
    (blank lines aside): not JSON, nested too deeply, too long, or JSON but not an object."""
    numbers: list[int] = []
    values: list[Any] = []
    broken: dict[int, str] = {}
    for number, line in chunk:
        if not isinstance(line, _TooLong) and not line.strip():
            continue
        try:
            values.append(_object_of(line))
            numbers.append(number)
        except ValueError as exc:
            broken[number] = str(exc)
    return numbers, values, broken


@dataclass(frozen=True)
class Source:
    """A file to load: what it holds, its identity for the checkpoint, its size, where rejects go."""

    path: Path
    kind: Kind
    identity: str
    size: int
    rejects: Path

    @classmethod
    def of(cls, path: Path, rejects: Path | None = None) -> "Source":
        rejects = rejects or path.with_name(path.name + ".rejected.jsonl")
        return cls(path, detect_kind(path), file_identity(path), path.stat().st_size, rejects)


async def import_file(
    sessionmaker: async_sessionmaker[AsyncSession],
    ingestion_of: Callable[[AsyncSession], Ingestion],
    source: Source,
    *,
    chunk_size: int = DEFAULT_CHUNK,
    on_progress: Progress | None = None,
    stop: asyncio.Event | None = None,
    jobs: int = 1,
) -> FileProgress:
    """Load one file, a chunk per transaction; rejected lines go to ``source.rejects`` (JSON Lines:
    line number and problem). Blocking file reads are the point of this job: it runs alone.
    ``stop``, once set, ends the load with ``Stopped`` after the chunk under way is committed.

    ``jobs``: on PostgreSQL, a file is loaded in that many parts at once, each a process of its
    own: a grouped file's lines (``_Load.load_in_parts``); another file of events's lines read and
    staged (``_Load.read_in_parts``), then its dossiers folded (``_Load.fold_in_parts``); records,
    each part those of some of the dossiers (``_Load.load_records_in_parts``). A rerun keeps the
    parts of the run it continues.

    On PostgreSQL a load holds its file (``_alone``): a second load of it meanwhile is refused."""
    async with _alone(sessionmaker, source):
        return await _import(sessionmaker, ingestion_of, source, chunk_size, on_progress, stop, jobs)


@contextlib.asynccontextmanager
async def _alone(sessionmaker: async_sessionmaker[AsyncSession], source: Source) -> AsyncIterator[None]:
    """An advisory lock on the file, held by a connection of its own from the load's start to its
    end (PostgreSQL): two loads of one file would redo each other's chunks and write one rejects
    file. A load killed lets it go with its connection. SQLite has one writer at a time."""
    engine = sessionmaker.kw["bind"]
    if engine.dialect.name != "postgresql":
        yield
        return
    async with engine.connect() as fence:
        if not await fence.scalar(_LOAD_LOCK, {"key": source.identity}):
            raise Conflict(f"{source.path.name} is being loaded by another process; wait for it to end")
        await fence.commit()
        try:
            yield
        finally:
            # Gone with its connection if the database went away meanwhile.
            with contextlib.suppress(Exception):
                await fence.execute(_LOAD_UNLOCK, {"key": source.identity})
                await fence.commit()


_LOAD_LOCK = text("SELECT pg_try_advisory_lock(29, hashtext(:key))")
"""A load's or a part's lock: two keys, a space apart from the dossiers' (``ingestion.locks``)."""
_LOAD_UNLOCK = text("SELECT pg_advisory_unlock(29, hashtext(:key))")


async def _import(
    sessionmaker: async_sessionmaker[AsyncSession],
    ingestion_of: Callable[[AsyncSession], Ingestion],
    source: Source,
    chunk_size: int,
    on_progress: Progress | None,
    stop: asyncio.Event | None,
    jobs: int,
) -> FileProgress:
    async with sessionmaker() as session, session.begin():
        checkpoint = await _checkpoint(session, source)
        progress = FileProgress(source.path, source.kind, source.size)
        progress.lines_done = progress.resumed_from = checkpoint.lines_done
        progress.folded_through = progress.resumed_fold_after = checkpoint.folded_through
        staged, finished, kept_rejects = checkpoint.staged, checkpoint.finished, checkpoint.rejects_bytes
        progress.rejects_bytes = kept_rejects
    load = _Load(sessionmaker, ingestion_of, source, progress, on_progress, stop, jobs)
    with _rejects_from(source.rejects, kept_rejects) as load.rejected:
        if not finished:
            await _load_by_its_way(load, staged=staged, chunk_size=chunk_size, jobs=jobs)
    # Also for a file finished before: a run killed between its end and this would have left it.
    _in_line_order(source.rejects)
    return progress


async def _load_by_its_way(load: "_Load", *, staged: bool, chunk_size: int, jobs: int) -> None:
    """Records as read; a grouped file as read, in parts or in one go; any other file of events
    read, in parts or in one go, then folded, in parts or in one go."""
    sessionmaker, source = load.sessionmaker, load.source
    path = source.path
    if source.kind == "records":
        parts = await _line_parts(
            sessionmaker, source, jobs, lambda skip: _shares(skip, _line_count(path), jobs)
        )
        if parts:
            await load.load_records_in_parts(parts, chunk_size)
        else:
            await load.load_records(chunk_size)
        return
    grouping = None if staged else await _grouped_from(sessionmaker, source, load.progress, chunk_size)
    if grouping is not None:
        cuts = grouping.cuts
        parts = await _line_parts(
            sessionmaker, source, jobs, lambda skip: _spans(skip, _part_ends(cuts, skip, jobs))
        )
        if parts:
            await load.load_in_parts(grouping, parts, chunk_size)
        else:
            await load.load_grouped(grouping, chunk_size)
        return
    if not staged:
        parts = await _line_parts(
            sessionmaker, source, jobs, lambda skip: _spans(skip, _line_ends(skip, _line_count(path), jobs))
        )
        if parts:
            await load.read_in_parts(parts, chunk_size)
        else:
            await load.read(chunk_size)
    parts = await _dossier_parts(sessionmaker, source, jobs)
    if parts:
        await load.fold_in_parts(parts, chunk_size)
    else:
        await load.fold(chunk_size)


def _in_line_order(path: Path) -> None:
    """A finished load's rejects file rewritten in line order: the same lines whatever chunks,
    parts and phases wrote them (a fold writes its rejects in dossier order, and where its chunks
    or its parts are cut decides which come first). Its size, which the checkpoint keeps, is the
    same. Replaced whole: killed meanwhile, the file stays as it was written."""
    if not path.exists():  # removed by hand meanwhile
        return
    rejected = path.read_bytes().splitlines(keepends=True)
    numbers = [int(json.loads(line)["line"]) for line in rejected]
    if all(one < other for one, other in itertools.pairwise(numbers)):
        return
    sorting = path.with_name(f"{path.name}.sorting")
    with sorting.open("wb") as ordered:
        ordered.writelines(rejected[at] for at in sorted(range(len(numbers)), key=numbers.__getitem__))
        ordered.flush()
        os.fsync(ordered.fileno())
    os.replace(sorting, path)


def _rejects_from(path: Path, kept: int) -> BinaryIO:
    """A rejects file opened to append to, cut back to the size its checkpoint counts: what a
    killed run wrote past its last committed chunk goes. A file shorter than that (removed or cut
    by hand) is left as it is: truncate would pad it with NUL bytes."""
    rejected = path.open("ab")
    if rejected.tell() > kept:
        rejected.truncate(kept)
    return rejected


async def _grouped_from(
    sessionmaker: async_sessionmaker[AsyncSession], source: Source, progress: FileProgress, size: int
) -> Grouping | None:
    """How a grouped file is loaded (``grouped_cuts``) from where its load stands (no cuts left:
    every line is done, the end of the file remains); None when it is not grouped, or when a run
    before this one staged lines of it (that run's way is kept)."""
    async with sessionmaker() as session:
        staged_before = await session.scalar(
            select(ImportStagedEvent.line).where(ImportStagedEvent.file_identity == source.identity).limit(1)
        )
    if staged_before is not None:
        return None
    return grouped_cuts(source.path, progress.lines_done, size)


class _Load:
    """One file's load: records loaded as read; events of a grouped file folded as read; other
    events read and staged, then folded."""

    rejected: BinaryIO

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        ingestion_of: Callable[[AsyncSession], Ingestion],
        source: Source,
        progress: FileProgress,
        on_progress: Progress | None,
        stop: "_Asked | None" = None,
        jobs: int = 1,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.ingestion_of = ingestion_of
        self.source = source
        self.progress = progress
        self.on_progress = on_progress
        self.stop = stop
        self.jobs = jobs
        """How many transactions merge the staged counters at once when the file ends."""
        self.point = source
        """Whose checkpoint and rejects file the chunks commit with: the file's, or a part's."""

    async def read(self, chunk_size: int) -> None:
        """Every event from the checkpoint on, validated and staged (``read_chunks``); then the
        file marked read."""
        await self.read_chunks(_every(chunk_size, self.progress.lines_done), _LAST_LINE)
        await self._all_read(finished=False)

    async def read_in_parts(self, parts: list["_Part"], chunk_size: int) -> None:
        """As ``read``, each part of the lines (``_line_parts``) read by a process of its own."""
        self.progress.lines_done = self.progress.resumed_from = _lines_done_in(
            parts, self.progress.lines_done
        )
        await _run_parts(
            self, [(part, _reading(part, chunk_size)) for part in parts if not _lines_all_done(part)]
        )
        self._stop_if_asked()  # as the load in one go does after its last chunk
        await self._all_read(finished=False)

    async def read_chunks(self, cuts: Iterable[int], through: int) -> None:
        """The lines after the lines done, in chunks that end at ``cuts``, through line ``through``:
        each chunk's events validated and staged in a transaction committed with the checkpoint."""
        raw, lines = _open(self.source.path)
        progress = self.progress
        with raw:
            for chunk in _chunks(lines, progress.lines_done, cuts):
                numbers, values, not_json = _parsed(chunk)
                problems = self._not_json(not_json)
                # As a request: committed whole with its checkpoint, or not at all (get_session's rule).
                async with self.sessionmaker() as session:
                    outcomes = await _stage(
                        self.ingestion_of(session), self.source.identity, numbers, chunk, values
                    )
                    self._count(outcomes, problems)
                    checkpoint = await self._commit_point(session, problems)
                    checkpoint.lines_done = chunk[-1][0]
                    await session.commit()
                self._read_through(chunk[-1][0], raw)
                if chunk[-1][0] >= through:
                    break

    async def load_records(self, chunk_size: int) -> None:
        """Every record from the checkpoint on (``load_record_chunks``); then the file marked done."""
        await self.load_record_chunks(_every(chunk_size, self.progress.lines_done), _LAST_LINE, _every_record)
        await self._all_read(finished=True)

    async def load_records_in_parts(self, parts: list["_Part"], chunk_size: int) -> None:
        """As ``load_records``, each part (``_shares``: the records of some of the dossiers, all of
        each one's, through every line) by a process of its own."""
        skip = self.progress.lines_done
        done = sum(part.lines_done - skip for part in parts) // len(parts)
        self.progress.lines_done = self.progress.resumed_from = skip + done
        works = [
            (part, _loading_records(part, len(parts), chunk_size))
            for part in parts
            if not _lines_all_done(part)
        ]
        await _run_parts(self, works, spread=len(parts))
        self._stop_if_asked()  # as the load in one go does after its last chunk
        self.progress.lines_done = parts[0].last_line  # each part went through every line
        await self._all_read(finished=True)

    async def load_record_chunks(
        self, cuts: Iterable[int], through: int, mine: Callable[[Any], bool]
    ) -> None:
        """The lines after the lines done, in chunks that end at ``cuts``, through line ``through``:
        the records ``mine`` keeps (it is given each value, None for a line that is not a JSON
        object) sent through the API's ingestion as the requests it takes whole (``_requests``),
        each in a transaction committed with the checkpoint (the last line it covers)."""
        raw, lines = _open(self.source.path)
        progress = self.progress
        with raw:
            for chunk in _chunks(lines, progress.lines_done, cuts):
                numbers, values, not_json = _parsed(chunk)
                kept = [(number, value) for number, value in zip(numbers, values, strict=True) if mine(value)]
                not_json = not_json if mine(None) else {}
                for last_line, request in _requests(chunk[-1][0], *_unzipped(kept)):
                    covered = {n: why for n, why in not_json.items() if progress.lines_done < n <= last_line}
                    problems = self._not_json(covered)
                    async with self.sessionmaker() as session:
                        records = [value for _, value in request]
                        # Staged, the counters of the file's records are merged when it ends.
                        staged = StagedCounters(self.source.identity)
                        sent = partial(ingest_records, self.ingestion_of(session), records, staged)
                        results = await _replayed(session, sent)
                        outcomes = {
                            n: (r.status, r.problem) for (n, _), r in zip(request, results, strict=True)
                        }
                        self._count(outcomes, problems)
                        checkpoint = await self._commit_point(session, problems)
                        checkpoint.lines_done = last_line
                        if request:  # a part's chunk may hold none of its records: nothing changed
                            await bump_version(session)
                        await session.commit()
                    progress.lines_done = last_line
                self._read_through(chunk[-1][0], raw)
                if chunk[-1][0] >= through:
                    break

    def _read_through(self, line: int, raw: IO[bytes]) -> None:
        """A chunk committed: told, and the load stops here if asked."""
        self.progress.lines_done = line
        self.progress.position = raw.tell()
        self._tell()
        self._stop_if_asked()

    async def _all_read(self, *, finished: bool) -> None:
        """Every line read: so marked, with the parts' rejects gathered (``_gathered``); when that
        finishes the file (records), its end (``_end``: the counters merged)."""
        if finished:
            await self._merge_in_shares()
        async with self.sessionmaker() as session, session.begin():
            gathered = await self._gathered(session)
            if finished:
                await self._end(session, {})
            else:
                checkpoint = await self._commit_point(session, {})
                checkpoint.lines_done = self.progress.lines_done
                checkpoint.staged = True
        _remove(gathered)

    async def _gathered(self, session: AsyncSession) -> list[Path]:
        """The rejects of this file's parts, if it was loaded in parts, appended to the file's
        rejects (each as far as its checkpoint counts) and their checkpoints removed, in the
        caller's transaction; the parts' rejects files, for the caller to remove once committed."""
        gathered = []
        for stood in await _checkpoints_of(session, self.source.identity):
            path = _rejects_of(self.source, stood.file_identity)
            # A part's rejects file removed by hand since is left out, as the file's own would be.
            if path.exists():
                self.rejected.write(path.read_bytes()[: stood.rejects_bytes])
            gathered.append(path)
        await session.execute(
            delete(ImportCheckpoint).where(ImportCheckpoint.part_of == self.source.identity)
        )
        return gathered

    async def load_grouped(self, grouping: Grouping, chunk_size: int) -> None:
        """A grouped file (``grouped_cuts``): each chunk of whole dossiers validated and folded as
        it is read, committed with its checkpoint (the lines done); nothing staged. Then the end of
        the file (``_finish_grouped``)."""
        self.progress.phase = "loading"
        await self.load_chunks(grouping, grouping.cuts)
        await self._finish_grouped(grouping, chunk_size)

    async def load_chunks(self, grouping: Grouping, cuts: list[int]) -> None:
        """The chunks that end at ``cuts`` after the lines done, through the last cut (the lines
        ``grouping`` leaves for last aside), each committed with the checkpoint."""
        if not cuts:
            return
        raw, lines = _open(self.source.path)
        with raw:
            for chunk in _chunks(lines, self.progress.lines_done, cuts):
                mine = grouping.outside(chunk)
                numbers, values, not_json = _parsed(mine)
                problems = self._not_json(not_json)
                async with self.sessionmaker() as session:
                    ingestion = self.ingestion_of(session)
                    valid, refused = _checked(ingestion.secret_key, numbers, mine, values)
                    self._count(refused | await self._fold(session, valid), problems)
                    checkpoint = await self._commit_point(session, problems)
                    checkpoint.lines_done = chunk[-1][0]
                    await bump_version(session)
                    await session.commit()
                self.progress.folded_lines += len(valid)
                self._read_through(chunk[-1][0], raw)
                if chunk[-1][0] >= cuts[-1]:
                    break

    async def load_in_parts(self, grouping: Grouping, parts: list["_Part"], chunk_size: int) -> None:
        """A grouped file in parts (``_line_parts``), each loaded by a process of its own as
        ``load_chunks`` loads a file, with its checkpoint and its rejects file; told here as they
        go. Then the end of the file, in this process (``_finish_grouped``), once every part is
        done. Asked to stop, each part stops after its chunk under way."""
        self.progress.phase = "loading"
        self.progress.lines_done = self.progress.resumed_from = _lines_done_in(
            parts, self.progress.lines_done
        )
        await _run_parts(
            self, [(part, _loading(grouping, part)) for part in parts if not _lines_all_done(part)]
        )
        self._stop_if_asked()  # as the load in one go does after its last chunk
        await self._finish_grouped(grouping, chunk_size)

    async def _finish_grouped(self, grouping: Grouping, chunk_size: int) -> None:
        """The end of a grouped file: the parts' rejects gathered, if it was loaded in parts; the
        dossiers left for last (``Grouping.left_for_last``), read again from the file and taken
        through the API in file order, about ``chunk_size`` lines of whole dossiers a transaction,
        each committed with the checkpoint (the last dossier taken); then ``_end``."""
        progress = self.progress
        async with self.sessionmaker() as session, session.begin():
            gathered = await self._gathered(session)
            checkpoint = await self._commit_point(session, {})
            checkpoint.lines_done = progress.lines_done
        _remove(gathered)
        for last_code, chunk in _left_chunks(self.source.path, grouping, progress.folded_through, chunk_size):
            numbers, values, not_json = _parsed(chunk)
            problems = self._not_json(not_json)
            async with self.sessionmaker() as session:
                ingestion = self.ingestion_of(session)
                valid, refused = _checked(ingestion.secret_key, numbers, chunk, values)
                taken = await _replayed(session, partial(through_api, ingestion, valid))
                self._count(refused | taken, problems)
                checkpoint = await self._commit_point(session, problems)
                checkpoint.folded_through = last_code
                await bump_version(session)
                await session.commit()
            progress.folded_through = last_code
            progress.folded_lines += len(valid)
            self._tell()
            self._stop_if_asked()
        await self._merge_in_shares()
        async with self.sessionmaker() as session, session.begin():
            await self._end(session, {})

    async def fold(self, chunk_size: int) -> None:
        """The staged events, about ``chunk_size`` lines of whole dossiers per transaction; then, in
        the transaction that ends the file, the dossiers that share an event id with another
        dossier of the file, and the merge of the counters."""
        progress, identity = self.progress, self.source.identity
        progress.phase = "folding"
        async with self.sessionmaker() as session:
            last = await _last_staged_code(session, identity)
            progress.staged_lines = await _staged_count(session, identity, progress.folded_through, last)
            entangled = await _sharing_event_ids(session, identity)
        await self.fold_chunks(entangled, last, chunk_size)
        await self._finish_staged(entangled)

    async def fold_in_parts(self, parts: list["_Part"], chunk_size: int) -> None:
        """As ``fold``, each part of the dossiers (``_dossier_parts``) folded by a process of its own."""
        progress, identity = self.progress, self.source.identity
        progress.phase = "folding"
        async with self.sessionmaker() as session:
            for part in parts:
                progress.staged_lines += await _staged_count(
                    session, identity, part.folded_through, part.last_code
                )
            entangled = await _sharing_event_ids(session, identity)
        works = [
            (part, _folding(entangled, part, chunk_size))
            for part in parts
            if part.folded_through != part.last_code
        ]
        await _run_parts(self, works)
        self._stop_if_asked()  # as the load in one go does after its last chunk
        await self._finish_staged(entangled)

    async def fold_chunks(self, entangled: set[str], through: str, chunk_size: int) -> None:
        """The staged events of the dossiers after the last folded, through the dossier code
        ``through``: about ``chunk_size`` lines of whole dossiers per transaction, committed with
        the checkpoint. ``entangled``, the dossiers that share an event id with another dossier of
        the file, are left for the end (``_finish_staged``): which line of such an id comes first
        decides (the API refuses the later one)."""
        progress, identity = self.progress, self.source.identity
        while True:
            async with self.sessionmaker() as session:
                lines = await _next_dossiers(session, identity, progress.folded_through, through, chunk_size)
                if not lines:
                    break
                outcomes = await self._fold(
                    session, [line for line in lines if line.dossier_code not in entangled]
                )
                problems: dict[int, Any] = {}
                self._count(outcomes, problems)
                checkpoint = await self._commit_point(session, problems)
                checkpoint.folded_through = lines[-1].dossier_code
                await bump_version(session)
                await session.commit()
            progress.folded_through = lines[-1].dossier_code
            progress.folded_lines += len(lines)
            self._tell()
            self._stop_if_asked()

    async def _finish_staged(self, entangled: set[str]) -> None:
        """The end of a staged file: ``entangled``, the dossiers left for last because they share
        an event id with another of the file (taken in file order), the staging emptied, then
        ``_end``, in one transaction."""
        identity = self.source.identity
        await self._merge_in_shares()
        # Not under session.begin(): the API's ingestion rolls the transaction back to replay a lost
        # race (or ``_replayed`` a deadlock), so it comes first, before anything else is written.
        async with self.sessionmaker() as session:
            problems: dict[int, Any] = {}
            if entangled:
                lines = await _lines_of(session, identity, entangled)
                ingestion = self.ingestion_of(session)
                self._count(await _replayed(session, partial(through_api, ingestion, lines)), problems)
            gathered = await self._gathered(session)
            staged = ImportStagedEvent.file_identity == identity
            await session.execute(delete(ImportStagedEvent).where(staged))
            await self._end(session, problems)
            await session.commit()
        _remove(gathered)

    async def _merge_in_shares(self) -> None:
        """Before the file's end, on PostgreSQL with ``jobs`` above one: its staged counters merged
        by ``jobs`` transactions at once, each for a share of the units. A unit's counter rows are
        its own (its rollups too), so the shares never wait on one another's counter rows (only,
        briefly, on a province's version row as each commits), and the database merges on as many
        cores; each share's staged rows go with its merge, so a run killed between them
        leaves the rest to its rerun's ``_end``, which merges whatever is still staged. Outside
        the file's last transaction (``_end``) on purpose: a transaction that holds counter rows
        (the API's ingestion of the dossiers left for last) would make a share wait on it."""
        identity = self.source.identity
        async with self.sessionmaker() as session:
            if self.jobs < 2 or session.get_bind().dialect.name != "postgresql":
                return
            units = sorted(await staged_units(session, identity))
            # No more shares than the pool keeps connections: with the load's own fence connection
            # held, a share beyond them would wait for one, and could time out.
            count = min(self.jobs, len(units), pooled_connections(session))

        async def merge(share: list[str]) -> None:
            async with self.sessionmaker() as session, session.begin():
                touch(session, await provinces_of(session, set(share)))
                await merge_staged_counters_of(session, identity, share)
                await bump_version(session)

        shares = [asyncio.ensure_future(merge(units[k::count])) for k in range(count)]
        try:
            await asyncio.gather(*shares)
        except BaseException:
            # The first failure is raised as it is, once the other shares have ended: cancelled
            # (rolled back) or committed, none is left running.
            for share in shares:
                share.cancel()
            await asyncio.gather(*shares, return_exceptions=True)
            raise

    async def _end(self, session: AsyncSession, problems: dict[int, Any]) -> None:
        """In the transaction that ends a file: its dossiers' entry into the statistics (the
        staged counters merged) and the checkpoint marked finished, together: a rerun does nothing."""
        identity = self.source.identity
        # The merge changes the figures of every province with staged counters (the dossiers of
        # every chunk, this run's or a killed one's): their versions move with it. Otherwise only
        # the entangled dossiers' ingestion would name the transaction's provinces, and a poller
        # answered while the load ran would keep that answer.
        touch(session, await provinces_of(session, await staged_units(session, identity)))
        await merge_staged_counters(session, identity)
        checkpoint = await self._commit_point(session, problems)
        checkpoint.lines_done = self.progress.lines_done
        checkpoint.finished = True
        await bump_version(session)

    async def _fold(self, session: AsyncSession, lines: list[StagedLine]) -> dict[int, LineResult]:
        """One chunk's outcomes (``_fold_once``), replayed if the database breaks a deadlock with it."""
        return await _replayed(session, lambda: self._fold_once(session, lines))

    async def _fold_once(self, session: AsyncSession, lines: list[StagedLine]) -> dict[int, LineResult]:
        """One chunk's outcomes: folded, or through the API when the fold's writes clash."""
        if not lines:
            return {}
        try:
            outcomes = await fold(self.ingestion_of(session), lines, StagedCounters(self.source.identity))
        except IntegrityError:
            await session.rollback()
            outcomes = await through_api(self.ingestion_of(session), lines)
        return outcomes

    def _not_json(self, not_json: dict[int, str]) -> dict[int, Any]:
        """The problems of the lines that are not JSON objects (``_parsed``), counted."""
        self.progress.outcomes[ResultStatus.error] += len(not_json)
        return {number: {"detail": reason} for number, reason in not_json.items()}

    def _count(self, outcomes: Mapping[int, LineResult], problems: dict[int, Any]) -> None:
        for number, (status, problem) in outcomes.items():
            self.progress.outcomes[status] += 1
            if problem is not None:
                problems[number] = problem.model_dump(mode="json", exclude_none=True)

    async def _commit_point(self, session: AsyncSession, problems: dict[int, Any]) -> ImportCheckpoint:
        """The chunk's rejects written, and the checkpoint that will commit with the chunk."""
        self.rejected.writelines(_reject_line(number, problems[number]) for number in sorted(problems))
        self.rejected.flush()
        checkpoint = await _checkpoint(session, self.point)
        checkpoint.rejects_bytes = self.progress.rejects_bytes = self.rejected.tell()
        checkpoint.updated_at = utcnow()
        return checkpoint

    def _tell(self) -> None:
        if self.on_progress is not None:
            self.on_progress(self.progress)

    def _stop_if_asked(self) -> None:
        """Between chunks, the only point a load stops at: what it did is committed with its checkpoint."""
        if self.stop is not None and self.stop.is_set():
            raise Stopped(self.progress)


class _Asked(Protocol):
    """Whether a load is asked to stop: an asyncio.Event in the load's process, a
    multiprocessing Event in a part's."""

    def is_set(self) -> bool: ...


@dataclass(frozen=True)
class _Part:
    """One part of a file loaded in parts, as its checkpoint stands: a part of the lines (read and
    staged, or, for a grouped file, loaded) begins after the last line of the part before it, or
    where the file's load stood when it was cut into parts, and ends at ``last_line``; a part of
    the dossiers (folded) covers the codes after its ``folded_through`` through ``last_code``."""

    number: int
    identity: str
    lines_done: int
    last_line: int
    folded_through: str | None
    last_code: str

    @classmethod
    def of(cls, number: int, row: ImportCheckpoint) -> "_Part":
        return cls(
            number,
            row.file_identity,
            row.lines_done,
            row.last_line or 0,
            row.folded_through,
            row.last_code or "",
        )


Work = Callable[["_Load"], Awaitable[None]]
"""What a part's process does with its load (``_Load``, its checkpoint the part's)."""

_POLL_SECONDS = 0.05
_INHERITED: list[Any] = []
"""In a part's process, what it copied from the load's process and must leave alone."""


def _lines_all_done(part: _Part) -> bool:
    return part.lines_done >= part.last_line


def _lines_done_in(parts: list[_Part], skip: int) -> int:
    """The lines done of a file cut into parts of its lines after line ``skip``: the parts' added up."""
    starts = [skip, *(part.last_line for part in parts[:-1])]
    return skip + sum(part.lines_done - start for part, start in zip(parts, starts, strict=True))


def _reading(part: _Part, chunk_size: int) -> Work:
    return lambda load: load.read_chunks(_every_through(part, chunk_size), part.last_line)


def _loading_records(part: _Part, parts: int, chunk_size: int) -> Work:
    def mine(value: Any) -> bool:
        return _share_of(value, parts) == part.number

    return lambda load: load.load_record_chunks(_every_through(part, chunk_size), part.last_line, mine)


def _every_through(part: _Part, size: int) -> list[int]:
    """The cuts of chunks of ``size`` lines after the part's lines done, through its last line."""
    return [*range(part.lines_done + size, part.last_line, size), part.last_line]


def _loading(grouping: Grouping, part: _Part) -> Work:
    cuts = [cut for cut in grouping.cuts if part.lines_done < cut < part.last_line] + [part.last_line]
    return lambda load: load.load_chunks(grouping, cuts)


def _folding(entangled: set[str], part: _Part, chunk_size: int) -> Work:
    return lambda load: load.fold_chunks(entangled, part.last_code, chunk_size)


async def _line_parts(
    sessionmaker: async_sessionmaker[AsyncSession],
    source: Source,
    jobs: int,
    spans: Callable[[int], list[tuple[int, int]]],
) -> list[_Part]:
    """The parts of a file's lines: those of the run this one continues, whatever ``jobs`` says
    now (their checkpoints say where each stands); otherwise, on PostgreSQL, a part for each of the
    ``spans`` of the lines done (its lines done and its last line; one each of ``jobs``, fewer for
    a short file), their checkpoints committed before any is loaded. None: loaded in one go."""
    async with sessionmaker() as session:
        found = await _checkpoints_of(session, source.identity)
        if found or jobs < 2 or session.get_bind().dialect.name != "postgresql":
            return [_Part.of(number, row) for number, row in enumerate(found)]
        skip = (await _checkpoint(session, source)).lines_done
    planned = spans(skip)  # out of any transaction: it may read the whole file
    if len(planned) < 2:
        return []
    found = [
        _part_checkpoint(source, number, lines_done=start, last_line=end)
        for number, (start, end) in enumerate(planned)
    ]
    async with sessionmaker() as session, session.begin():
        session.add_all(found)  # a load of the same file begun meanwhile fails here, on their keys
    return [_Part.of(number, row) for number, row in enumerate(found)]


async def _dossier_parts(
    sessionmaker: async_sessionmaker[AsyncSession], source: Source, jobs: int
) -> list[_Part]:
    """The parts of a staged file's dossiers, as ``_line_parts``: new ones of about as many staged
    lines each after the last dossier folded, each ending at a dossier code."""
    identity = source.identity
    async with sessionmaker() as session, session.begin():
        found = await _checkpoints_of(session, identity)
        if not found and jobs > 1 and session.get_bind().dialect.name == "postgresql":
            after = (await _checkpoint(session, source)).folded_through
            staged = _staged_after(identity, after, await _last_staged_code(session, identity))
            # The staged lines in ``jobs`` buckets of as many, in code order: each part ends at
            # its bucket's last code (one statement, in the column's collation).
            code, line = ImportStagedEvent.dossier_code, ImportStagedEvent.line
            bucket = func.ntile(jobs).over(order_by=(code, line)).label("bucket")
            buckets = select(code, bucket).where(*staged).subquery()
            lasts = await session.scalars(
                select(func.max(buckets.c.dossier_code)).group_by(buckets.c.bucket).order_by(buckets.c.bucket)
            )
            ends: list[str] = []
            for end in lasts:
                if end not in ends:  # a dossier longer than a bucket ends the next one too
                    ends.append(end)
            if len(ends) < 2:
                return []
            starts = [after, *ends[:-1]]
            found = [
                _part_checkpoint(source, number, folded_through=start, last_code=end)
                for number, (start, end) in enumerate(zip(starts, ends, strict=True))
            ]
            session.add_all(found)
        return [_Part.of(number, row) for number, row in enumerate(found)]


def _part_checkpoint(source: Source, number: int, **where: Any) -> ImportCheckpoint:
    return ImportCheckpoint(
        file_identity=f"{source.identity}#{number}",
        file_name=source.path.name,
        lines_done=where.pop("lines_done", 0),
        rejects_bytes=0,
        part_of=source.identity,
        **where,
    )


def _part_ends(cuts: list[int], skip: int, jobs: int) -> list[int]:
    """The last line of each of ``jobs`` parts of about as many lines after line ``skip``, each one
    of ``cuts`` (ascending, the last one the file's last line)."""
    if not cuts:
        return []
    ends: list[int] = []
    for number in range(1, jobs):
        wanted = skip + (cuts[-1] - skip) * number / jobs
        end = cuts[min(bisect.bisect_left(cuts, wanted), len(cuts) - 1)]
        if end not in ends and end != cuts[-1]:
            ends.append(end)
    return [*ends, cuts[-1]]


def _spans(skip: int, ends: list[int]) -> list[tuple[int, int]]:
    """Parts of the lines after line ``skip`` that end at ``ends``, each after the one before (none
    when no line is left: a rerun of a load that died after its last chunk)."""
    return list(zip([skip, *ends][: len(ends)], ends, strict=True))


def _shares(skip: int, lines: int, jobs: int) -> list[tuple[int, int]]:
    """``jobs`` parts that each go through every one of the ``lines`` after line ``skip``, each
    loading its share of them (records: ``_share_of``)."""
    return [(skip, lines)] * jobs if lines > skip else []


def _line_ends(skip: int, lines: int, jobs: int) -> list[int]:
    """The last line of each of ``jobs`` parts of as many of the ``lines`` after line ``skip``."""
    ends = sorted({skip + (lines - skip) * number // jobs for number in range(1, jobs + 1)} - {skip})
    return ends


def _line_count(path: Path) -> int:
    """The lines of the file as ``_lines`` reads them (the last one may lack its line break)."""
    raw, lines = _open(path)
    count, last = 0, b"\n"
    with raw:
        while block := lines.read(_DISCARDED_BYTES * 16):
            count += block.count(b"\n")
            last = block[-1:]
    return count + (last != b"\n")


async def _checkpoints_of(session: AsyncSession, identity: str) -> list[ImportCheckpoint]:
    """The checkpoints of the parts of a file's load, in file order."""
    found = await session.scalars(
        select(ImportCheckpoint).where(ImportCheckpoint.part_of == identity).with_for_update()
    )
    # By their number ("#10" after "#9"), not by the text of their identity.
    return sorted(found, key=lambda row: int(row.file_identity.rsplit("#", 1)[1]))


def _rejects_of(source: Source, part_identity: str) -> Path:
    """A part's rejects file, gathered into the file's when the parts are done (``_gathered``)."""
    number = part_identity.rsplit("#", 1)[1]
    return source.rejects.with_name(f"{source.rejects.name}.part{number}")


def _remove(paths: list[Path]) -> None:
    for path in paths:
        path.unlink(missing_ok=True)


async def _run_parts(load: _Load, works: list[tuple[_Part, Work]], *, spread: int = 1) -> None:
    """Each part given loaded by a process of its own, forked (the start-up and the parts' work
    are shared, nothing is pickled), each telling its progress and its end through a pipe of its
    own; the load's progress is theirs added up (``spread``: how many parts go through each line).
    Asked to stop, every part stops after its chunk under way; a part that fails, or ends without
    a word (its pipe closed: killed), stops the others so. Cancelled, the parts are ended at once
    (a chunk under way rolls back: its checkpoint stands)."""
    context = multiprocessing.get_context("fork")
    asked = context.Event()
    progress = load.progress
    lines_done, folded_lines, outcomes = progress.lines_done, progress.folded_lines, progress.outcomes.copy()
    last_line = max((part.last_line for part, _ in works), default=0)
    told: dict[int, tuple[int, int, Counter[str]]] = {}
    processes: dict[int, multiprocessing.process.BaseProcess] = {}
    readers: dict[Connection, int] = {}
    ended: dict[int, str] = {}
    try:
        # A signal that comes while a part is forked is the load's: the part ignores signals from
        # the moment it runs (``_load_part``), and the load's handler takes this one once unblocked.
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        try:
            for part, work in works:
                reader, writer = context.Pipe(duplex=False)
                forked = context.Process(
                    target=_load_part,
                    args=(_PartJob(load, part, work, writer, asked),),
                    name=f"tthc-import-part-{part.number}",
                    daemon=True,
                )
                forked.start()
                writer.close()  # the part's own end: when it is gone, the pipe says so
                processes[part.number], readers[reader] = forked, part.number
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        while readers:
            if (load.stop is not None and load.stop.is_set()) or _failed(ended):
                asked.set()
            ready = wait(list(readers), timeout=0)
            if not ready:
                await asyncio.sleep(_POLL_SECONDS)
            for reader in [reader for reader in readers if reader in ready]:
                number = readers[reader]
                try:
                    kind, body = reader.recv()
                except (EOFError, OSError):
                    del readers[reader]
                    reader.close()
                    if number not in ended:
                        processes[number].join()
                        ended[number] = f"its process ended with exit status {processes[number].exitcode}"
                    continue
                if kind == "ended":
                    ended[number] = body
                    continue
                told[number] = body
                progress.lines_done = lines_done + sum(read for read, _, _ in told.values()) // spread
                progress.folded_lines = folded_lines + sum(folded for _, folded, _ in told.values())
                progress.outcomes = sum((mine for _, _, mine in told.values()), outcomes.copy())
                if last_line:
                    progress.position = progress.size * progress.lines_done // last_line
                load._tell()
    finally:
        for process in processes.values():
            if process.is_alive():
                process.kill()  # it ignores the signals a stop is asked with
            process.join()
        for reader in readers:
            reader.close()
    failed = _failed(ended)
    if failed:
        raise RuntimeError(
            "; ".join(f"part {number} failed: {why}" for number, why in sorted(failed.items()))
        )
    if "stopped" in ended.values():
        raise Stopped(progress)


def _end_with(parent: int) -> None:
    """This process ends when the load's does, even killed (SIGKILL, out of memory): a part left
    running would go on beside the parts of a rerun. Linux's parent-death signal."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the load's process ended before the signal was asked for
        os._exit(1)


_PR_SET_PDEATHSIG = 1


_T = TypeVar("_T")


async def _replayed(session: AsyncSession, attempt: Callable[[], Awaitable[_T]]) -> _T:
    """``attempt``, in the session's transaction, replayed when the database rolls the transaction
    back to break a deadlock: parts of a load take counter rows of the same units, and a dossier
    that goes through the API's ingestion takes its rows round by round."""
    for number in itertools.count(1):
        try:
            return await attempt()
        except Exception as exc:  # SQLAlchemy's, or asyncpg's own from a statement sent raw
            if not transaction_rolled_back(exc) or number == _ATTEMPTS:
                raise
            await session.rollback()
            logger.warning(
                "a load's transaction was rolled back by the database; replaying (attempt %d)", number
            )
    raise AssertionError("unreachable")


def _every_record(_value: Any) -> bool:
    return True


def _share_of(value: Any, parts: int) -> int:
    """The part whose record this is: by the digest of its ``MaHoSo``, so that a dossier's records
    are all one part's, taken in file order; a line with none (not JSON, no string ``MaHoSo``) is
    the first part's."""
    code = value.get("MaHoSo") if isinstance(value, dict) else None
    return _digest(code) % parts if isinstance(code, str) else 0


def _unzipped(pairs: list[tuple[int, Any]]) -> tuple[list[int], list[Any]]:
    return [number for number, _ in pairs], [value for _, value in pairs]


def _failed(ended: dict[int, str]) -> dict[int, str]:
    return {number: why for number, why in ended.items() if why not in ("done", "stopped")}


@dataclass(frozen=True)
class _PartJob:
    """What a part's process is given (forked: nothing is pickled)."""

    load: _Load
    part: _Part
    work: Work
    told: Connection
    """The part's end of its pipe to the load's process."""
    asked: _Asked
    parent: int = field(default_factory=os.getpid)
    """The load's process."""


def _load_part(job: _PartJob) -> None:
    """A part's process: its work done with its own checkpoint and rejects file, its progress and
    its end told to the load's process. SIGINT and SIGTERM are the load's process's to take
    (Ctrl-C reaches every process of the terminal's job): it asks the parts to stop after their
    chunk under way, or, at a second signal, ends them at once."""
    for number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(number, signal.SIG_IGN)
    signal.set_wakeup_fd(-1)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})
    _end_with(job.parent)
    try:
        asyncio.run(_load_part_chunks(job))
        ended = "done"
    except Stopped:
        ended = "stopped"
    except BaseException:  # the load's process reports it and stops the load
        ended = traceback.format_exc()
    job.told.send(("ended", ended))
    job.told.close()


async def _load_part_chunks(job: _PartJob) -> None:
    load, part = job.load, job.part
    engine = load.sessionmaker.kw["bind"]
    # The connections the fork copied are the load's process's: this one opens its own, and keeps
    # the copied ones referenced till it exits, never collected (collected, they would be closed
    # through the copied event loop, breaking the load's process's own).
    _INHERITED.append(engine.sync_engine.pool)
    await engine.dispose(close=False)
    progress = FileProgress(load.source.path, load.source.kind, load.source.size, lines_done=part.lines_done)
    progress.phase, progress.folded_through = load.progress.phase, part.folded_through

    def tell(progress: FileProgress) -> None:
        told = (progress.lines_done - part.lines_done, progress.folded_lines, progress.outcomes)
        job.told.send(("progress", told))

    part_load = _Load(load.sessionmaker, load.ingestion_of, load.source, progress, tell, job.asked)
    fence = await engine.connect()
    part_load.point = replace(
        load.source, identity=part.identity, rejects=_rejects_of(load.source, part.identity)
    )
    try:
        # Held while the part is loaded, released when its process ends: two processes never
        # load one part (a rerun beside a load still running, or its parts).
        if not await fence.scalar(_LOAD_LOCK, {"key": part.identity}):
            raise RuntimeError(
                f"part {part.number} is being loaded by another process; is this load running twice?"
            )
        await fence.commit()
        async with load.sessionmaker() as session, session.begin():
            kept = (await _checkpoint(session, part_load.point)).rejects_bytes
        with _rejects_from(part_load.point.rejects, kept) as part_load.rejected:
            await job.work(part_load)
    finally:
        await fence.close()
        await engine.dispose()


def _left_chunks(
    path: Path, grouping: Grouping, after: str | None, size: int
) -> Iterator[tuple[str, list[tuple[int, bytes]]]]:
    """The lines ``grouping`` leaves for last, of the dossiers after the code ``after``, read again
    from the file in chunks of whole dossiers of about ``size`` lines, each with its last code."""
    spans = [span for span in grouping.left_for_last if after is None or span[2] > after]
    if not spans:
        return
    at, chunk = 0, []
    raw, lines = _open(path)
    with raw:
        for number, line in enumerate(_lines(lines), start=1):
            first, last, code = spans[at]
            if number < first:
                continue
            chunk.append((number, line))
            if number == last:
                at += 1
                if len(chunk) >= size or at == len(spans):
                    yield code, chunk
                    chunk = []
                if at == len(spans):
                    return


async def _checkpoint(session: AsyncSession, source: Source) -> ImportCheckpoint:
    found = await session.scalar(
        select(ImportCheckpoint).where(ImportCheckpoint.file_identity == source.identity).with_for_update()
    )
    if found is None:
        found = ImportCheckpoint(
            file_identity=source.identity,
            file_name=source.path.name,
            lines_done=0,
            rejects_bytes=0,
            staged=False,
            finished=False,
        )
        session.add(found)
        await session.flush()
    return found


def _requests(end: int, numbers: list[int], values: list[Any]) -> list[tuple[int, list[tuple[int, Any]]]]:
    """A chunk's records cut into the requests the API takes whole, in file order: each of at most
    ``MAX_RECORDS`` records, within ``MAX_HISTORY_PARTS`` parts of dossier history and
    ``MAX_SAME_DOSSIER`` records of one ``MaHoSo`` (a chunk of 2,000 records carries about 9,000
    parts: sent as one request, the records past the budget were refused). Each with the last
    line it covers: the line before the next request's first record, ``end`` (the chunk's last
    line) for the last one."""
    requests: list[list[tuple[int, Any]]] = [[]]
    parts = 0
    per_dossier: Counter[str | None] = Counter()
    for number, value in zip(numbers, values, strict=True):
        mine = history_parts(value)
        code = value.get("MaHoSo") if isinstance(value, dict) else None
        code = code if isinstance(code, str) else None
        full = len(requests[-1]) >= MAX_RECORDS or parts + mine > MAX_HISTORY_PARTS
        if requests[-1] and (full or per_dossier[code] >= MAX_SAME_DOSSIER):
            requests.append([])
            parts = 0
            per_dossier.clear()
        requests[-1].append((number, value))
        parts += mine
        per_dossier[code] += 1
    ends = [request[0][0] - 1 for request in requests[1:]] + [end]
    return list(zip(ends, requests, strict=True))


def _checked(
    secret_key: str, numbers: list[int], chunk: list[tuple[int, bytes]], values: list[Any]
) -> tuple[list[StagedLine], dict[int, LineResult]]:
    """The chunk's valid events, each with its canonical form; each invalid one's problem (as the
    API would answer it)."""
    request = parse(values, secret_key, utcnow())
    raw_lines = dict(chunk)
    valid = []
    for item in request.parsed:
        number, event = numbers[item.index], item.event
        # A byte-order mark, which json.loads of bytes skips, would not parse from text.
        raw = raw_lines[number].decode("utf-8-sig").rstrip("\r\n")
        valid.append(
            StagedLine(
                number,
                event.dossier_code,
                event.event_id,
                event.revision or 1,
                bool(event.cancelled),
                raw,
                item.payload,
                item.digest,
            )
        )
    refused = request.errors.items()
    return valid, {numbers[index]: (ResultStatus.error, problem_of(error)) for index, error in refused}


async def _stage(
    ingestion: Ingestion, identity: str, numbers: list[int], chunk: list[tuple[int, bytes]], values: list[Any]
) -> dict[int, LineResult]:
    """The chunk's valid events staged; each invalid one's problem (as the API would answer it)."""
    valid, refused = _checked(ingestion.secret_key, numbers, chunk, values)
    if valid:
        rows = [{"file_identity": identity, **vars(line)} for line in valid]
        await bulk_insert(ingestion.session, _STAGED, rows)
    return refused


def _staged_after(identity: str, after: str | None, through: str) -> list[Any]:
    """The conditions of a file's staged lines of the dossiers after ``after`` through ``through``."""
    later = ImportStagedEvent.dossier_code > after if after is not None else true()
    return [ImportStagedEvent.file_identity == identity, later, ImportStagedEvent.dossier_code <= through]


async def _staged_count(session: AsyncSession, identity: str, after: str | None, through: str) -> int:
    query = select(func.count()).where(*_staged_after(identity, after, through))
    return int(await session.scalar(query) or 0)


async def _last_staged_code(session: AsyncSession, identity: str) -> str:
    """The last dossier code staged of the file ("" when none is)."""
    last = await session.scalar(
        select(func.max(ImportStagedEvent.dossier_code)).where(ImportStagedEvent.file_identity == identity)
    )
    return last or ""


async def _next_dossiers(
    session: AsyncSession, identity: str, after: str | None, through: str, size: int
) -> list[StagedLine]:
    """The staged lines of the next dossiers after ``after`` (through ``through``): about ``size``
    lines, whole dossiers."""
    staged = _staged_after(identity, after, through)
    last = await session.scalar(
        select(ImportStagedEvent.dossier_code)
        .where(*staged)
        .order_by(ImportStagedEvent.dossier_code, ImportStagedEvent.line)
        .offset(size - 1)
        .limit(1)
    )
    query = select(*STAGED_COLUMNS).where(*staged)
    if last is not None:
        query = query.where(ImportStagedEvent.dossier_code <= last)
    rows = await session.execute(query.order_by(ImportStagedEvent.dossier_code, ImportStagedEvent.line))
    return [StagedLine.of(row) for row in rows]


async def _sharing_event_ids(session: AsyncSession, identity: str) -> set[str]:
    """The dossiers of the file with an event id that another dossier of the file has too."""
    mine = ImportStagedEvent.file_identity == identity
    shared = (
        select(ImportStagedEvent.event_id)
        .where(mine)
        .group_by(ImportStagedEvent.event_id)
        .having(func.count(distinct(ImportStagedEvent.dossier_code)) > 1)
    )
    found = await session.scalars(
        select(ImportStagedEvent.dossier_code).where(mine, ImportStagedEvent.event_id.in_(shared)).distinct()
    )
    return set(found)


async def _lines_of(session: AsyncSession, identity: str, codes: set[str]) -> list[StagedLine]:
    rows = await session.execute(
        select(*STAGED_COLUMNS)
        .where(ImportStagedEvent.file_identity == identity, ImportStagedEvent.dossier_code.in_(codes))
        .order_by(ImportStagedEvent.line)
    )
    return [StagedLine.of(row) for row in rows]


def _reject_line(number: int, problem: Any) -> bytes:
    return json.dumps({"line": number, "problem": problem}, ensure_ascii=False).encode() + b"\n"
