from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from app.core.bounds import Day
from app.core.codes import UnitCode
from app.units.models import UnitLevel

UnitName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
DivisionType = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=40)]


def _check_validity_order(valid_from: Day | None, valid_to: Day | None) -> None:
    if valid_from is not None and valid_to is not None and valid_from > valid_to:
        raise ValueError("valid_from must not be after valid_to")


class UnitCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "code": "313",
                    "name": "Huyện Kiến Thụy",
                    "level": "district",
                    "division_type": "huyện",
                    "parent_code": "31",
                    "valid_to": "2025-06-30",
                }
            ]
        },
    )

    code: UnitCode
    name: UnitName
    level: UnitLevel
    division_type: DivisionType | None = Field(default=None, description="e.g. `huyện`, `xã`, `phường`")
    parent_code: UnitCode | None = None
    valid_from: Day | None = Field(default=None, description="First day the unit exists (inclusive)")
    valid_to: Day | None = Field(default=None, description="Last day the unit exists (inclusive)")

    @model_validator(mode="after")
    def _validity(self) -> "UnitCreate":
        _check_validity_order(self.valid_from, self.valid_to)
        return self


class UnitUpdate(BaseModel):
    """Fields to change; a field sent as ``null`` is cleared. Code and level never change."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"valid_to": "2025-06-30"}]})

    name: UnitName | None = None
    division_type: DivisionType | None = None
    parent_code: UnitCode | None = None
    valid_from: Day | None = None
    valid_to: Day | None = None

    @model_validator(mode="after")
    def _name_not_null(self) -> "UnitUpdate":
        if "name" in self.model_fields_set and self.name is None:
            raise ValueError("name cannot be null")
        return self


class UnitRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    code: str
    name: str
    level: UnitLevel
    division_type: str | None
    parent_code: str | None
    valid_from: Day | None
    valid_to: Day | None
    created_at: datetime
    updated_at: datetime


class ChildrenQuery(BaseModel):
    """The query of ``GET /units/{code}/children``."""

    valid_on: Day | None = Field(default=None, description="Only units that exist on this date")


class UnitFilters(BaseModel):
    """The query of ``GET /units`` (FastAPI builds it from the query string)."""

    level: UnitLevel | None = None
    parent: str | None = Field(default=None, description="Direct children of this unit code")
    valid_on: Day | None = Field(default=None, description="Only units that exist on this date")
    q: str | None = Field(
        default=None,
        max_length=200,
        description="Code prefix or name, case- and accent-insensitive (`kien thuy`)",
    )


class UnitImportSummary(BaseModel):
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    conflicts: list[str] = Field(default_factory=list)
