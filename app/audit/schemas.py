from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from app.core.bounds import Moment
from app.core.db import MAX_ID


class AuditRecordRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    occurred_at: datetime
    client_id: int | None
    client_name: str
    action: str
    resource_type: str
    resource_id: str
    request_id: str | None
    detail: dict[str, Any] | None


class AuditFilters(BaseModel):
    """The query of ``GET /audit`` (FastAPI builds it from the query string)."""

    client_id: int | None = Field(default=None, ge=1, le=MAX_ID)
    action: str | None = Field(default=None, max_length=40)
    resource_type: str | None = Field(default=None, max_length=40)
    resource_id: str | None = Field(default=None, max_length=100)
    since: Moment | None = Field(default=None, description="From this instant (with offset), inclusive")
    until: Moment | None = Field(default=None, description="Before this instant (with offset)")
