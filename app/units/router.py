from typing import Annotated

from fastapi import APIRouter, Header, Query, Request, Response, status

from app.core.db import SessionDep
from app.core.errors import problem_responses
from app.core.http_caching import TAGGED_CREATED, TAGGED_READ, TAGGED_WRITE, require_match
from app.core.links import locate
from app.core.pagination import Page, PageDep
from app.core.replicas import AnonymousStandbyReads
from app.units import service
from app.units.deps import ReachableNewUnit, ReachableUnitPatch, UnitDep, UnitsWriter
from app.units.schemas import ChildrenQuery, UnitFilters, UnitRead

router = APIRouter(prefix="/units", tags=["units"], route_class=AnonymousStandbyReads)


@router.post(
    "",
    operation_id="create_unit",
    status_code=status.HTTP_201_CREATED,
    response_model=UnitRead,
    responses={**TAGGED_CREATED, **problem_responses(400, 409, 422)},
    summary="Create an administrative unit (đơn vị hành chính)",
)
async def create_unit(
    session: SessionDep, writer: UnitsWriter, data: ReachableNewUnit, request: Request, response: Response
) -> UnitRead:
    unit = await service.create_unit(session, data, writer)
    locate(request, response, "get_unit", code=unit.code)
    return UnitRead.model_validate(unit)


@router.get(
    "",
    operation_id="list_units",
    response_model=Page[UnitRead],
    responses=problem_responses(422),
    summary="List units, filtered and searched",
)
async def list_units(
    session: SessionDep, page: PageDep, filters: Annotated[UnitFilters, Query()]
) -> Page[UnitRead]:
    return (await service.list_units(session, filters, page)).page(UnitRead.model_validate)


@router.get(
    "/{code}",
    operation_id="get_unit",
    response_model=UnitRead,
    responses={**TAGGED_READ, **problem_responses(404)},
    summary="Get a unit by code",
)
async def get_unit(unit: UnitDep) -> UnitRead:
    return UnitRead.model_validate(unit)


@router.patch(
    "/{code}",
    operation_id="update_unit",
    response_model=UnitRead,
    responses={**TAGGED_WRITE, **problem_responses(404, 412, 422)},
    summary="Change a unit's name, parent or validity",
)
async def update_unit(
    session: SessionDep,
    writer: UnitsWriter,
    unit: UnitDep,
    patch: ReachableUnitPatch,
    if_match: Annotated[str | None, Header(description="ETag from a previous read; 412 if stale")] = None,
) -> UnitRead:
    require_match(if_match, UnitRead.model_validate(unit))
    updated = await service.update_unit(session, unit, patch, writer)
    return UnitRead.model_validate(updated)


@router.get(
    "/{code}/children",
    operation_id="list_unit_children",
    response_model=Page[UnitRead],
    responses=problem_responses(404, 422),
    summary="List the direct children of a unit",
)
async def list_unit_children(
    session: SessionDep,
    unit: UnitDep,
    page: PageDep,
    children: Annotated[ChildrenQuery, Query()],
) -> Page[UnitRead]:
    filters = UnitFilters(parent=unit.code, valid_on=children.valid_on)
    window = await service.list_units(session, filters, page)
    return window.page(UnitRead.model_validate)
