from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from app.stats.periods import Interval, Period, Scheme


class PeriodRead(BaseModel):
    label: str = Field(examples=["2023-Q3"])
    scheme: Scheme
    start: datetime = Field(description="First instant, Vietnam time")
    end: datetime = Field(description="First instant after the period (exclusive)")

    @classmethod
    def of(cls, period: Period) -> "PeriodRead":
        return cls(label=period.label, scheme=period.scheme, start=period.start_at, end=period.end_at)


Counts = dict[str, int]
Rates = dict[str, float | None]


class StatsRow(BaseModel):
    key: dict[str, str] = Field(examples=[{"unit_level": "district"}])
    counts: Counts
    rates: Rates


class StatsTotal(BaseModel):
    counts: Counts = Field(
        description="carried_over, received (and _direct, _online, _postal), total, resolved_on_time, "
        "resolved_early, resolved_late, resolved, withdrawn, in_progress, waiting_supplement, "
        "in_progress_overdue, online, online_partial, online_full, refused"
    )
    rates: Rates = Field(
        description="on_time, on_time_766, online: percentages, 2 decimals, null when total is 0"
    )


class DossierStats(BaseModel):
    unit: str | None = Field(description="The unit whose subtree is counted; null for every unit")
    period: PeriodRead
    group_by: list[str]
    rows: list[StatsRow]
    total: StatsTotal


class SeriesPoint(BaseModel):
    period: PeriodRead
    counts: Counts
    rates: Rates


class DossierSeries(BaseModel):
    unit: str | None
    interval: Interval
    scheme: Scheme
    points: list[SeriesPoint]


Format = Literal["json", "csv"]
