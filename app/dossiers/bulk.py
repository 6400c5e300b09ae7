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
import gzip
import hashlib
import itertools
import json
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, BinaryIO, Literal

from sqlalchemy import Table, delete, distinct, func, select, true
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.data_version import bump_version, touch
from app.core.db import bulk_insert
from app.core.errors import InvalidInput, problem_of
from app.core.hygiene import MAX_JSON_DEPTH, json_depth
from app.core.timezone import utcnow
from app.dossiers.counters import merge_staged_counters, stage_counters, staged_units
from app.dossiers.dvcqg import MAX_RECORDS, history_parts
from app.dossiers.ingestion.events import parse
from app.dossiers.ingestion.folding import STAGED_COLUMNS, LineResult, StagedLine, fold, through_api
from app.dossiers.ingestion.records import MAX_HISTORY_PARTS, MAX_SAME_DOSSIER, ingest_records
from app.dossiers.ingestion.work import Ingestion
from app.dossiers.ingestion.writes import DaySums
from app.dossiers.models import ImportCheckpoint, ImportStagedEvent
from app.dossiers.schemas import ResultStatus
from app.units.access import provinces_of

Kind = Literal["events", "records"]
_STAGED: Table = ImportStagedEvent.__table__  # type: ignore[assignment]
DEFAULT_CHUNK = 2000
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
        value = json.loads(line)
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


def grouped_cuts(path: Path, skip: int, size: int) -> list[int] | None:
    """Where a file of events whose dossiers come grouped — each dossier's lines together, the
    dossier codes never going back — is cut into chunks of whole dossiers, about ``size`` lines
    each after line ``skip``: the last line of each chunk. None when the codes go back somewhere:
    a dossier may then have lines far apart, and the file is staged and folded in code order.

    A line's code is read with the load's own JSON rules (``_object_of``); a line that has none
    (blank, not JSON, no string ``dossier_code``) is refused or skipped by the load and is cut with
    the lines before it. The check is of the raw code: a code the API would refuse only makes the
    file count as not grouped."""
    cuts: list[int] = []
    previous = ""
    in_chunk = 0
    number = 0
    raw, lines = _open(path)
    with raw:
        for number, line in enumerate(_lines(lines), start=1):
            code = _dossier_code_of(line)
            if code is not None:
                if code < previous:
                    return None
                if code != previous and in_chunk >= size:
                    cuts.append(number - 1)
                    in_chunk = 0
                previous = code
            if number > skip:
                in_chunk += 1
    if in_chunk:
        cuts.append(number)
    return cuts


def _dossier_code_of(line: bytes) -> str | None:
    if not isinstance(line, _TooLong) and not line.strip():
        return None
    try:
        code = _object_of(line).get("dossier_code")
    except ValueError:
        return None
    return code if isinstance(code, str) else None


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
) -> FileProgress:
    """Load one file, a chunk per transaction; rejected lines go to ``source.rejects`` (JSON Lines:
    line number and problem). Blocking file reads are the point of this job: it runs alone.
    ``stop``, once set, ends the load with ``Stopped`` after the chunk under way is committed."""
    async with sessionmaker() as session, session.begin():
        checkpoint = await _checkpoint(session, source)
        progress = FileProgress(source.path, source.kind, source.size)
        progress.lines_done = progress.resumed_from = checkpoint.lines_done
        progress.folded_through = progress.resumed_fold_after = checkpoint.folded_through
        staged, finished, kept_rejects = checkpoint.staged, checkpoint.finished, checkpoint.rejects_bytes
        progress.rejects_bytes = kept_rejects
    with source.rejects.open("ab") as rejected:
        # What a killed run wrote past its last committed chunk. A file shorter than that (removed
        # or cut by hand) is left as it is: truncate would pad it with NUL bytes.
        if rejected.tell() > kept_rejects:
            rejected.truncate(kept_rejects)
    if finished:
        return progress
    load = _Load(sessionmaker, ingestion_of, source, progress, on_progress, stop)
    with source.rejects.open("ab") as load.rejected:
        if source.kind == "records":
            await load.load_records(chunk_size)
            return progress
        cuts = None if staged else await _grouped_from(sessionmaker, source, progress, chunk_size)
        if cuts is not None:
            await load.load_grouped(cuts)
        else:
            if not staged:
                await load.read(chunk_size)
            await load.fold(chunk_size)
    return progress


