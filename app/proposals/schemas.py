from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from app.core.bounds import Day, Moment
from app.core.codes import UnitCode
from app.procedures.schemas import ProcedureCode
from app.proposals.models import ProposalKind, ProposalState
from app.units.models import UnitLevel

Title = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]
Rationale = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=20000)]
Vnd = Annotated[int, Field(ge=0, strict=True)]


class ProposalCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "kind": "reduce_fee",
                    "procedure_code": "1.000894",
                    "level": "district",
                    "unit_code": "313",
                    "title": "Giảm lệ phí chứng thực",
                    "rationale": "Giảm chi phí tuân thủ cho người dân",
                    "change": {"fees": [{"name": "Lệ phí", "amount_vnd": 10000}]},
                    "cost_before_vnd": 120000000,
                    "cost_after_vnd": 60000000,
                    "effective_from": "2024-01-01",
                }
            ]
        },
    )

    kind: ProposalKind
    procedure_code: ProcedureCode
    level: UnitLevel
    unit_code: UnitCode = Field(description="The proposing unit")
    title: Title
    rationale: Rationale
    change: dict[str, Any] = Field(
        default_factory=dict,
        description="The procedure fields to change, as in PATCH /procedures/{code} (empty for `abolish`)",
    )
    cost_before_vnd: Vnd | None = Field(default=None, description="Yearly compliance cost today")
    cost_after_vnd: Vnd | None = Field(default=None, description="Yearly compliance cost after the change")
    effective_from: Day | None = Field(
        default=None, description="When the change takes effect once implemented"
    )


class ProposalQuery(BaseModel):
    """The query of ``GET /proposals`` (FastAPI builds it from the query string)."""

    kind: ProposalKind | None = None
    level: UnitLevel | None = None
    sector: str | None = Field(default=None, max_length=32)
    state: ProposalState | None = None
    unit: str | None = Field(default=None, max_length=32, description="Proposing unit and its descendants")
    procedure: str | None = Field(default=None, max_length=64)
    submitted_from: Day | None = None
    submitted_to: Day | None = None


class ProposalUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: Title | None = None
    rationale: Rationale | None = None
    change: dict[str, Any] | None = None
    cost_before_vnd: Vnd | None = None
    cost_after_vnd: Vnd | None = None
    effective_from: Day | None = None


class TransitionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    to: ProposalState
    comment: Annotated[str, StringConstraints(max_length=5000)] | None = None
    occurred_at: Moment | None = Field(
        default=None, description="When it happened, for recording past decisions; default now"
    )


class TransitionRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    from_state: ProposalState
    to_state: ProposalState
    client_name: str
    occurred_at: datetime
    comment: str | None


class ProposalRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    kind: ProposalKind
    procedure_code: str
    level: UnitLevel
    unit_code: str
    sector_code: str
    title: str
    rationale: str
    change: dict[str, Any]
    cost_before_vnd: int | None
    cost_after_vnd: int | None
    savings_vnd: int | None = Field(description="Yearly saving: cost before − cost after")
    effective_from: Day | None
    state: ProposalState
    submitted_at: datetime | None
    implemented_version: int | None = Field(description="The catalogue version the proposal made")
    created_at: datetime
    updated_at: datetime
    transitions: list[TransitionRead]
