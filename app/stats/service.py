"""Statistics from counters: reading periods as prefix sums of the dossier counters.

The counters are written by ingestion (app.dossiers.counters); this reads them.
"""

from collections.abc import Iterable, Sequence
from datetime import date, datetime
from itertools import pairwise
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Date,
    Select,
    SQLColumnExpression,
    and_,
    bindparam,
    case,
    func,
    literal,
    or_,
    select,
)
from sqlalchemy.ext.asyncio import AsyncSession

from app.calendar.periods import Period
from app.core.db import plan_with_values
from app.core.errors import NotFound
from app.dossiers.counters import ALL, COUNTERS, NO_SECTOR, DossierCounter
from app.dossiers.lifecycle import Status
from app.dossiers.models import Dossier
from app.dossiers.open_dossiers import is_open, past_due
from app.stats.definitions import add, counts_from_prefixes
from app.stats.groups import Key, group_key
from app.units.models import Unit
from app.units.subtree import subtree

GROUPINGS = ("unit_level", "unit", "sector", "procedure")


async def unit_scope(session: AsyncSession, code: str | None) -> dict[str, str]:
    """The units a statistic covers, with their levels: ``code`` and its descendants
    (app.units.subtree), or all."""
    if code is None:
        return {code: level for code, level in await session.execute(select(Unit.code, Unit.level))}
    scope = subtree(code)
    found = {row.code: row.level for row in await session.execute(select(scope.c.code, scope.c.level))}
    if not found:
        raise NotFound(f"Unit {code!r} does not exist")
    return found


def _before(at: str) -> ColumnElement[bool]:
    """The counter rows whose sum is the prefix "before local day :{at}_day" (see ``_prefix_params``)."""
    grain, bucket = DossierCounter.grain, DossierCounter.bucket
    year_start, month_start, day = (
        bindparam(f"{at}_{part}", type_=Date) for part in ("year", "month", "day")
    )
    return or_(
        and_(grain == "y", bucket < year_start),
        and_(grain == "m", bucket >= year_start, bucket < month_start),
        and_(grain == "d", bucket >= month_start, bucket < day),
    )


def _prefix_params(at: str, day: date) -> dict[str, date]:
    return {f"{at}_year": date(day.year, 1, 1), f"{at}_month": day.replace(day=1), f"{at}_day": day}


def _period_statement(by_procedure: bool) -> Select[*tuple[Any, ...]]:
    """Prefix sums of every counter at the period's start and end, per unit (and procedure)."""
    at_start, at_end = _before("start"), _before("end")
    columns = [DossierCounter.unit_code, DossierCounter.sector_code, DossierCounter.procedure_code]
    sums = [func.sum(case((at_start, getattr(DossierCounter, c)), else_=0)) for c in COUNTERS] + [
        func.sum(case((at_end, getattr(DossierCounter, c)), else_=0)) for c in COUNTERS
    ]
    detail = (
        and_(DossierCounter.sector_code != ALL, DossierCounter.procedure_code != ALL)
        if by_procedure
        else and_(DossierCounter.sector_code == ALL, DossierCounter.procedure_code == ALL)
    )
    return (
        select(*columns, *sums)
        .where(
            DossierCounter.unit_code.in_(bindparam("units", expanding=True)), detail, or_(at_start, at_end)
        )
        .group_by(*columns)
    )


# Built once: composing 34 aggregates is most of a request's Python time otherwise.
_PERIOD_STATEMENTS = {by_procedure: _period_statement(by_procedure) for by_procedure in (False, True)}


def _dossier_group(
    units: dict[str, str], group_by: Sequence[str], unit: str, sector: str, procedure: str
) -> Key:
    """The group (``GROUPINGS``) of the dossiers of a unit of ``units``, a sector and a procedure."""
    values = {"unit_level": units[unit], "unit": unit, "sector": sector, "procedure": procedure}
    return group_key(values, group_by)


