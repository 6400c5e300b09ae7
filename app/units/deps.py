from typing import Annotated

from fastapi import Depends, Path, Request

from app.core.codes import UnitCode
from app.core.db import SAFE_METHODS, SessionDep
from app.units import service
from app.units.models import Unit


async def unit_by_code(session: SessionDep, code: Annotated[UnitCode, Path()], request: Request) -> Unit:
    """The unit of the path; locked until the request ends when the request changes it."""
    return await service.get_unit(session, code, for_update=request.method not in SAFE_METHODS)


UnitDep = Annotated[Unit, Depends(unit_by_code)]
