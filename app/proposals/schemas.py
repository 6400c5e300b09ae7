from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, JsonValue, RootModel, StringConstraints

from app.core.bounds import Day, Moment
from app.core.codes import UnitCode
from app.core.documented import DocumentedAs
from app.procedures.schemas import Fee, ProcedureChange, ProcedureCode
from app.proposals.models import ProposalKind, ProposalState
from app.units.models import UnitLevel

Title = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]
Rationale = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=20000)]
Vnd = Annotated[int, Field(ge=0, strict=True)]


class Simplification(ProcedureChange):
    """What a `simplify` proposal changes in the procedure: at least one field (not `in_force_from`:
    the proposal's `effective_from` says when)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"minProperties": 1})


class FeeReduction(ProcedureChange):
    """What a `reduce_fee` proposal changes: the new fees, lower in total than today's, and any other
    field of the procedure."""

    fees: list[Fee]


class NoChange(BaseModel):
    """An `abolish` proposal changes nothing but the procedure's status: its change is empty."""

    model_config = ConfigDict(extra="forbid")


# A proposal's change as sent and as stored: the service checks it against the proposal's kind and
# the procedure (SPEC §7), and the API shows what was stored; the contract shows its shape per kind.
SimplifyChange = Annotated[dict[str, Any], DocumentedAs(Simplification)]
AbolishChange = Annotated[dict[str, Any], DocumentedAs(NoChange)]
ReduceFeeChange = Annotated[dict[str, Any], DocumentedAs(FeeReduction)]
AnyChange = Annotated[dict[str, Any], DocumentedAs(ProcedureChange)]


class ProposalCreate(BaseModel):
    """A proposal as the route reads it: one model whatever the kind, so that a problem names
    `body.<field>`; the contract shows ``ProposalCreateByKind``."""

    model_config = ConfigDict(extra="forbid")

    kind: ProposalKind
    procedure_code: ProcedureCode
    level: UnitLevel
    unit_code: UnitCode = Field(description="The proposing unit")
    title: Title
    rationale: Rationale
    change: AnyChange = Field(
        default_factory=dict,
        description="The procedure fields to change, as in PATCH /procedures/{code} (empty for `abolish`)",
    )
    cost_before_vnd: Vnd | None = Field(default=None, description="Yearly compliance cost today")
    cost_after_vnd: Vnd | None = Field(default=None, description="Yearly compliance cost after the change")
    effective_from: Day | None = Field(
        default=None, description="When the change takes effect once implemented"
    )


def _example(kind: ProposalKind, title: str, change: dict[str, JsonValue]) -> ConfigDict:
    example: dict[str, JsonValue] = {
        "kind": kind.value,
        "procedure_code": "1.000894",
        "level": "district",
        "unit_code": "313",
        "title": title,
        "rationale": "Giảm chi phí tuân thủ cho người dân",
        "change": change,
        "cost_before_vnd": 120000000,
        "cost_after_vnd": 60000000,
        "effective_from": "2024-01-01",
    }
    return ConfigDict(json_schema_extra={"examples": [example]})


class SimplifyProposalCreate(ProposalCreate):
    """A proposal to simplify the procedure: `change` says what, at least one field."""

    model_config = _example(
        ProposalKind.simplify,
        "Rút ngắn thời hạn chứng thực",
        {"processing_time": {"value": 1, "unit": "working_days"}},
    )

    kind: Literal[ProposalKind.simplify]
    change: SimplifyChange


class AbolishProposalCreate(ProposalCreate):
    """A proposal to abolish the procedure: no `change`, or an empty one."""

    model_config = _example(ProposalKind.abolish, "Bãi bỏ thủ tục chứng thực", {})

    kind: Literal[ProposalKind.abolish]
    change: AbolishChange = Field(default_factory=dict)


class ReduceFeeProposalCreate(ProposalCreate):
    """A proposal to cut the procedure's fees: `change` gives the new fees."""

    model_config = _example(
        ProposalKind.reduce_fee, "Giảm lệ phí chứng thực", {"fees": [{"name": "Lệ phí", "amount_vnd": 10000}]}
    )

    kind: Literal[ProposalKind.reduce_fee]
    change: ReduceFeeChange


ProposalCreateByKind = Annotated[
    SimplifyProposalCreate | AbolishProposalCreate | ReduceFeeProposalCreate, Field(discriminator="kind")
]


def _as_sent(value: Any) -> Any:
    return value


ProposalCreateBody = Annotated[
    ProposalCreate, BeforeValidator(_as_sent, json_schema_input_type=ProposalCreateByKind)
]
"""The body of ``POST /proposals``: read as ``ProposalCreate``, shown as its kinds (discriminated by
`kind`), so that clients see what `change` each kind takes."""


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
    change: AnyChange | None = Field(
        default=None,
        description="In the shape the proposal's kind takes: a Simplification for `simplify`, a "
        "FeeReduction for `reduce_fee`, empty for `abolish`",
    )
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


class ProposalReadFields(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    kind: ProposalKind
    procedure_code: str
    level: UnitLevel
    unit_code: str
    sector_code: str
    title: str
    rationale: str
    change: AnyChange
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


class SimplifyProposalRead(ProposalReadFields):
    kind: Literal[ProposalKind.simplify]
    change: SimplifyChange


class AbolishProposalRead(ProposalReadFields):
    kind: Literal[ProposalKind.abolish]
    change: AbolishChange


class ReduceFeeProposalRead(ProposalReadFields):
    kind: Literal[ProposalKind.reduce_fee]
    change: ReduceFeeChange


class ProposalRead(
    RootModel[
        Annotated[
            SimplifyProposalRead | AbolishProposalRead | ReduceFeeProposalRead, Field(discriminator="kind")
        ]
    ]
):
    """A proposal, its `change` shown in the shape its `kind` takes."""
