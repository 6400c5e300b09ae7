from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, WithJsonSchema

from app.calendar.periods import Interval, Period, Scheme


class PeriodRead(BaseModel):
    label: str = Field(examples=["2023-Q3"])
    scheme: Scheme
    start: datetime = Field(description="First instant, Vietnam time")
    end: datetime = Field(description="First instant after the period (exclusive)")
    as_of: datetime = Field(
        description="E′ = min(end, now): the instant open dossiers are judged at (waiting for papers, "
        "past due); before `end` while the period is still running"
    )

    @classmethod
    def of(cls, period: Period, now: datetime | None = None) -> "PeriodRead":
        as_of = period.end_at if now is None else min(period.end_at, now)
        return cls(
            label=period.label, scheme=period.scheme, start=period.start_at, end=period.end_at, as_of=as_of
        )


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
        description="Percentages, 2 decimals, null when the denominator is 0: on_time = resolved_on_time / "
        "total (district reports); on_time_766 = (resolved_on_time + open within the deadline) / total "
        "(Decision 766); online = online / total; on_time_of_resolved = resolved_on_time / resolved "
        "(reports of the work finished in the period)"
    )


_DISTRICT_COUNTS: dict[str, JsonValue] = {
    "carried_over": 10, "received": 1463, "received_direct": 11, "received_online": 1452,
    "received_postal": 0, "total": 1473, "resolved_on_time": 1465, "resolved_early": 1465,
    "resolved_late": 3, "resolved": 1468, "withdrawn": 0, "in_progress": 5, "waiting_supplement": 0,
    "in_progress_overdue": 0, "online": 1462, "online_partial": 553, "online_full": 909, "refused": 0,
}  # fmt: skip


class DossierStats(BaseModel):
    """Kiến Thụy, third quarter of 2023, district level: the figures of its press release."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "unit": "313",
                    "period": {
                        "label": "2023-Q3",
                        "scheme": "calendar",
                        "start": "2023-07-01T00:00:00+07:00",
                        "end": "2023-10-01T00:00:00+07:00",
                    },
                    "group_by": ["unit_level"],
                    "rows": [
                        {
                            "key": {"unit_level": "district"},
                            "counts": _DISTRICT_COUNTS,
                            "rates": {"on_time": 99.46, "on_time_766": 99.8, "online": 99.25},
                        }
                    ],
                    "total": {
                        "counts": _DISTRICT_COUNTS,
                        "rates": {"on_time": 99.46, "on_time_766": 99.8, "online": 99.25},
                    },
                }
            ]
        }
    )

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

Number = Annotated[int | float, WithJsonSchema({"type": "number"})]
"""A number written as it was computed: ``18`` stays ``18``, ``12.5`` stays ``12.5``."""


class FeedbackStatsRow(BaseModel):
    key: dict[str, str] = Field(examples=[{"channel": "hotline"}])
    counts: Counts


class FeedbackStatsTotal(BaseModel):
    counts: Counts = Field(
        description="received (in the period), answered_on_time, answered_late, rejected (in the period), "
        "open and overdue (at E′ = min(end, now): a running period is judged as of now)"
    )


class SatisfactionStats(BaseModel):
    ratings: int = Field(description="Dossier ratings given in the period")
    by_level: dict[str, int] = Field(
        description="Ratings per level: very_satisfied, satisfied, neutral, unsatisfied, very_unsatisfied"
    )
    satisfied_share: float | None = Field(
        description="Percentage of ratings satisfied or very satisfied, 2 decimals; null without ratings"
    )


class FeedbackStats(BaseModel):
    unit: str | None = Field(description="The unit whose subtree is counted; null for every unit")
    period: PeriodRead
    group_by: list[str]
    rows: list[FeedbackStatsRow]
    total: FeedbackStatsTotal
    satisfaction: SatisfactionStats


class Index766Group(BaseModel):
    group: str = Field(examples=["progress"])
    max: Number
    score: float | None = Field(description="Null when this service's data cannot score the group")
    computable: bool
    inputs: dict[str, Number | list[float] | None] = Field(
        description="The figures the formula takes, by name"
    )
    formula: str
    reason: Annotated[str | None, WithJsonSchema({"type": "string"})] = Field(
        default=None,
        exclude_if=lambda reason: reason is None,
        description="Why the group has no score; only present then",
    )


class Index766Total(BaseModel):
    score: float = Field(description="The sum of the computable groups' scores")
    max_computable: Number = Field(description="The most the computable groups can score")
    max: Number = Field(description="The most all groups can score")


class Index766Scorecard(BaseModel):
    unit: str | None = Field(description="The unit whose subtree is scored; null for every unit")
    period: PeriodRead
    groups: list[Index766Group]
    total: Index766Total