LiveRow = tuple[str, str, str, int, int]
"""(unit, sector, procedure, waiting for a supplement, open and past due) of dossiers open now."""


async def live_state(session: AsyncSession, units: dict[str, str], now: datetime) -> list[LiveRow]:
    """Dossiers open now, waiting or past due, per unit and procedure: a running period's
    `waiting_supplement` and `in_progress_overdue` are judged as of now (SPEC §5, E′ = min(E, now)).

    Read from the dossiers as they stand (their due dates include every pause so far), so that a
    dossier received a minute ago with a day to go is not overdue, and one whose due date passed
    a minute ago is."""
    waiting = case((Dossier.status == int(Status.waiting_supplement), 1), else_=0)
    overdue = case((past_due(now), 1), else_=0)
    await plan_with_values(session)
    rows = await session.execute(
        select(
            Dossier.unit_code,
            func.coalesce(Dossier.sector_code, NO_SECTOR),
            Dossier.procedure_code,
            func.sum(waiting),
            func.sum(overdue),
        )
        .where(
            Dossier.unit_code.in_(list(units)),
            is_open(),
            Dossier.received_at < now,
        )
        .group_by(Dossier.unit_code, Dossier.sector_code, Dossier.procedure_code)
        .order_by(Dossier.unit_code, Dossier.sector_code, Dossier.procedure_code)
    )
    return [(unit, sector, procedure, int(w or 0), int(o or 0)) for unit, sector, procedure, w, o in rows]


async def _add_due_in_period(
    session: AsyncSession,
    units: dict[str, str],
    period: Period,
    group_by: Sequence[str],
    rows: dict[Key, dict[str, int]],
    total: dict[str, int],
) -> None:
    """Dossiers whose due date (as it stands, pauses included) falls in the period, and how many of
    them were finished on time: the denominator some reports use (`on_time_of_due`)."""
    on_time = case((Dossier.on_time.is_(True), 1), else_=0)
    found = await session.execute(
        select(
            Dossier.unit_code,
            func.coalesce(Dossier.sector_code, NO_SECTOR),
            Dossier.procedure_code,
            func.count(),
            func.sum(on_time),
        )
        .where(
            Dossier.unit_code.in_(list(units)),
            Dossier.due_at >= period.start_at,
            Dossier.due_at < period.end_at,
        )
        .group_by(Dossier.unit_code, Dossier.sector_code, Dossier.procedure_code)
    )
    for unit, sector, procedure, due, due_on_time in found:
        key = _dossier_group(units, group_by, unit, sector, procedure)
        for counts in (rows.setdefault(key, dict.fromkeys(total, 0)), total):
            counts["due_in_period"] += int(due)
            counts["due_in_period_on_time"] += int(due_on_time or 0)


def as_of(period: Period, now: datetime) -> datetime:
    """E′ = min(E, now): the instant a period's open dossiers are judged at."""
    return min(period.end_at, now)


