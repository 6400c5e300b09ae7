from datetime import datetime
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_serializer,
    field_validator,
    model_validator,
)

from app.calendar.working_time import TimeUnit
from app.core.bounds import Day
from app.procedures.models import Channel, OnlineService, ProcedureStatus
from app.units.models import UnitLevel

Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]
ShortText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]
SectorCode = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$"),
    Field(description="Sector code, e.g. `tu-phap`", examples=["tu-phap"]),
]
ProcedureCode = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"),
    Field(
        description="National code like `1.001612`, or a local variant like `1.003560.000.00.00.H56`",
        examples=["1.001612"],
    ),
]
Count = Annotated[int, Field(ge=0, le=1000, strict=True)]


# --- sectors ---------------------------------------------------------------------------------


class SectorCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"code": "tu-phap", "name": "Tư pháp"}]}
    )

    code: SectorCode
    name: ShortText


class SectorUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: ShortText


class SectorRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    code: str
    name: str
    created_at: datetime
    updated_at: datetime


# --- procedures ------------------------------------------------------------------------------


# The longest processing times a real procedure has are months; these bounds leave room, and keep
# due-date arithmetic small.
LONGEST_PROCESSING_TIME = {TimeUnit.working_days: 365, TimeUnit.working_hours: 2920, TimeUnit.days: 730}


class ProcessingTime(BaseModel):
    """Thời hạn giải quyết (SPEC §3)."""

    model_config = ConfigDict(extra="forbid")

    value: float = Field(gt=0, le=730, examples=[5])
    unit: TimeUnit

    @model_validator(mode="after")
    def _a_real_procedure_takes_at_most_a_year_or_two(self) -> "ProcessingTime":
        longest = LONGEST_PROCESSING_TIME[self.unit]
        if self.value > longest:
            raise ValueError(f"a processing time of more than {longest} {self.unit.value} is not a real one")
        return self

    @field_serializer("value")
    def _whole_numbers_as_integers(self, value: float) -> int | float:
        return int(value) if value.is_integer() else value


class Fee(BaseModel):
    """Phí, lệ phí."""

    model_config = ConfigDict(extra="forbid")

    name: ShortText
    amount_vnd: int = Field(ge=0, strict=True, description="Whole đồng", examples=[50000])
    note: Text | None = None


class RequiredDocument(BaseModel):
    """Thành phần hồ sơ."""

    model_config = ConfigDict(extra="forbid")

    name: Text
    originals: Count = 0
    copies: Count = 0
    note: Text | None = None


class Result(BaseModel):
    """Kết quả thực hiện."""

    model_config = ConfigDict(extra="forbid")

    name: Text


def _unique_sorted(values: list[Any], order: list[Any]) -> list[Any]:
    return sorted(set(values), key=order.index)


class ProcedureFields(BaseModel):
    """Everything a version of a procedure says; the unit of versioning."""

    model_config = ConfigDict(extra="forbid")

    name: ShortText = Field(examples=["Đăng ký kết hôn"])
    sector_code: SectorCode
    levels: list[UnitLevel] = Field(min_length=1, description="Cấp thực hiện")
    implementing_agency: ShortText | None = Field(default=None, description="Cơ quan thực hiện")
    procedure_type: ShortText | None = Field(default=None, description="Loại thủ tục")
    channels: list[Channel] = Field(min_length=1, description="Cách thức thực hiện")
    processing_time: ProcessingTime
    fees: list[Fee] = Field(default_factory=list, max_length=100)
    online_service: OnlineService = OnlineService.none
    required_documents: list[RequiredDocument] = Field(default_factory=list, max_length=200)
    results: list[Result] = Field(default_factory=list, max_length=50)
    legal_basis: list[Text] = Field(default_factory=list, max_length=100, description="Căn cứ pháp lý")
    status: ProcedureStatus = ProcedureStatus.active
    effective_from: Day | None = None
    effective_to: Day | None = None
    description: Annotated[str, StringConstraints(max_length=20000)] | None = None

    @field_validator("levels")
    @classmethod
    def _levels(cls, levels: list[UnitLevel]) -> list[UnitLevel]:
        return _unique_sorted(levels, list(UnitLevel))

    @field_validator("channels")
    @classmethod
    def _channels(cls, channels: list[Channel]) -> list[Channel]:
        return _unique_sorted(channels, list(Channel))

    @model_validator(mode="after")
    def _period(self) -> "ProcedureFields":
        if self.effective_from and self.effective_to and self.effective_from > self.effective_to:
            raise ValueError("effective_from must not be after effective_to")
        return self


