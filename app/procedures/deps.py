from typing import Annotated

from fastapi import Depends, Path, Request

from app.core.db import SAFE_METHODS, SessionDep
from app.procedures import service
from app.procedures.models import Procedure, Sector
from app.procedures.schemas import ProcedureCode, SectorCode


async def sector_by_code(
    session: SessionDep, code: Annotated[SectorCode, Path()], request: Request
) -> Sector:
    """The sector of the path; locked until the request ends when the request changes it."""
    return await service.get_sector(session, code, for_update=request.method not in SAFE_METHODS)


async def procedure_by_code(
    session: SessionDep, code: Annotated[ProcedureCode, Path()], request: Request
) -> Procedure:
    """The procedure of the path; locked until the request ends when the request changes it."""
    return await service.get_procedure(session, code, for_update=request.method not in SAFE_METHODS)


SectorDep = Annotated[Sector, Depends(sector_by_code)]
ProcedureDep = Annotated[Procedure, Depends(procedure_by_code)]
