from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from app.core.bounds import Moment
from app.core.codes import UnitCode
from app.dossiers.models import SatisfactionLevel
from app.feedback.models import FeedbackChannel, FeedbackState, FeedbackSubject
from app.procedures.schemas import ProcedureCode


class FeedbackCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "external_ref": "PAKN-2023-000123",
                    "channel": "portal",
                    "subject": "procedure",
                    "procedure_code": "1.000894",
                    "unit_code": "11680",
                    "content": "Hồ sơ trả chậm so với giấy hẹn",
                    "received_at": "2023-08-01T09:00:00+07:00",
                }
            ]
        },
    )

    external_ref: Annotated[str, StringConstraints(min_length=1, max_length=100)] | None = Field(
        default=None, description="Reference on the national feedback portal; resending it is harmless"
    )
    channel: FeedbackChannel
    subject: FeedbackSubject
    procedure_code: ProcedureCode | None = None
    unit_code: UnitCode = Field(description="The unit concerned, which handles the feedback")
    officer: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = None
    content: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=20000)]
    contact: Annotated[str, StringConstraints(max_length=500)] | None = Field(
        default=None, description="Stored, never shown publicly"
    )
    received_at: Moment | None = Field(default=None, description="Default: now")


class FeedbackTransitionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    to: FeedbackState
    comment: Annotated[str, StringConstraints(max_length=20000)] | None = None
    occurred_at: Moment | None = None


class FeedbackTransitionRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    from_state: FeedbackState
    to_state: FeedbackState
    client_name: str
    occurred_at: datetime
    comment: str | None
    within_deadline: bool | None


class FeedbackQuery(BaseModel):
    """The query of ``GET /feedback`` (FastAPI builds it from the query string)."""

    state: FeedbackState | None = None
    subject: FeedbackSubject | None = None
    channel: FeedbackChannel | None = None
    unit: str | None = None
    overdue: bool = False


class FeedbackRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    external_ref: str | None
    channel: FeedbackChannel
    subject: FeedbackSubject
    procedure_code: str | None
    unit_code: str
    officer: str | None
    content: str
    contact: str | None
    state: FeedbackState
    received_at: datetime
    reject_due_at: datetime
    info_due_at: datetime
    answer_due_at: datetime
    answered_at: datetime | None
    publish_due_at: datetime | None
    published_at: datetime | None
    overdue: bool = Field(
        description="Not answered and past the answer deadline, or answered and not published in time"
    )
    transitions: list[FeedbackTransitionRead]


class RatingIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    level: SatisfactionLevel
    comment: Annotated[str, StringConstraints(max_length=5000)] | None = None
    secret: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = Field(
        default=None, description="The PIN on the receipt, when the citizen rates without an API key"
    )


class RatingRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    dossier_code: str
    level: SatisfactionLevel
    comment: str | None
    rated_at: datetime
