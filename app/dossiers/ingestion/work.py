"""The units of work: an ingestion's context (``Ingestion``: who sends, through which session), what
arrives (an event in its canonical form), what is stored, and each dossier's work in a batch."""

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.calendar.working_time import WorkingCalendar
from app.core import json_values
from app.core.errors import (
    DomainError,
)
from app.core.security import Principal
from app.dossiers.history import (
    HistoryEvent,
)
from app.dossiers.lifecycle import DossierState
from app.dossiers.models import DossierEvent
from app.dossiers.schemas import ResultStatus


@dataclass(frozen=True)
class Ingestion:
    """One ingestion's context — a request's, a bulk import's or a calendar replay's: who sends the
    events (the principal), through which session, on which calendar, with the key that hashes
    look-up PINs."""

    session: AsyncSession
    principal: Principal
    calendar: WorkingCalendar
    secret_key: str


@dataclass
class Stored:
    """An event row of a dossier whose history is replayed."""

    id: int
    client_id: int
    event_id: str
    dossier_code: str
    payload: dict[str, Any]
    payload_hash: str
    revision: int
    status: str
    reason: str | None

    def history_event(self) -> HistoryEvent:
        return HistoryEvent.from_payload(self.id, self.client_id, self.payload)

    @classmethod
    def of(cls, row: Any) -> "Stored":
        payload = row.payload if isinstance(row.payload, dict) else json_values.loads(row.payload)
        return cls(**{**row._mapping, "payload": payload})


STORED_COLUMNS = [DossierEvent.__table__.c[name] for name in Stored.__dataclass_fields__]


@dataclass
class Arrival:
    """A change to a dossier's history arriving now: a new event, a correction or a cancellation."""

    group: int
    """The answer it belongs to: its position in the batch (a record's events share one)."""
    event_id: str
    dossier_code: str
    event: HistoryEvent
    payload: str
    digest: str
    revision: int
    target: Stored | None = None
    """The stored event it replaces (a correction or cancellation)."""
    cancelled: bool = False

    @property
    def position(self) -> int:
        return self.target.id if self.target is not None else self.event.position


@dataclass
class DossierWork:
    """What a batch does to one dossier."""

    code: str
    state: DossierState | None
    arrivals: list[Arrival] = field(default_factory=list)
    replay: bool = False
    stored: list[Stored] = field(default_factory=list)
    loaded: bool = False


@dataclass
class Answer:
    """How a group of arrivals ended: its result's status, and the problem that refused it."""

    status: ResultStatus
    problem: DomainError | None = None
