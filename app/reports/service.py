"""The figures of the reform report, all taken from the statistics services."""

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.calendar.periods import Period, parse_period
from app.procedures.models import Sector
from app.proposals.models import ProposalKind
from app.reports.formatting import LEVEL_NAMES, LEVEL_ORDER
from app.stats import service as stats
from app.stats.definitions import rates
from app.stats.feedback import feedback_counts
from app.stats.proposals import proposal_counts
from app.units.models import Unit
from app.units.service import TWO_TIERS_SINCE

KIND_ORDER = (ProposalKind.simplify, ProposalKind.abolish, ProposalKind.reduce_fee)


@dataclass
class LevelFigures:
    """The dossier counts (SPEC §5) of one level of administration, or of all levels."""

    level: str
    name: str
    counts: dict[str, int]
    rates: dict[str, float | None]


@dataclass
class ProposalFigures:
    kind: str
    total: int
    by_level: list[tuple[str, int]]
    """(level name, count), highest level first."""
    by_sector: list[tuple[str, int]]
    """(sector name, count), most procedures first."""


@dataclass
class QuarterRates:
    label: str
    on_time: dict[str, float | None]
    online: dict[str, float | None]


@dataclass
class ReformReport:
    unit_code: str
    unit_name: str
    unit_level: str
    period: Period
    year: int
    proposals: list[ProposalFigures]
    levels: list[LevelFigures]
    total: LevelFigures
    feedback: dict[str, int]
    spans_the_reform: bool
    """The period runs across 1 July 2025: its district level ends inside it (the report says so)."""
    quarters: list[QuarterRates] = field(default_factory=list)


def _year_of(period: Period) -> int:
    """The year a period reports on (a report-scheme Q1 starts on 15 December of the year before)."""
    label_year = period.label[:4]
    return int(label_year) if ".." not in period.label else (period.end - timedelta(days=1)).year


def last_four_quarters(period: Period) -> list[Period]:
    """The quarter in which ``period`` ends, and the three before it, oldest first."""
    if "-Q" in period.label:
        year, quarter = int(period.label[:4]), int(period.label[-1])
    else:
        last = period.end - timedelta(days=1)
        year, quarter = last.year, (last.month - 1) // 3 + 1
    quarters = []
    for _ in range(4):
        quarters.append(parse_period(f"{year}-Q{quarter}", period.scheme))
        year, quarter = (year, quarter - 1) if quarter > 1 else (year - 1, 4)
    return quarters[::-1]


def levels_in_force(period: Period) -> tuple[str, ...]:
    """The levels of administration that exist in ``period``, highest first: province, district
    and commune, or only province and commune for a period that starts on or after 1 July 2025,
    when the district level was abolished."""
    if period.start >= TWO_TIERS_SINCE:
        return tuple(level for level in LEVEL_ORDER if level != "district")
    return LEVEL_ORDER


def spans_the_reform(period: Period) -> bool:
    """Whether ``period`` starts with three levels and ends with two."""
    return period.start < TWO_TIERS_SINCE < period.end


async def _levels(
    session: AsyncSession, units: dict[str, str], period: Period, now: datetime
) -> tuple[list[LevelFigures], LevelFigures]:
    rows, total = await stats.period_counts(session, units, period, ["unit_level"], now)
    present = set(units.values())
    figures = []
    for level in levels_in_force(period):
        if level not in present:
            continue
        counts = rows.get((("unit_level", level),)) or dict.fromkeys(total, 0)
        figures.append(LevelFigures(level, LEVEL_NAMES[level], counts, rates(counts)))
    return figures, LevelFigures("all", "tổng", total, rates(total))


async def _proposals(session: AsyncSession, units: set[str], year: Period) -> list[ProposalFigures]:
    groups, _ = await proposal_counts(session, units, year, ["kind", "level", "sector"])
    counted = [(dict(key), value["count"]) for key, value in groups.items()]
    sector_codes = {key["sector"] for key, _ in counted}
    sector_names = {
        code: name
        for code, name in await session.execute(
            select(Sector.code, Sector.name).where(Sector.code.in_(sector_codes))
        )
    }
    figures = []
    for kind in KIND_ORDER:
        levels: dict[str, int] = defaultdict(int)
        sectors: dict[str, int] = defaultdict(int)
        for key, count in counted:
            if key["kind"] == kind:
                levels[key["level"]] += count
                sectors[sector_names.get(key["sector"], key["sector"])] += count
        figures.append(
            ProposalFigures(
                kind=kind.value,
                total=sum(levels.values()),
                by_level=[(LEVEL_NAMES[level], levels[level]) for level in LEVEL_ORDER if level in levels],
                # The sectors with most procedures first, as a press release would list them.
                by_sector=sorted(sectors.items(), key=lambda item: (-item[1], item[0])),
            )
        )
    return figures


async def reform_report(
    session: AsyncSession, unit_code: str, period: Period, now: datetime, with_quarters: bool = False
) -> ReformReport:
    """Everything the report says, for ``unit_code`` and its descendants over ``period``."""
    units = await stats.unit_scope(session, unit_code)
    unit = (await session.execute(select(Unit.name, Unit.level).where(Unit.code == unit_code))).one()
    year = _year_of(period)
    levels, total = await _levels(session, units, period, now)
    _groups, feedback = await feedback_counts(session, set(units), period, [], now)
    report = ReformReport(
        unit_code=unit_code,
        unit_name=unit.name,
        unit_level=unit.level,
        period=period,
        year=year,
        proposals=await _proposals(session, set(units), parse_period(str(year), period.scheme)),
        levels=levels,
        total=total,
        feedback=feedback,
        spans_the_reform=spans_the_reform(period),
    )
    if with_quarters:
        for quarter in last_four_quarters(period):
            quarter_levels, _ = await _levels(session, units, quarter, now)
            report.quarters.append(
                QuarterRates(
                    label=quarter.label,
                    on_time={f.level: f.rates["on_time"] for f in quarter_levels},
                    online={f.level: f.rates["online"] for f in quarter_levels},
                )
            )
    return report