class ProcedureCreate(ProcedureFields):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "code": "1.000894",
                    "name": "Đăng ký kết hôn",
                    "sector_code": "ho-tich",
                    "levels": ["commune"],
                    "implementing_agency": "Ủy ban nhân dân cấp xã",
                    "channels": ["direct", "online", "postal"],
                    "processing_time": {"value": 1, "unit": "working_days"},
                    "fees": [{"name": "Lệ phí đăng ký kết hôn", "amount_vnd": 0, "note": "Miễn lệ phí"}],
                    "online_service": "full",
                    "required_documents": [{"name": "Tờ khai đăng ký kết hôn", "originals": 1, "copies": 0}],
                    "results": [{"name": "Giấy chứng nhận kết hôn"}],
                    "legal_basis": ["Luật Hộ tịch 2014"],
                    "effective_from": "2016-01-01",
                }
            ]
        },
    )

    code: ProcedureCode


class ProcedureChange(BaseModel):
    """The fields of a procedure to change; a field left out keeps its value."""

    model_config = ConfigDict(extra="forbid")

    name: ShortText | None = None
    sector_code: SectorCode | None = None
    levels: list[UnitLevel] | None = None
    implementing_agency: ShortText | None = None
    procedure_type: ShortText | None = None
    channels: list[Channel] | None = None
    processing_time: ProcessingTime | None = None
    fees: list[Fee] | None = None
    online_service: OnlineService | None = None
    required_documents: list[RequiredDocument] | None = None
    results: list[Result] | None = None
    legal_basis: list[Text] | None = None
    status: ProcedureStatus | None = None
    effective_from: Day | None = None
    effective_to: Day | None = None
    description: str | None = None

    @model_validator(mode="after")
    def _required_not_null(self) -> "ProcedureChange":
        required = (
            "name",
            "sector_code",
            "levels",
            "channels",
            "processing_time",
            "online_service",
            "status",
        )
        cleared = [
            field for field in required if field in self.model_fields_set and getattr(self, field) is None
        ]
        if cleared:
            raise ValueError(f"cannot be null: {', '.join(cleared)}")
        return self


class ProcedureUpdate(ProcedureChange):
    """The fields to change, plus the day the new version takes effect (default: today in Vietnam)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"fees": [{"name": "Lệ phí", "amount_vnd": 20000}], "in_force_from": "2026-12-01"}]
        },
    )

    in_force_from: Day | None = Field(default=None, description="The day this version takes effect")


class ProcedureRead(ProcedureFields):
    code: str
    version: int = Field(description="Version number, 1 for the first")
    in_force_from: Day | None = Field(description="The day this version took or takes effect (null: always)")
    updated_at: datetime


class ProcedureVersionRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    version: int
    in_force_from: Day | None
    changed_at: datetime
    changed_by: str
    request_id: str | None
    changes: dict[str, dict[str, Any]] = Field(
        description='For each changed field, `{"from": …, "to": …}`; for version 1, every field `from` null',
        examples=[{"fees": {"from": [{"name": "Lệ phí", "amount_vnd": 50000}], "to": []}}],
    )


class RowError(BaseModel):
    row: int = Field(description="1-based row number in the upload (the CSV header is row 0)")
    code: str | None
    field: str
    message: str


class ImportResult(BaseModel):
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    errors: list[RowError] = Field(default_factory=list)
