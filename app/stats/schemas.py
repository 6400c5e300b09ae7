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


class DossierCounts(BaseModel):
    """The counts of SPEC §5 for a unit and period [S, E); E′ = min(E, now) judges open dossiers."""

    # A count computed but not declared here is an error, not a figure silently left out.
    model_config = ConfigDict(extra="forbid")

    carried_over: int = Field(description="Received before S and not ended (finished or withdrawn) before S")
    received: int = Field(description="Received in [S, E)")
    received_direct: int = Field(description="Of `received`: at the desk")
    received_online: int = Field(description="Of `received`: online")
    received_postal: int = Field(description="Of `received`: by post")
    total: int = Field(description="carried_over + received")
    resolved_on_time: int = Field(description="Finished in [S, E) on time (early included)")
    resolved_early: int = Field(description="The early part of resolved_on_time")
    resolved_late: int = Field(description="Finished in [S, E) late")
    resolved: int = Field(description="resolved_on_time + resolved_late")
    withdrawn: int = Field(description="Withdrawn in [S, E)")
    in_progress: int = Field(description="total − resolved − withdrawn: open at E")
    waiting_supplement: int = Field(description="Open at E′ and waiting for a supplement")
    in_progress_overdue: int = Field(description="Open at E′, not waiting, its due date before E′")
    online: int = Field(description="Of `total`: online")
    online_partial: int = Field(description="Of `online`: partly online")
    online_full: int = Field(description="Of `online`: fully online")
    refused: int = Field(description="Refused in [S, E); counted nowhere else")
    due_in_period: int = Field(description="Due (as the due date stands, pauses included) in [S, E)")
    due_in_period_on_time: int = Field(description="Of `due_in_period`: finished on time")


Rate = Annotated[float | None, Field(description="A percentage, 2 decimals; null when the denominator is 0")]


class DossierRates(BaseModel):
    """Percentages with two decimals, rounded half up; null when the denominator is 0."""

    model_config = ConfigDict(extra="forbid")

    on_time: Rate = Field(description="resolved_on_time / total (district reports)")
    on_time_766: Rate = Field(
        description="(resolved_on_time + open within the deadline) / total (Decision 766)"
    )
    online: Rate = Field(description="online / total")
    on_time_of_resolved: Rate = Field(
        description="resolved_on_time / resolved (reports of the work finished in the period)"
    )
    on_time_of_due: Rate = Field(
        description="due_in_period_on_time / due_in_period (reports of the deadlines in the period)"
    )


class StatsRow(BaseModel):
    key: dict[str, str] = Field(examples=[{"unit_level": "district"}])
    counts: DossierCounts
    rates: DossierRates


class StatsTotal(BaseModel):
    counts: DossierCounts
    rates: DossierRates


_DISTRICT_COUNTS: dict[str, JsonValue] = {
    "carried_over": 10, "received": 1463, "received_direct": 11, "received_online": 1452,
    "received_postal": 0, "total": 1473, "resolved_on_time": 1465, "resolved_early": 1465,
    "resolved_late": 3, "resolved": 1468, "withdrawn": 0, "in_progress": 5, "waiting_supplement": 0,
    "in_progress_overdue": 0, "online": 1462, "online_partial": 553, "online_full": 909, "refused": 0,
}  # fmt: skip


class StatsTable(BaseModel):
    """What a statistics table is about: a unit's subtree, a period, and the groups of its rows."""

    unit: str | None = Field(description="The unit whose subtree is counted; null for every unit")
    period: PeriodRead
    group_by: list[str]


class DossierStats(StatsTable):
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

    rows: list[StatsRow]
    total: StatsTotal


class ProposalCounts(BaseModel):
    model_config = ConfigDict(extra="forbid")

    count: int = Field(description="Proposals submitted in the period")
    savings_vnd: int = Field(description="Their summed yearly savings (cost before − cost after), VND")


class NoRates(BaseModel):
    """Proposals have no rates: always empty, for the same shape as the dossier tables."""

    model_config = ConfigDict(extra="forbid")


class ProposalStatsRow(BaseModel):
    key: dict[str, str] = Field(examples=[{"kind": "simplify"}])
    counts: ProposalCounts
    rates: NoRates


class ProposalStatsTotal(BaseModel):
    counts: ProposalCounts
    rates: NoRates


class ProposalStats(StatsTable):
    rows: list[ProposalStatsRow]
    total: ProposalStatsTotal


class SeriesPoint(BaseModel):
    period: PeriodRead
    counts: DossierCounts
    rates: DossierRates


class DossierSeries(BaseModel):
    unit: str | None
    interval: Interval
    scheme: Scheme
    points: list[SeriesPoint]


Format = Literal["json", "csv"]

Number = Annotated[int | float, WithJsonSchema({"type": "number"})]
"""A number written as it was computed: ``18`` stays ``18``, ``12.5`` stays ``12.5``."""


class FeedbackCounts(BaseModel):
    """Feedback of a period [S, E); open items judged at E′ = min(E, now), as dossiers are."""

    model_config = ConfigDict(extra="forbid")

    received: int = Field(description="Received in [S, E)")
    answered_on_time: int = Field(description="Answered in [S, E) within its deadline")
    answered_late: int = Field(description="Answered in [S, E) after its deadline")
    rejected: int = Field(description="Rejected in [S, E)")
    open: int = Field(description="Neither answered nor rejected before E")
    overdue: int = Field(description="Of `open`: its answer deadline before E′")


class FeedbackStatsRow(BaseModel):
    key: dict[str, str] = Field(examples=[{"channel": "hotline"}])
    counts: FeedbackCounts


class FeedbackStatsTotal(BaseModel):
    counts: FeedbackCounts


class RatingsByLevel(BaseModel):
    model_config = ConfigDict(extra="forbid")

    very_satisfied: int
    satisfied: int
    neutral: int
    unsatisfied: int
    very_unsatisfied: int


class SatisfactionStats(BaseModel):
    ratings: int = Field(description="Dossier ratings given in the period")
    by_level: RatingsByLevel = Field(description="Ratings per level")
    satisfied_share: float | None = Field(
        description="Percentage of ratings satisfied or very satisfied, 2 decimals; null without ratings"
    )


class FeedbackStats(StatsTable):
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
