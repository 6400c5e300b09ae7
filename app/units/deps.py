from typing import Annotated

from fastapi import Depends, Path, Request

from app.clients.deps import require
from app.core.codes import UnitCode
from app.core.db import SAFE_METHODS, SessionDep
from app.core.errors import Forbidden
from app.core.security import Principal, Scope
from app.units import service
from app.units.access import ensure_reach
from app.units.models import Unit
from app.units.schemas import UnitCreate, UnitUpdate

UnitsWriter = Annotated[Principal, require(Scope.units_write)]


async def unit_by_code(session: SessionDep, code: Annotated[UnitCode, Path()], request: Request) -> Unit:
    """The unit of the path; locked until the request ends when the request changes it."""
    return await service.get_unit(session, code, for_update=request.method not in SAFE_METHODS)


UnitDep = Annotated[Unit, Depends(unit_by_code)]


async def reachable_new_unit(session: SessionDep, writer: UnitsWriter, data: UnitCreate) -> UnitCreate:
    """The body of a new unit, whose parent the writer reaches: a bound client adds units only below
    its own unit (403)."""
    await ensure_reach(session, writer, data.parent_code)
    return data


ReachableNewUnit = Annotated[UnitCreate, Depends(reachable_new_unit)]


async def reachable_unit_patch(
    session: SessionDep, writer: UnitsWriter, unit: UnitDep, patch: UnitUpdate
) -> UnitUpdate:
    """A change to a unit the writer reaches, which keeps a bound client's subtree whole and in
    place: no detaching a unit, no moving the client's root, no moving a unit out of its reach (403)."""
    await ensure_reach(session, writer, unit.code)
    moves = (
        writer.unit_code is not None
        and "parent_code" in patch.model_fields_set
        and patch.parent_code != unit.parent_code
    )
    if moves and (patch.parent_code is None or unit.code == writer.unit_code):
        raise Forbidden(
            f"This client is bound to unit {writer.unit_code} and cannot move its root or detach a unit"
        )
    if moves_to := (patch.parent_code if patch.parent_code != unit.parent_code else None):
        await ensure_reach(session, writer, moves_to)
    return patch


ReachableUnitPatch = Annotated[UnitUpdate, Depends(reachable_unit_patch)]
