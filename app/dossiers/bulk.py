"""Years of history loaded from files: JSON Lines of events (the API's shape) or of DongBoHoSoMC
records, plain or gzipped, a chunk per transaction through the same ingestion as the API — so the
result is what the API would have made of the same lines, in any order.

Resumable: each chunk commits with its file's checkpoint (lines done, size of the rejects file), so
a load killed at any point continues on rerun from the last committed chunk; lines it had begun
again are duplicates, and the rejects file is cut back to what the checkpoint counted.
"""

import gzip
import hashlib
import json
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.data_version import bump_version
from app.core.errors import InvalidInput, Problem
from app.core.timezone import utcnow
from app.dossiers.ingestion.events import ingest
from app.dossiers.ingestion.records import ingest_records
from app.dossiers.ingestion.work import Sender
from app.dossiers.models import ImportCheckpoint

Kind = Literal["events", "records"]
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


Progress = Callable[[FileProgress], None]


def file_identity(path: Path) -> str:
    """The file's identity for its checkpoint: its size and the digest of its first megabyte (a
    file moved or renamed keeps its checkpoint; a different file does not get another's)."""
    digest = hashlib.sha256()
    with path.open("rb") as raw:
        digest.update(raw.read(_IDENTITY_BYTES))
    return f"{path.stat().st_size}:{digest.hexdigest()}"


def _open(path: Path) -> tuple[IO[bytes], IO[bytes]]:
    """(the file as read, the lines): gzip is recognised by its magic bytes, whatever the name."""
    raw = path.open("rb")
    if raw.read(2) == b"\x1f\x8b":
        raw.seek(0)
        return raw, gzip.GzipFile(fileobj=raw)  # type: ignore[return-value]
    raw.seek(0)
    return raw, raw


def detect_kind(path: Path) -> Kind:
    """Records name their dossier ``MaHoSo``; events carry an ``event_id``."""
    raw, lines = _open(path)
    with raw:
        for line in lines:
            if line.strip():
                try:
                    first = json.loads(line)
                except ValueError as exc:
                    raise InvalidInput(f"{path.name}: the first line is not JSON") from exc
                if isinstance(first, dict) and "MaHoSo" in first:
                    return "records"
                if isinstance(first, dict) and "event_id" in first:
                    return "events"
                break
    raise InvalidInput(f"{path.name}: neither dossier events (event_id) nor DongBoHoSoMC records (MaHoSo)")


def _chunks(lines: IO[bytes], skip: int, size: int) -> Iterator[list[tuple[int, bytes]]]:
    """(line number, line) in chunks, after the first ``skip`` lines; blank lines are left out."""
    chunk: list[tuple[int, bytes]] = []
    for number, line in enumerate(lines, start=1):
        if number <= skip:
            continue
        chunk.append((number, line))
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _parsed(chunk: list[tuple[int, bytes]]) -> tuple[list[int], list[Any], dict[int, str]]:
    """Line numbers and values of the JSON lines; the reason for each line that is not JSON."""
    numbers: list[int] = []
    values: list[Any] = []
    broken: dict[int, str] = {}
    for number, line in chunk:
        if not line.strip():
            continue
        try:
            values.append(json.loads(line))
            numbers.append(number)
        except ValueError as exc:
            broken[number] = f"not JSON: {exc}"
    return numbers, values, broken


async def _checkpoint(session: AsyncSession, identity: str, path: Path) -> ImportCheckpoint:
    found = await session.scalar(
        select(ImportCheckpoint).where(ImportCheckpoint.file_identity == identity).with_for_update()
    )
    if found is None:
        found = ImportCheckpoint(file_identity=identity, file_name=path.name, lines_done=0, rejects_bytes=0)
        session.add(found)
        await session.flush()
    return found


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
    sender_of: Callable[[AsyncSession], Sender],
    source: Source,
    *,
    chunk_size: int = DEFAULT_CHUNK,
    on_progress: Progress | None = None,
) -> FileProgress:
    """Load one file, a chunk per transaction; rejected lines go to ``source.rejects`` (JSON Lines:
    line number and problem). Blocking file reads are the point of this job: it runs alone."""
    path, kind, identity, rejects = source.path, source.kind, source.identity, source.rejects
    progress = FileProgress(path, kind, source.size)
    async with sessionmaker() as session, session.begin():
        checkpoint = await _checkpoint(session, identity, path)
        progress.lines_done = progress.resumed_from = checkpoint.lines_done
        kept_rejects = checkpoint.rejects_bytes
    with rejects.open("ab") as rejected:
        rejected.truncate(kept_rejects)  # what a killed run wrote past its last committed chunk
    raw, lines = _open(path)
    with raw, rejects.open("ab") as rejected:
        for chunk in _chunks(lines, progress.lines_done, chunk_size):
            numbers, values, not_json = _parsed(chunk)
            problems: dict[int, Any] = {number: {"detail": reason} for number, reason in not_json.items()}
            progress.outcomes["error"] += len(not_json)
            # As a request: committed whole with its checkpoint, or not at all (get_session's rule).
            async with sessionmaker() as session:
                sender = sender_of(session)
                for number, (status, problem) in zip(numbers, await _load(sender, kind, values), strict=True):
                    progress.outcomes[status] += 1
                    if problem is not None:
                        problems[number] = problem.model_dump(mode="json", exclude_none=True)
                rejected.writelines(_reject_line(number, problems[number]) for number in sorted(problems))
                rejected.flush()
                checkpoint = await _checkpoint(session, identity, path)
                checkpoint.lines_done = chunk[-1][0]
                checkpoint.rejects_bytes = rejected.tell()
                checkpoint.updated_at = utcnow()
                await bump_version(session)
                await session.commit()
            progress.lines_done = chunk[-1][0]
            progress.position = raw.tell()
            if on_progress is not None:
                on_progress(progress)
    return progress


async def _load(sender: Sender, kind: Kind, values: list[Any]) -> list[tuple[str, Problem | None]]:
    """Each value's outcome and problem, through the API's ingestion."""
    if kind == "events":
        return [(result.status, result.problem) for result in await ingest(sender, values)]
    return [(result.status, result.problem) for result in await ingest_records(sender, values)]


def _reject_line(number: int, problem: Any) -> bytes:
    return json.dumps({"line": number, "problem": problem}, ensure_ascii=False).encode() + b"\n"
