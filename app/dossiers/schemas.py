from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal, get_args

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from app.core.bounds import Day, Moment, UtcMoment
from app.core.codes import UnitCode
from app.core.documented import DocumentedAs
from app.core.errors import Problem
from app.core.hygiene import text_without_controls
from app.dossiers.lifecycle import EventType, Status
from app.dossiers.models import OnlineLevel, Outcome
from app.procedures.models import Channel
from app.procedures.schemas import ProcedureCode

MAX_BATCH = 1000
# A dossier's events and an event's corrections grow with every request: a read shows a bounded part.
TIMELINE_SHOWN = 100
CORRECTIONS_SHOWN = 20
MAX_REVISION = 2**31 - 1

DossierCode = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,63}$"),
    Field(description="Mã hồ sơ, e.g. `000.00.31.H56-230801-0001`", examples=["000.00.31.H56-230801-0001"]),
]
EventId = Annotated[
    str, StringConstraints(min_length=1, max_length=100), AfterValidator(text_without_controls)
]


# Instants are kept in UTC: the same instant sent with another offset is the same event.
Instant = UtcMoment

RECEPTION_FIELDS = ("procedure_code", "unit_code", "channel", "online_level", "due_at", "lookup_secret")


class DossierEventIn(BaseModel):
    """One step of a dossier, as the national portal or a one-stop system reports it (SPEC §4)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "event_id": "kt-2023-000123-1",
                    "dossier_code": "000.00.31.H56-230801-0001",
                    "type": "received",
                    "occurred_at": "2023-08-01T09:15:00+07:00",
                    "procedure_code": "1.000894",
                    "unit_code": "11680",
                    "channel": "online",
                    "online_level": "full",
                    "lookup_secret": "482913",
                    "fee_payable": True,
                    "paid_online": True,
                },
                {
                    "event_id": "kt-2023-000123-2",
                    "dossier_code": "000.00.31.H56-230801-0001",
                    "type": "resolved",
                    "occurred_at": "2023-08-02T15:00:00+07:00",
                },
            ]
        },
    )

    event_id: EventId = Field(description="Unique per sending client; resending it is harmless")
    dossier_code: DossierCode
    type: EventType
    occurred_at: Instant = Field(description="With its UTC offset")
    procedure_code: ProcedureCode | None = Field(default=None, description="`received`/`refused` only")
    unit_code: UnitCode | None = Field(
        default=None, description="The receiving unit; `received`/`refused` only"
    )
    channel: Channel | None = Field(default=None, description="`received`/`refused` only")
    online_level: OnlineLevel | None = Field(default=None, description="With channel `online`")
    due_at: Instant | None = Field(default=None, description="A due date computed by the source; kept as is")
    lookup_secret: (
        Annotated[str, StringConstraints(min_length=4, max_length=64), AfterValidator(text_without_controls)]
        | None
    ) = Field(default=None, description="The PIN on the citizen's receipt; stored only as a keyed hash")
    new_return_at: Instant | None = Field(default=None, description="`apology_issued` only")
    paid_online: bool | None = None
    fee_payable: bool | None = None
    digitized: bool | None = None
    e_result: bool | None = None
    revision: Annotated[int, Field(ge=1, le=MAX_REVISION)] | None = Field(
        default=None,
        description="1 when absent. A higher revision of a stored `event_id` replaces it (a correction)",
    )
    cancelled: bool | None = Field(
        default=None, description="With a higher `revision`: withdraws the stored event"
    )


class EventBatch(BaseModel):
    # Each item is validated by the route, which answers it alone (SPEC §4).
    events: list[Annotated[Any, DocumentedAs(DossierEventIn)]] = Field(min_length=1, max_length=MAX_BATCH)


class ResultStatus(StrEnum):
    """How one item of a request was answered: the ``status`` of an event's result (``EventStatus``)
    and of a portal record's (app.dossiers.dvcqg.RecordStatus)."""

    created = "created"
    updated = "updated"
    pending = "pending"
    duplicate = "duplicate"
    unchanged = "unchanged"
    error = "error"


# The members an event is answered with. A Literal of them, not the enum: the field's schema stays
# the inline list of its values (the enum would add a component, and `unchanged`, a record's only).
EventStatus = Literal[
    ResultStatus.created,
    ResultStatus.updated,
    ResultStatus.pending,
    ResultStatus.duplicate,
    ResultStatus.error,
]
EVENT_STATUSES: tuple[ResultStatus, ...] = get_args(EventStatus)


