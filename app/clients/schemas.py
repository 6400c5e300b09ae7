from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

from app.core.codes import UnitCode
from app.core.security import Scope

ClientName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]


class ClientCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"name": "kien-thuy-one-stop", "scopes": ["dossiers:write"], "unit_code": "313"}]
        },
    )

    name: ClientName
    scopes: list[Scope] = Field(min_length=1)
    unit_code: UnitCode | None = Field(
        default=None, description="Bind the client to this unit and its descendants (object-level access)"
    )

    @field_validator("scopes")
    @classmethod
    def _unique(cls, scopes: list[Scope]) -> list[Scope]:
        return sorted(set(scopes))

    @model_validator(mode="after")
    def _admin_is_unbound(self) -> "ClientCreate":
        # An admin bound to a unit could mint unbound clients and escape its binding.
        if Scope.admin in self.scopes and self.unit_code is not None:
            raise ValueError("a client with the admin scope cannot be bound to a unit")
        return self


class KeyRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    hint: str = Field(description="The first characters of the key, to tell keys apart")
    created_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None


class KeyCreated(KeyRead):
    key: str = Field(description="The secret; shown only in this response, stored only as a hash")


class ClientRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    scopes: list[Scope]
    unit_code: str | None
    created_at: datetime
    keys: list[KeyRead]


class ClientCreated(ClientRead):
    key: str = Field(description="The first key; shown only in this response, stored only as a hash")
