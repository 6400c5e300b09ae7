from datetime import datetime
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict


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
    client_id: int | None = None
    action: str | None = None
    resource_type: str | None = None
    resource_id: str | None = None
    since: AwareDatetime | None = None
    until: AwareDatetime | None = None
