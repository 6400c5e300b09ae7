"""Request dependencies of the dossier routes: the caller and the dossier of the path."""

from typing import Annotated

from fastapi import Depends

from app.clients.deps import require
from app.core.db import SessionDep
from app.core.security import Principal, Scope
from app.dossiers import service
from app.dossiers.models import Dossier
from app.dossiers.schemas import DossierCode
from app.units.access import ensure_reach

DossierWriter = Annotated[Principal, require(Scope.dossiers_write)]
DossierReader = Annotated[Principal, require(Scope.dossiers_read)]


async def readable_dossier(session: SessionDep, reader: DossierReader, code: DossierCode) -> Dossier:
    """The dossier of the path, if the reader's binding reaches it (404 otherwise, as if absent)."""
    dossier = await service.get_dossier(session, code)
    await ensure_reach(session, reader, dossier.unit_code, conceal=True)
    return dossier


ReadableDossier = Annotated[Dossier, Depends(readable_dossier)]
