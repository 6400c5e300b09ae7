"""Request dependencies of the dossier routes: the caller and the dossier of the path."""

from typing import Annotated

from fastapi import Depends, Query

from app.clients.deps import require
from app.core.db import SessionDep
from app.core.pagination import PageDep
from app.core.security import Principal, Scope
from app.dossiers import service
from app.dossiers.models import Dossier
from app.dossiers.schemas import DossierCode, DossierQuery
from app.units.access import Listing, ensure_reach, listing_scope

DossierWriter = Annotated[Principal, require(Scope.dossiers_write)]
DossierReader = Annotated[Principal, require(Scope.dossiers_read)]


async def readable_dossier(session: SessionDep, reader: DossierReader, code: DossierCode) -> Dossier:
    """The dossier of the path, if the reader's binding reaches it (404 otherwise, as if absent)."""
    dossier = await service.get_dossier(session, code)
    await ensure_reach(session, reader, dossier.unit_code, conceal=True)
    return dossier


ReadableDossier = Annotated[Dossier, Depends(readable_dossier)]


async def dossier_listing(
    session: SessionDep, reader: DossierReader, filters: Annotated[DossierQuery, Query()], _page: PageDep
) -> Listing[DossierQuery]:
    """The list's filters, its unit within the reader's binding (403 outside it).
    Taking the page too, so that a bad page parameter is its 422 before the reach is judged."""
    return Listing(filters, await listing_scope(session, reader, filters.unit))


DossierListing = Annotated[Listing[DossierQuery], Depends(dossier_listing)]


async def readable_units(session: SessionDep, reader: DossierReader) -> set[str] | None:
    """The units whose dossiers the reader may list: its binding's subtree, or None for all."""
    return await listing_scope(session, reader, None)


ReadableUnits = Annotated[set[str] | None, Depends(readable_units)]