async def period_counts(
    session: AsyncSession,
    units: dict[str, str],
    period: Period,
    group_by: Sequence[str],
    now: datetime,
    live: list[LiveRow] | None = None,
) -> tuple[dict[Key, dict[str, int]], dict[str, int]]:
    """The counts of SPEC §5 per group and in total, for the units' dossiers over ``period``.

    A period still running judges waiting and overdue dossiers as of ``now`` (``live``, when the
    caller has already read it)."""
    by_procedure = "sector" in group_by or "procedure" in group_by
    params = {
        "units": list(units),
        **_prefix_params("start", period.start),
        **_prefix_params("end", period.end),
    }
    prefixes: dict[Key, tuple[dict[str, int], dict[str, int]]] = {}
    everything: tuple[dict[str, int], dict[str, int]] = ({}, {})
    width = len(COUNTERS)
    # A generic plan reads every bucket of the units and filters; with the dates it reads the few
    # year, month and day rows of the prefixes (1 ms instead of 6 at 1,000,000 dossiers).
    await plan_with_values(session)
    for row in await session.execute(_PERIOD_STATEMENTS[by_procedure], params):
        unit, sector, procedure = row[0], row[1], row[2]
        start = {c: int(v or 0) for c, v in zip(COUNTERS, row[3 : 3 + width], strict=True)}
        end = {c: int(v or 0) for c, v in zip(COUNTERS, row[3 + width :], strict=True)}
        group = prefixes.setdefault(_dossier_group(units, group_by, unit, sector, procedure), ({}, {}))
        for target, source in (
            (group[0], start),
            (group[1], end),
            (everything[0], start),
            (everything[1], end),
        ):
            add(target, source)
    empty = dict.fromkeys(COUNTERS, 0)
    rows = {key: counts_from_prefixes(s or empty, e or empty) for key, (s, e) in sorted(prefixes.items())}
    total = counts_from_prefixes(everything[0] or empty, everything[1] or empty)
    await _add_due_in_period(session, units, period, group_by, rows, total)
    if period.end_at > now:
        if live is None:
            live = await live_state(session, units, now)
        for counts in (*rows.values(), total):
            counts["waiting_supplement"] = counts["in_progress_overdue"] = 0
        for unit, sector, procedure, waiting, overdue in live:
            key = _dossier_group(units, group_by, unit, sector, procedure)
            for counts in (rows.setdefault(key, dict.fromkeys(total, 0)), total):
                counts["waiting_supplement"] += waiting
                counts["in_progress_overdue"] += overdue
    return rows, total


# --- Series: many contiguous periods in a few statements -------------------------------------------


def _bucket_sums(grain: str) -> Select[Any]:
    """Every counter of the units' rollup rows (all sectors and procedures) of one grain, summed over
    the units per bucket in [:low, :high): an index range per unit, whatever the history's length."""
    return (
        select(DossierCounter.bucket, *(func.sum(getattr(DossierCounter, c)) for c in COUNTERS))
        .where(
            DossierCounter.unit_code.in_(bindparam("units", expanding=True)),
            DossierCounter.sector_code == ALL,
            DossierCounter.procedure_code == ALL,
            DossierCounter.grain == grain,
            DossierCounter.bucket >= bindparam("low", type_=Date),
            DossierCounter.bucket < bindparam("high", type_=Date),
        )
        .group_by(DossierCounter.bucket)
    )


_BUCKET_SUMS = {grain: _bucket_sums(grain) for grain in ("y", "m", "d")}

Sums = list[int]
"""The counters in the order of ``COUNTERS``."""


async def _prefixes(session: AsyncSession, units: dict[str, str], days: Sequence[date]) -> dict[date, Sums]:
    """P(T) of every counter over the units for each day T (as ``_before``: the year rows before T's
    year, the month rows of its year before its month, the day rows of its month before T).

    Three statements for all the days — the year rows, the month rows and, for days other than a
    month's first, the day rows they need — summed over the units by the database, then added up per
    day here: the work grows with the buckets read, not with the days times the units."""
    years = {day: date(day.year, 1, 1) for day in days}
    months = {day: day.replace(day=1) for day in days}
    within_month = [day for day in days if day.day != 1]
    ranges = {
        "y": (date.min, max(years.values())),
        "m": (min(years.values()), max(months.values())),
        "d": (min(months[d] for d in within_month), max(within_month)) if within_month else None,
    }
    rows: dict[str, list[tuple[date, Sums]]] = {}
    await plan_with_values(session)
    for grain, bounds in ranges.items():
        rows[grain] = []
        if bounds is None or bounds[0] >= bounds[1]:
            continue
        params = {"units": list(units), "low": bounds[0], "high": bounds[1]}
        for bucket, *values in await session.execute(_BUCKET_SUMS[grain], params):
            rows[grain].append((bucket, [int(v or 0) for v in values]))
    month_rows: dict[int, list[tuple[date, Sums]]] = {}
    for bucket, values in rows["m"]:
        month_rows.setdefault(bucket.year, []).append((bucket, values))
    day_rows: dict[date, list[tuple[date, Sums]]] = {}
    for bucket, values in rows["d"]:
        day_rows.setdefault(bucket.replace(day=1), []).append((bucket, values))
    before_year = {
        start: _summed(values for bucket, values in rows["y"] if bucket < start)
        for start in set(years.values())
    }
    found: dict[date, Sums] = {}
    for day in days:
        found[day] = _summed(
            [
                before_year[years[day]],
                *(values for bucket, values in month_rows.get(day.year, []) if bucket < months[day]),
                *(values for bucket, values in day_rows.get(months[day], []) if bucket < day),
            ]
        )
    return found


