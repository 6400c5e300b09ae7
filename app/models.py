"""Imports every domain's models so that ``Base.metadata`` knows all tables (Alembic, tests)."""

from app.clients.models import ApiClient, ApiKey
from app.core.audit import AuditRecord
from app.core.data_version import DataVersion
from app.core.idempotency import IdempotentAnswer
from app.dossiers.counters import DossierCounter
from app.dossiers.models import Dossier, DossierEvent, DossierEventCorrection, DossierRating
from app.feedback.models import Feedback, FeedbackTransition
from app.procedures.models import Procedure, ProcedureVersion, Sector
from app.proposals.models import Proposal, ProposalTransition
from app.units.models import Unit

__all__ = [
    "ApiClient",
    "ApiKey",
    "AuditRecord",
    "DataVersion",
    "Dossier",
    "DossierCounter",
    "DossierEvent",
    "DossierEventCorrection",
    "DossierRating",
    "Feedback",
    "FeedbackTransition",
    "IdempotentAnswer",
    "Procedure",
    "ProcedureVersion",
    "Proposal",
    "ProposalTransition",
    "Sector",
    "Unit",
]
