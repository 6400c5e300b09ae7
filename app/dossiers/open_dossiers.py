"""Which dossiers are open, and which of them are overdue (SPEC §5), for the queries over dossiers
and for the statistics: one reading of the rule, in SQL and on a loaded dossier."""

from datetime import datetime

from sqlalchemy import ColumnElement, and_

from app.dossiers.lifecycle import ENDED, Status
from app.dossiers.models import Dossier

OPEN_STATUSES = tuple(sorted(set(Status) - ENDED))
"""A dossier received and not ended: SPEC §5 counts it in `in_progress` ("open at E"), until it is
"ended (finished or withdrawn)"; refused dossiers never count as received."""

RUNNING_STATUSES = tuple(status for status in OPEN_STATUSES if status is not Status.waiting_supplement)
"""Open and not waiting for a supplement: the statuses whose clock runs (SPEC §3: "between
`supplement_requested` and `supplement_received` the clock stops")."""


def is_open() -> ColumnElement[bool]:
    """The dossier, as it stands, is open (``OPEN_STATUSES``)."""
    return Dossier.status.in_([int(status) for status in OPEN_STATUSES])


def past_due(at: datetime) -> ColumnElement[bool]:
    """The dossier, as it stands, is overdue at ``at`` — SPEC §5 `in_progress_overdue`: "open at E′,
    not waiting at E′, and its due date as it stood at E′ is before E′"."""
    return and_(Dossier.status.in_([int(status) for status in RUNNING_STATUSES]), Dossier.due_at < at)


def is_past_due(dossier: Dossier, at: datetime) -> bool:
    """``past_due`` of a loaded dossier."""
    return dossier.status in RUNNING_STATUSES and dossier.due_at is not None and dossier.due_at < at
