"""The dossier counters and their writer: marks summed into counter rows (SPEC §5).

Every writer sums marks (``facts_marks``, app.dossiers.facts) by unit, sector, procedure and day
(``add_day_marks``), and one statement rolls day sums up into the counter rows (``_rolled_up``): a
request adds its own as it commits (``add_day_sums``); a bulk load stages its chunks' and merges
them when its file ends (``merge_staged_counters``); ``rebuild_counters`` recomputes them all from
the dossiers' facts.
app.stats reads periods from them as prefix sums (app.stats.definitions).
"""

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from datetime import date
from itertools import islice
from typing import Any

from sqlalchemy import (
    BigInteger,
    Date,
    Integer,
    String,
    Table,
    bindparam,
    delete,
    func,
    select,
    text,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from app.calendar.working_time import WorkingCalendar
from app.core.base import Base
from app.core.db import insert_records, plan_with_values, raw_driver, rows_of_each
from app.core.timezone import local_day
from app.dossiers.facts import FACT_FIELDS, DossierFacts, facts_marks
from app.dossiers.history import PAUSE_EVENTS, pauses_of
from app.dossiers.lifecycle import Mark
from app.dossiers.models import Dossier, DossierEvent

CHANNELS = ("direct", "postal", "online_partial", "online_full")
COUNTERS = (
    *(f"received_{channel}" for channel in CHANNELS),
    *(f"ended_{channel}" for channel in CHANNELS),
    "finished_on_time",
    "finished_early",
    "finished_late",
    "withdrawn",
    "refused",
    "waiting_start",
    "waiting_end",
    "overdue_start",
    "overdue_end",
)
# A dossier whose procedure version named no sector (older data) is counted under this sector.
NO_SECTOR = "-"
# The rollup value of the sector and procedure columns: the row counts every sector/procedure.
ALL = "*"


class CounterValues:
    """The counters of a row, in the order of ``COUNTERS``."""

    received_direct: Mapped[int] = mapped_column(Integer, default=0)
    received_postal: Mapped[int] = mapped_column(Integer, default=0)
    received_online_partial: Mapped[int] = mapped_column(Integer, default=0)
    received_online_full: Mapped[int] = mapped_column(Integer, default=0)
    ended_direct: Mapped[int] = mapped_column(Integer, default=0)
    ended_postal: Mapped[int] = mapped_column(Integer, default=0)
    ended_online_partial: Mapped[int] = mapped_column(Integer, default=0)
    ended_online_full: Mapped[int] = mapped_column(Integer, default=0)
    finished_on_time: Mapped[int] = mapped_column(Integer, default=0)
    finished_early: Mapped[int] = mapped_column(Integer, default=0)
    finished_late: Mapped[int] = mapped_column(Integer, default=0)
    withdrawn: Mapped[int] = mapped_column(Integer, default=0)
    refused: Mapped[int] = mapped_column(Integer, default=0)
    waiting_start: Mapped[int] = mapped_column(Integer, default=0)
    waiting_end: Mapped[int] = mapped_column(Integer, default=0)
    overdue_start: Mapped[int] = mapped_column(Integer, default=0)
    overdue_end: Mapped[int] = mapped_column(Integer, default=0)


class DossierCounter(CounterValues, Base):
    """Counts of dated happenings (receptions, finishes, pauses, …) per unit, sector and procedure.

    Each happening is counted in the bucket of its local day, month and year (``grain`` d, m, y), so
    any prefix sum "before day T" reads at most a year row per past year, eleven month rows and
    thirty day rows per unit, however many dossiers there are. Rows with sector and procedure
    ``*`` sum all of them for their unit. ``COUNTERS`` names the counters; app.stats.definitions
    reads periods from them.
    """

    __tablename__ = "dossier_counters"
    # Updated in place all the time: room in each page lets PostgreSQL skip index writes (HOT).
    __table_args__ = ({"postgresql_with": {"fillfactor": 70}},)

    unit_code: Mapped[str] = mapped_column(String(32), primary_key=True)
    sector_code: Mapped[str] = mapped_column(String(32), primary_key=True)
    procedure_code: Mapped[str] = mapped_column(String(64), primary_key=True)
    grain: Mapped[str] = mapped_column(String(1), primary_key=True)
    bucket: Mapped[date] = mapped_column(Date, primary_key=True)


_TABLE: Table = DossierCounter.__table__  # type: ignore[assignment]
_KEY = ("unit_code", "sector_code", "procedure_code", "grain", "bucket")

MarkOf = tuple[str, str | None, str, Mark]
"""(unit, sector, procedure, mark)."""


_POSITION = {name: position for position, name in enumerate(COUNTERS)}


# --- staged: a bulk load's counters, merged into the counters set-based when its fold ends ---------

DayKey = tuple[str, str, str, date]
"""(unit, sector, procedure, local day)."""


class StagedCounter(CounterValues, Base):
    """Counter increments of a bulk load (app.dossiers.bulk) by unit, sector, procedure and day,
    appended with each chunk folded; ``merge_staged_counters`` adds them to the counters (every
    grain, and the rollups) in one statement when the file's fold ends."""

    __tablename__ = "import_staged_counters"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    file_identity: Mapped[str] = mapped_column(String(100), index=True)
    unit_code: Mapped[str] = mapped_column(String(32))
    sector_code: Mapped[str] = mapped_column(String(32))
    procedure_code: Mapped[str] = mapped_column(String(64))
    day: Mapped[date] = mapped_column(Date)


_STAGED: Table = StagedCounter.__table__  # type: ignore[assignment]
# A staged row as a tuple: the file, the ``DayKey`` and the counters.
_STAGED_COLUMNS = ("file_identity", "unit_code", "sector_code", "procedure_code", "day", *COUNTERS)


def add_day_marks(sums: dict[DayKey, list[int]], marks: Iterable[MarkOf]) -> None:
    """Add marks to sums by unit, sector, procedure and local day (one entry per mark, not six)."""
    width = len(COUNTERS)
    for unit, sector, procedure, (counter, instant, delta) in marks:
        key = (unit, sector or NO_SECTOR, procedure, local_day(instant))
        values = sums.get(key)
        if values is None:
            values = sums[key] = [0] * width
        values[_POSITION[counter]] += delta


async def stage_counters(session: AsyncSession, identity: str, sums: dict[DayKey, list[int]]) -> None:
    """A chunk's day sums appended to the file's staged counters (COPY on PostgreSQL)."""
    records = ((identity, *key, *values) for key, values in sums.items() if any(values))
    # A slice at a time: the rows of a rebuild's millions of sums are never all in memory at once.
    while chunk := list(islice(records, _STAGE_CHUNK)):
        await insert_records(session, _STAGED, _STAGED_COLUMNS, chunk)


_STAGE_CHUNK = 50_000


async def staged_units(session: AsyncSession, identity: str) -> set[str]:
    """The units whose counters ``merge_staged_counters`` will change for this identity: their
    provinces' data versions must move in the transaction that merges (app.core.data_version)."""
    found = await session.scalars(
        select(StagedCounter.unit_code).where(StagedCounter.file_identity == identity).distinct()
    )
    return set(found)


async def merge_staged_counters(session: AsyncSession, identity: str) -> None:
    """The file's staged counters added to the counters in one statement (``_rolled_up``), then
    removed.

    It names no data version: the caller moves those of the provinces of ``staged_units`` (a bulk
    load), or the global one (a rebuild, which changes every counter)."""
    await _merge(session, "file_identity = :identity", {"identity": identity})


async def merge_staged_counters_of(session: AsyncSession, identity: str, units: Sequence[str]) -> None:
    """As ``merge_staged_counters``, for the staged counters of these units only: the counter rows
    of a unit (its rollups included) are changed by its own staged rows alone, so merges of
    different units in transactions at once never wait on one another."""
    where = "file_identity = :identity AND unit_code IN :units"
    await _merge(session, where, {"identity": identity, "units": list(units)}, lists=("units",))


async def _merge(
    session: AsyncSession, where: str, parameters: dict[str, Any], *, lists: tuple[str, ...] = ()
) -> None:
    """The staged rows ``where`` selects rolled up into the counters (``_rolled_up``), then removed;
    ``lists`` names the parameters that are lists of values (``IN :name``)."""
    postgresql = session.get_bind().dialect.name == "postgresql"
    if postgresql:
        # One grouping of every staged row: in memory, rather than spilled in batches to disk.
        await session.execute(text("SET LOCAL work_mem = '256MB'"))
    source = f"(SELECT * FROM import_staged_counters WHERE {where}) AS s"
    removed = f"DELETE FROM import_staged_counters WHERE {where}"
    for statement in (_rolled_up(source, postgresql=postgresql), removed):
        clause = text(statement).bindparams(*(bindparam(name, expanding=True) for name in lists))
        await session.execute(clause, parameters)


async def add_day_sums(session: AsyncSession, sums: dict[DayKey, list[int]]) -> None:
    """Day sums (``add_day_marks``) added to the counters in the caller's transaction (a request's
    ingestion): on PostgreSQL in one statement, the day rows sent as one array per column; on
    SQLite (one writer at a time) staged and merged as a bulk load's are."""
    rows = [(key, values) for key, values in sums.items() if any(values)]
    if not rows:
        return
    if session.get_bind().dialect.name == "postgresql":
        keys, increments = zip(*rows, strict=True)
        # Lists, not tuples: asyncpg encodes lists fastest.
        columns = [list(column) for column in (*zip(*keys, strict=True), *zip(*increments, strict=True))]
        async with raw_driver(session, ADD_DAY_SUMS) as driver:
            await driver.execute(ADD_DAY_SUMS, *columns)
        return
    await stage_counters(session, _LIVE, dict(rows))
    await merge_staged_counters(session, _LIVE)


_LIVE = "live"
"""The staged counters' name for a request's day sums on SQLite, whose writers never overlap."""


def _rolled_up(source: str, *, postgresql: bool) -> str:
    """The statement that adds the day sums of ``source`` (a relation ``s``: unit_code, sector_code,
    procedure_code, day and the counters) to the counters: each in its day, month and year, for its
    procedure and for all (sector and procedure ``ALL``), the rows whose sums are all zero left out.

    On PostgreSQL the rows are taken in code-point order (``lock_order``), the order in which every
    writer of the counters (a request, a bulk load's merge, a rebuild) locks them, so that two
    cannot deadlock. SQLite has one writer."""
    # A day truncated as a timestamp without a zone: as a date alone it would be taken as a
    # timestamptz, at midnight of the session's zone, and cost nearly twice as much (0.51 µs
    # against 0.28).
    month, year = (
        ("date_trunc('month', s.day::timestamp)::date", "date_trunc('year', s.day::timestamp)::date")
        if postgresql
        else ("date(s.day, 'start of month')", "date(s.day, 'start of year')")
    )
    sums = ", ".join(f"sum(s.{c})" for c in COUNTERS)
    nonzero = " OR ".join(f"sum(s.{c}) <> 0" for c in COUNTERS)
    in_lock_order = lock_order("m") if postgresql else ""
    return f"""
        WITH g (grain) AS (VALUES ('d'), ('m'), ('y')), r (whole) AS (VALUES (0), (1))
        INSERT INTO dossier_counters ({", ".join((*_KEY, *COUNTERS))})
        SELECT * FROM (
            SELECT s.unit_code AS unit_code,
                   CASE WHEN r.whole = 1 THEN '{ALL}' ELSE s.sector_code END AS sector_code,
                   CASE WHEN r.whole = 1 THEN '{ALL}' ELSE s.procedure_code END AS procedure_code,
                   g.grain AS grain,
                   CASE g.grain WHEN 'd' THEN s.day WHEN 'm' THEN {month} ELSE {year} END AS bucket,
                   {sums}
            FROM {source} CROSS JOIN g CROSS JOIN r
            GROUP BY 1, 2, 3, 4, 5
            HAVING {nonzero}
        ) AS m
        WHERE true
        {in_lock_order}
        ON CONFLICT ({", ".join(_KEY)}) DO UPDATE SET
        {", ".join(f"{c} = dossier_counters.{c} + excluded.{c}" for c in COUNTERS)}
    """


def lock_order(relation: str) -> str:
    """The ORDER BY in which every writer of the counters takes their rows (``_rolled_up``):
    code-point order of the key's columns, one after the other.

    The text columns are compared joined, by a separator that sorts before every character a code
    may hold (app.core.codes; '*' and '-'): the same order as column by column, with one comparison
    of text where there were four (a merge's 106,422 rows sorted in 160 ms, not 370). The columns
    after it only break ties that no code can make, so the order stays total."""
    joined = " || chr(1) || ".join(f"{relation}.{name}" for name in _KEY[:4])
    column_by_column = ", ".join(f'{relation}.{name} COLLATE "C"' for name in _KEY[:4])
    return f'ORDER BY ({joined}) COLLATE "C", {relation}.bucket, {column_by_column}'


_DAY_COLUMNS = ("unit_code", "sector_code", "procedure_code", "day", *COUNTERS)
_DAY_TYPES = ("varchar", "varchar", "varchar", "date", *("integer",) * len(COUNTERS))
ADD_DAY_SUMS = _rolled_up(
    "unnest("
    + ", ".join(f"${n}::{kind}[]" for n, kind in enumerate(_DAY_TYPES, start=1))
    + f") AS s ({', '.join(_DAY_COLUMNS)})",
    postgresql=True,
)
"""PostgreSQL: day sums, one array per column of ``_DAY_COLUMNS``, added to the counters."""


# --- rebuilding from the facts ---------------------------------------------------------------


async def load_facts(session: AsyncSession, dossiers: Sequence[Sequence[Any]]) -> list[DossierFacts]:
    """What happened to each dossier, from its row of ``COUNTED_COLUMNS`` and its applied pause
    events."""
    pause_events: dict[str, list[tuple[str, Any]]] = defaultdict(list)
    codes = [code for code, paused, *_ in dossiers if paused]
    for start in range(0, len(codes), 1000):
        # One index look-up per dossier: as `IN (…)`, a rebuild of a million dossiers whose events
        # were never analyzed scanned every event for each thousand dossiers (189 s → 69 s).
        found = rows_of_each(
            session,
            DossierEvent.dossier_code,
            codes[start : start + 1000],
            _PAUSE_COLUMNS,
            DossierEvent.type.in_([kind.value for kind in PAUSE_EVENTS]),
            DossierEvent.status == "applied",
        )
        event = found.selected_columns
        rows = await session.execute(found.order_by(event.dossier_code, event.occurred_at, event.id))
        for code, kind, at, _id in rows:
            pause_events[code].append((kind, at))
    facts = []
    for code, _paused, *fields in dossiers:
        fact = DossierFacts(*fields)
        if code in pause_events:
            fact.pauses = pauses_of(pause_events[code], fact.ended_at)
        facts.append(fact)
    return facts


_PAUSE_COLUMNS = [DossierEvent.dossier_code, DossierEvent.type, DossierEvent.occurred_at, DossierEvent.id]

REBUILD_CHUNK = 2000
_DOSSIERS: Table = Dossier.__table__  # type: ignore[assignment]
COUNTED_COLUMNS = [_DOSSIERS.c[name] for name in ("code", "supplement_count", *FACT_FIELDS)]
"""A dossier as the counting reads it (``load_facts``): its code, whether it was ever paused, its
facts: about half of its row's columns."""
_CODE = _DOSSIERS.c.code


async def rebuild_counters(
    session: AsyncSession, calendar: WorkingCalendar, progress: Callable[[int, int], None] | None = None
) -> int:
    """Recompute every counter from the dossiers' facts; returns the number of dossiers.

    The dossiers are read once, in code order, and their marks summed in memory by unit, sector,
    procedure and day (``add_day_marks``: one entry per day row, however many dossiers share it);
    the sums are then staged (COPY on PostgreSQL) and spread into every grain and rollup of the
    emptied counters by one SQL statement (``merge_staged_counters``).
    """
    if session.get_bind().dialect.name == "postgresql":
        # Ingestion writes counters last in its transaction: holding them makes it wait, so no
        # batch is counted twice or lost while the counters are rebuilt. A bulk load's fold
        # stages the counters of the dossiers it commits: held too, for the same reason.
        await session.execute(text("LOCK TABLE dossier_counters, import_staged_counters IN EXCLUSIVE MODE"))
    # Its look-ups planned with their values and never compiled (JIT), as ingestion's are.
    await plan_with_values(session)
    await session.execute(delete(DossierCounter))
    # Every dossier is counted here, those of a bulk load not merged yet included.
    await session.execute(delete(StagedCounter))
    total = int(await session.scalar(select(func.count()).select_from(Dossier)) or 0)
    sums: dict[DayKey, list[int]] = {}
    done = 0
    after = ""
    while True:
        # Rows of the columns counted, not ORM objects or states: each dossier is read once.
        found = await session.execute(
            select(*COUNTED_COLUMNS).where(after < _CODE).order_by(_CODE).limit(REBUILD_CHUNK)
        )
        dossiers = found.all()
        if not dossiers:
            break
        facts = await load_facts(session, dossiers)
        marks = (
            (fact.unit_code, fact.sector_code, fact.procedure_code, mark)
            for fact in facts
            for mark in facts_marks(fact, calendar)
        )
        add_day_marks(sums, marks)
        if len(sums) >= _SUMS_HELD:
            # Staged and forgotten: the merge adds up whatever is staged, so memory stays bounded.
            await stage_counters(session, _REBUILD, sums)
            sums.clear()
        done += len(dossiers)
        after = dossiers[-1].code
        if progress is not None:
            progress(done, total)
    await stage_counters(session, _REBUILD, sums)
    await merge_staged_counters(session, _REBUILD)
    return done


_SUMS_HELD = 500_000
_REBUILD = "(rebuild)"
"""The staging identity of a rebuild's sums (a file's is its size and digest)."""