def _summed(rows: Iterable[Sums]) -> Sums:
    total = [0] * len(COUNTERS)
    for values in rows:
        for position, value in enumerate(values):
            total[position] += value
    return total


def _period_index(
    instant: SQLColumnExpression[datetime | None], starts: Sequence[datetime], first: int
) -> ColumnElement[Any]:
    """Which of the contiguous periods beginning at ``starts`` (sorted) an instant at or after the
    first start falls in: a balanced CASE, so that each row costs log2(periods) comparisons."""
    if len(starts) == 1:
        return literal(first)
    middle = len(starts) // 2
    return case(
        (instant < starts[middle], _period_index(instant, starts[:middle], first)),
        else_=_period_index(instant, starts[middle:], first + middle),
    )


async def _due_per_period(
    session: AsyncSession, units: dict[str, str], periods: Sequence[Period]
) -> dict[int, tuple[int, int]]:
    """Per period (by position), the dossiers whose due date falls in it and how many of them were
    finished on time (``_add_due_in_period``), in one statement for all the periods."""
    on_time = case((Dossier.on_time.is_(True), 1), else_=0)
    index = _period_index(Dossier.due_at, [period.start_at for period in periods], 0)
    due = (
        select(index.label("period"), on_time.label("on_time"))
        .where(
            Dossier.unit_code.in_(list(units)),
            Dossier.due_at >= periods[0].start_at,
            Dossier.due_at < periods[-1].end_at,
        )
        .subquery()
    )
    found = await session.execute(
        select(due.c.period, func.count(), func.sum(due.c.on_time)).group_by(due.c.period)
    )
    return {int(period): (int(count), int(in_time or 0)) for period, count, in_time in found}


async def series_counts(
    session: AsyncSession, units: dict[str, str], periods: Sequence[Period], now: datetime
) -> list[dict[str, int]]:
    """The total counts of SPEC §5 for each of ``periods`` (contiguous, in order, as
    ``app.calendar.periods.series`` makes them) — the same as ``period_counts`` of each without
    groups, in a few statements for all of them: a series of 120 months reads each counter bucket
    once instead of once per month."""
    if not periods:
        return []
    if any(before.end != after.start for before, after in pairwise(periods)):
        raise ValueError("series_counts takes contiguous periods, in order")
    prefixes = await _prefixes(session, units, sorted({periods[0].start, *(p.end for p in periods)}))
    due = await _due_per_period(session, units, periods)
    live = await live_state(session, units, now) if periods[-1].end_at > now else []
    waiting_now = sum(waiting for *_key, waiting, _overdue in live)
    overdue_now = sum(overdue for *_key, _waiting, overdue in live)
    totals = []
    for position, period in enumerate(periods):
        start, end = (dict(zip(COUNTERS, prefixes[day], strict=True)) for day in (period.start, period.end))
        counts = counts_from_prefixes(start, end)
        counts["due_in_period"], counts["due_in_period_on_time"] = due.get(position, (0, 0))
        if period.end_at > now:
            counts["waiting_supplement"], counts["in_progress_overdue"] = waiting_now, overdue_now
        totals.append(counts)
    return totals
