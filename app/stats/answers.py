"""What each statistics endpoint answers, assembled from the counts (nothing of HTTP here)."""

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from app.calendar.periods import Interval, Period, Scheme
from app.core.config import Index766Settings
from app.stats import service
from app.stats.definitions import COUNT_NAMES, RATE_NAMES, percentage, rates
from app.stats.feedback import SATISFIED, feedback_counts, index_inputs, satisfaction_counts
from app.stats.groups import Key
from app.stats.index766 import scorecard
from app.stats.proposals import proposal_counts
from app.stats.schemas import (
    DossierSeries,
    DossierStats,
    FeedbackStats,
    Index766Scorecard,
    PeriodRead,
    ProposalCounts,
    ProposalStats,
    SeriesPoint,
)


@dataclass(frozen=True)
class Columns:
    """A table's answer, and the counts and rates it shows in this order (its CSV columns)."""

    answer: type[DossierStats] | type[ProposalStats] = DossierStats
    counts: tuple[str, ...] = COUNT_NAMES
    rates: tuple[str, ...] = RATE_NAMES


PROPOSAL_COLUMNS = Columns(ProposalStats, counts=tuple(ProposalCounts.model_fields), rates=())


@dataclass(frozen=True)
class Table:
    """A statistics table as counted: per group and in total, for a unit's subtree and a period."""

    unit: str | None
    period: PeriodRead
    group_by: list[str]
    rows: dict[Key, dict[str, int]]
    total: dict[str, int]
    columns: Columns = field(default_factory=Columns)

    def stats(self) -> DossierStats | ProposalStats:
        """The table as the API shows it: rates only where there are some; without group_by, only the
        total."""

        def rates_of(counts: dict[str, int]) -> dict[str, float | None]:
            return rates(counts) if self.columns.rates else {}

        return self.columns.answer.model_validate(
            {
                "unit": self.unit,
                "period": self.period,
                "group_by": self.group_by,
                "rows": [
                    {"key": dict(key), "counts": counts, "rates": rates_of(counts)}
                    for key, counts in self.rows.items()
                    if key
                ],
                "total": {"counts": self.total, "rates": rates_of(self.total)},
            }
        )


async def dossier_table(
    session: AsyncSession, unit: str | None, period: Period, group_by: list[str], now: datetime
) -> Table:
    """The counts of SPEC §5, open dossiers judged as of min(end, ``now``)."""
    units = await service.unit_scope(session, unit)
    rows, total = await service.period_counts(session, units, period, group_by, now)
    return Table(unit, PeriodRead.of(period, now), group_by, rows, total)


async def proposal_table(
    session: AsyncSession, unit: str | None, period: Period, group_by: list[str]
) -> Table:
    """Reform proposals submitted in the period: how many, and their summed yearly savings."""
    units = await service.unit_scope(session, unit)
    rows, total = await proposal_counts(session, set(units), period, group_by)
    return Table(unit, PeriodRead.of(period), group_by, rows, total, PROPOSAL_COLUMNS)


async def feedback_stats(
    session: AsyncSession, unit: str | None, period: Period, group_by: list[str], now: datetime
) -> FeedbackStats:
    """Feedback counts per group and in total, and the dossier satisfaction ratings of the period."""
    units = set(await service.unit_scope(session, unit))
    rows, total = await feedback_counts(session, units, period, group_by, now)
    ratings = await satisfaction_counts(session, units, period)
    satisfied = sum(ratings["by_level"][level] for level in SATISFIED)
    return FeedbackStats.model_validate(
        {
            "unit": unit,
            "period": PeriodRead.of(period, now),
            "group_by": group_by,
            "rows": [{"key": dict(key), "counts": counts} for key, counts in rows.items() if key],
            "total": {"counts": total},
            "satisfaction": {**ratings, "satisfied_share": percentage(satisfied, ratings["ratings"])},
        }
    )


async def index_766(
    session: AsyncSession, unit: str | None, period: Period, now: datetime, weights: Index766Settings
) -> Index766Scorecard:
    """The Decision 766 scorecard: each group's score and maximum, and the total of those computable."""
    units = await service.unit_scope(session, unit)
    _rows, total = await service.period_counts(session, units, period, [], now)
    inputs = await index_inputs(session, set(units), period, total)
    groups = scorecard(inputs, weights)
    computable = [g for g in groups if g["computable"]]
    return Index766Scorecard.model_validate(
        {
            "unit": unit,
            "period": PeriodRead.of(period, now),
            "groups": groups,
            "total": {
                "score": round(sum(g["score"] for g in computable), 2),
                "max_computable": sum(g["max"] for g in computable),
                "max": sum(g["max"] for g in groups),
            },
        }
    )


async def dossier_series(
    session: AsyncSession,
    unit: str | None,
    periods: list[Period],
    interval: Interval,
    scheme: Scheme,
    now: datetime,
) -> DossierSeries:
    """The total counts and rates of each period, for charts (a few statements for all of them)."""
    units = await service.unit_scope(session, unit)
    totals = await service.series_counts(session, units, periods, now)
    points = [
        SeriesPoint(period=PeriodRead.of(period, now), counts=counts, rates=rates(counts))
        for period, counts in zip(periods, totals, strict=True)
    ]
    return DossierSeries(unit=unit, interval=interval, scheme=scheme, points=points)