async def _grouped_from(
    sessionmaker: async_sessionmaker[AsyncSession], source: Source, progress: FileProgress, size: int
) -> list[int] | None:
    """The cuts of a grouped file (``grouped_cuts``) from where its load stands (none left: every
    line is done, the end of the file remains); None when it is not grouped, or when a run before
    this one staged lines of it (that run's way is kept)."""
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
        stop: asyncio.Event | None = None,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.ingestion_of = ingestion_of
        self.source = source
        self.progress = progress
        self.on_progress = on_progress
        self.stop = stop

    async def read(self, chunk_size: int) -> None:
        """Every event from the checkpoint on, validated and staged; a chunk per transaction,
        committed with the checkpoint."""
        raw, lines = _open(self.source.path)
        progress = self.progress
        with raw:
            for chunk in _chunks(lines, progress.lines_done, _every(chunk_size, progress.lines_done)):
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
        await self._all_read(finished=False)

    async def load_records(self, chunk_size: int) -> None:
        """Every record from the checkpoint on, through the API's ingestion: a chunk of lines read
        at a time, its records sent as the requests the API takes whole (``_requests``), each in a
        transaction committed with the checkpoint (the last line it covers)."""
        raw, lines = _open(self.source.path)
        progress = self.progress
        with raw:
            for chunk in _chunks(lines, progress.lines_done, _every(chunk_size, progress.lines_done)):
                numbers, values, not_json = _parsed(chunk)
                for last_line, request in _requests(chunk[-1][0], numbers, values):
                    covered = {n: why for n, why in not_json.items() if progress.lines_done < n <= last_line}
                    problems = self._not_json(covered)
                    async with self.sessionmaker() as session:
                        results = await ingest_records(
                            self.ingestion_of(session), [value for _, value in request]
                        )
                        outcomes = {
                            n: (r.status, r.problem) for (n, _), r in zip(request, results, strict=True)
                        }
                        self._count(outcomes, problems)
                        checkpoint = await self._commit_point(session, problems)
                        checkpoint.lines_done = last_line
                        await bump_version(session)
                        await session.commit()
                    progress.lines_done = last_line
                self._read_through(chunk[-1][0], raw)
        await self._all_read(finished=True)

    def _read_through(self, line: int, raw: IO[bytes]) -> None:
        """A chunk committed: told, and the load stops here if asked."""
        self.progress.lines_done = line
        self.progress.position = raw.tell()
        self._tell()
        self._stop_if_asked()

    async def _all_read(self, *, finished: bool) -> None:
        async with self.sessionmaker() as session, session.begin():
            checkpoint = await _checkpoint(session, self.source)
            checkpoint.staged = True
            checkpoint.finished = finished

    async def load_grouped(self, cuts: list[int]) -> None:
        """A grouped file (``grouped_cuts``): each chunk of whole dossiers validated and folded as
        it is read, committed with its checkpoint (the lines done); nothing staged. Then the end of
        the file, as for a staged one (``_finish``)."""
        raw, lines = _open(self.source.path)
        progress = self.progress
        progress.phase = "loading"
        with raw:
            for chunk in _chunks(lines, progress.lines_done, cuts):
                numbers, values, not_json = _parsed(chunk)
                problems = self._not_json(not_json)
                async with self.sessionmaker() as session:
                    ingestion = self.ingestion_of(session)
                    valid, refused = _checked(ingestion.secret_key, numbers, chunk, values)
                    self._count(refused | await self._fold(session, valid), problems)
                    checkpoint = await self._commit_point(session, problems)
                    checkpoint.lines_done = chunk[-1][0]
                    await bump_version(session)
                    await session.commit()
                progress.folded_lines += len(valid)
                self._read_through(chunk[-1][0], raw)
        await self._finish(entangled=set())

    async def fold(self, chunk_size: int) -> None:
        """The staged events, about ``chunk_size`` lines of whole dossiers per transaction; then, in
        the transaction that ends the file, the dossiers that share an event id with another
        dossier of the file, and the merge of the counters."""
        progress, identity = self.progress, self.source.identity
        progress.phase = "folding"
        async with self.sessionmaker() as session:
            progress.staged_lines = await _staged_count(session, identity, progress.folded_through)
            # An event id under two dossiers is decided by which line came first (the API refuses
            # the later one): such dossiers are left for last, and taken in file order.
            entangled = await _sharing_event_ids(session, identity)
        while True:
            async with self.sessionmaker() as session:
                lines = await _next_dossiers(session, identity, progress.folded_through, chunk_size)
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
        await self._finish(entangled)

    async def _finish(self, entangled: set[str]) -> None:
        """The transaction that ends a file of events: ``entangled``, the dossiers left for last
        because they share an event id with another of the file (taken in file order), the new
        dossiers' entry into the statistics, the staging emptied and the checkpoint marked
        finished, together: a rerun does nothing."""
        identity = self.source.identity
        async with self.sessionmaker() as session, session.begin():
            problems: dict[int, Any] = {}
            if entangled:
                lines = await _lines_of(session, identity, entangled)
                self._count(await through_api(self.ingestion_of(session), lines), problems)
            staged = ImportStagedEvent.file_identity == identity
            await session.execute(delete(ImportStagedEvent).where(staged))
            # The merge changes the figures of every province with staged counters (the folded
            # dossiers of every chunk, this run's or a killed one's): their versions move with it.
            # Otherwise only the entangled dossiers' ingestion would name the transaction's
            # provinces, and a poller answered while the fold ran would keep that answer.
            touch(session, await provinces_of(session, await staged_units(session, identity)))
            await merge_staged_counters(session, identity)
            checkpoint = await self._commit_point(session, problems)
            checkpoint.finished = True
            await bump_version(session)

    async def _fold(self, session: AsyncSession, lines: list[StagedLine]) -> dict[int, LineResult]:
        """One chunk's outcomes: folded, or through the API when the fold's writes clash."""
        if not lines:
            return {}
        day_sums = DaySums()
        try:
            outcomes = await fold(self.ingestion_of(session), lines, day_sums)
            await stage_counters(session, self.source.identity, day_sums.sums)
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
        checkpoint = await _checkpoint(session, self.source)
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


async def _staged_count(session: AsyncSession, identity: str, after: str | None) -> int:
    query = select(func.count()).where(ImportStagedEvent.file_identity == identity)
    if after is not None:
        query = query.where(ImportStagedEvent.dossier_code > after)
    return int(await session.scalar(query) or 0)


async def _next_dossiers(
    session: AsyncSession, identity: str, after: str | None, size: int
) -> list[StagedLine]:
    """The staged lines of the next dossiers after ``after``: about ``size`` lines, whole dossiers."""
    mine = ImportStagedEvent.file_identity == identity
    later = ImportStagedEvent.dossier_code > after if after is not None else true()
    last = await session.scalar(
        select(ImportStagedEvent.dossier_code)
        .where(mine, later)
        .order_by(ImportStagedEvent.dossier_code, ImportStagedEvent.line)
        .offset(size - 1)
        .limit(1)
    )
    query = select(*STAGED_COLUMNS).where(mine, later)
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