class EventResult(BaseModel):
    event_id: str | None
    status: EventStatus = Field(
        description="`created`: stored and applied to its dossier; `updated`: a correction or "
        "cancellation replaced the stored event; `pending`: stored, waiting for the dossier's "
        "reception (or for an event still missing that it follows); `duplicate`: a resend, or an "
        "older revision than the one stored: nothing changed; `error`: nothing stored, see `problem`"
    )
    problem: Problem | None = None


class BatchResult(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "results": [
                        {"event_id": "H56-0001-1", "status": "created"},
                        {"event_id": "H56-0001-2", "status": "duplicate"},
                    ]
                }
            ]
        }
    )

    results: list[EventResult] = Field(description="One per event, in the order sent")


class Correction(BaseModel):
    from_revision: int
    to_revision: int
    cancelled: bool
    changes: dict[str, list[Any]] = Field(description="Field → [before, after]")
    corrected_at: datetime
    client_name: str | None


class TimelineEntry(BaseModel):
    """One stored event in time order, with its place in the history."""

    event_id: str
    type: EventType
    occurred_at: datetime
    ingested_at: datetime
    status: Outcome = Field(
        description="`applied`, `pending` (kept, waiting), `rejected` (see `reason`), `cancelled`"
    )
    reason: str | None = None
    revision: int
    client_name: str | None = None
    corrections: list[Correction] = Field(
        default_factory=list,
        description=f"The latest {CORRECTIONS_SHOWN} corrections at most, oldest of them first",
    )
    corrections_total: int = Field(description="How many corrections the event went through, all told")


class PendingEvent(BaseModel):
    """An event kept but not applied (yet): waiting for its dossier's reception or a missing event."""

    event_id: str
    dossier_code: str
    type: EventType
    occurred_at: datetime
    ingested_at: datetime
    age_seconds: int = Field(description="How long it has waited since it arrived")
    status: Outcome
    reason: str | None
    client_name: str | None


class DossierQuery(BaseModel):
    """The query of ``GET /dossiers`` (FastAPI builds it from the query string)."""

    unit: str | None = Field(default=None, max_length=32, description="This unit and its descendants")
    procedure: str | None = Field(default=None, max_length=64)
    status_name: str | None = Field(
        default=None,
        alias="status",
        pattern="^(" + "|".join(s.name for s in Status) + ")$",
        description="e.g. `processing`",
    )
    received_from: Day | None = Field(
        default=None, description="Received on or after this day (Vietnam time)"
    )
    received_to: Day | None = Field(default=None, description="Received on or before this day")
    overdue: bool = Field(default=False, description="Open, not waiting for a supplement, and past due now")
    due_before: Moment | None = Field(
        default=None, description="Open and due before this instant: the early-warning list"
    )

    @property
    def status(self) -> Status | None:
        return Status[self.status_name] if self.status_name else None


class DossierSummary(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    code: str
    status: int = Field(description="TrangThaiHoSo of the national portal")
    status_name: str
    status_name_vi: str
    national_status: int = Field(description="TrangThaiHoSo (1–10) of the national portal")
    national_status_vi: str
    procedure_code: str
    unit_code: str
    channel: Channel | None
    online_level: OnlineLevel | None
    received_at: datetime | None
    due_at: datetime | None = Field(description="As it stands now, supplement pauses included")
    original_due_at: datetime | None
    finished_at: datetime | None
    returned_at: datetime | None
    withdrawn_at: datetime | None
    refused_at: datetime | None
    on_time: bool | None = Field(description="Set when the dossier finishes")
    early: bool | None
    overdue: bool = Field(description="Open, not waiting for a supplement, and past its due date now")
    waiting_supplement: bool
    supplement_count: int
    apology_count: int
    new_return_at: datetime | None
    paid_online: bool | None
    fee_payable: bool | None
    digitized: bool | None
    e_result: bool | None


class DossierRead(DossierSummary):
    timeline: list[TimelineEntry] = Field(
        description=f"The first {TIMELINE_SHOWN} stored events in time order, including pending, rejected "
        "and corrected ones; `GET /dossiers/{code}/timeline` with `timeline_next_cursor` pages on"
    )
    timeline_next_cursor: str | None = Field(
        description="Set when the dossier has more events: the `cursor` of `GET /dossiers/{code}/timeline`"
    )


class PublicDossier(BaseModel):
    """What a citizen sees with the PIN from the receipt: nothing personal."""

    code: str
    status: int
    status_name_vi: str
    due_at: datetime | None
    new_return_at: datetime | None
    result_ready: bool
