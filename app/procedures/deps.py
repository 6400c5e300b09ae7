from typing import Annotated

from fastapi import Depends, Path

from app.core.db import SessionDep
from app.procedures import service
from app.procedures.models import Procedure, Sector
from app.procedures.schemas import ProcedureCode, SectorCode


async def sector_by_code(session: SessionDep, code: Annotated[SectorCode, Path()]) -> Sector:
    return await service.get_sector(session, code)


async def procedure_by_code(session: SessionDep, code: Annotated[ProcedureCode, Path()]) -> Procedure:
    return await service.get_procedure(session, code)


SectorDep = Annotated[Sector, Depends(sector_by_code)]
ProcedureDep = Annotated[Procedure, Depends(procedure_by_code)]
