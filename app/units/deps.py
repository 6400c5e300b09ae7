from typing import Annotated

from fastapi import Depends, Path

from app.core.db import SessionDep
from app.units import service
from app.units.models import Unit
from app.units.schemas import UnitCode


async def unit_by_code(session: SessionDep, code: Annotated[UnitCode, Path()]) -> Unit:
    return await service.get_unit(session, code)


UnitDep = Annotated[Unit, Depends(unit_by_code)]
