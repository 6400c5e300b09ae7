"""Imports every domain's models so that ``Base.metadata`` knows all tables (Alembic, tests)."""

from app.audit.models import AuditRecord
from app.clients.models import ApiClient, ApiKey
from app.dossiers.models import Dossier, DossierEvent
from app.procedures.models import Procedure, ProcedureVersion, Sector
from app.units.models import Unit

__all__ = [
    "ApiClient",
    "ApiKey",
    "AuditRecord",
    "Dossier",
    "DossierEvent",
    "Procedure",
    "ProcedureVersion",
    "Sector",
    "Unit",
]
