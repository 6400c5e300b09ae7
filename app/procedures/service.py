"""Sectors and the procedures of the catalogue: reading, creating and changing them, and their versions.

Listing and searching live in ``search``, the bulk import in ``importing``.
"""

from datetime import date, datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.audit import COMMAND_LINE, record
from app.core.db import load_for_update
from app.core.errors import Conflict, FieldError, InvalidInput, NotFound, request_id_var
from app.core.pagination import PageParams, SortKey, Window, keyset_window
from app.core.security import Principal
from app.core.text import fold
from app.core.timezone import today_in_vietnam
from app.procedures.models import Channel, Procedure, ProcedureVersion, Sector
from app.procedures.schemas import (
    ProcedureCreate,
    ProcedureFields,
    ProcedureRead,
    ProcedureUpdate,
    SectorCreate,
    SectorUpdate,
)
from app.units.models import UnitLevel

# --- sectors ---------------------------------------------------------------------------------


async def get_sector(session: AsyncSession, code: str, *, for_update: bool = False) -> Sector:
    sector = await load_for_update(session, Sector, code) if for_update else await session.get(Sector, code)
    if sector is None:
        raise NotFound(f"Sector {code!r} does not exist")
    return sector


async def create_sector(session: AsyncSession, data: SectorCreate, actor: Principal) -> Sector:
    if await session.get(Sector, data.code) is not None:
        raise Conflict(f"Sector {data.code!r} already exists")
    sector = Sector(code=data.code, name=data.name)
    session.add(sector)
    try:
        await session.flush()
    except IntegrityError as exc:
        raise Conflict(f"Sector {data.code!r} already exists") from exc
    await record(session, actor, "create", "sector", sector.code)
    return sector


async def update_sector(
    session: AsyncSession, sector: Sector, data: SectorUpdate, actor: Principal
) -> Sector:
    sector.name = data.name
    await session.flush()
    await record(session, actor, "update", "sector", sector.code, data.model_dump(mode="json"))
    return sector


async def sector_name(session: AsyncSession, code: str) -> str | None:
    """The name of the sector, None when there is no such sector."""
    sector = await session.get(Sector, code)
    return sector.name if sector else None


# Cursor: `[code]`.
_SECTOR_ORDER = SortKey([Sector.code])


async def list_sectors(session: AsyncSession, page: PageParams) -> Window[Sector]:
    return await keyset_window(session, select(Sector), _SECTOR_ORDER, page, lambda sector: [sector.code])


# --- procedures: reading ---------------------------------------------------------------------


def _read(
    data: dict[str, Any], code: str, version: int, in_force_from: date | None, updated_at: datetime
) -> ProcedureRead:
    return ProcedureRead.model_validate(
        {**data, "code": code, "version": version, "in_force_from": in_force_from, "updated_at": updated_at}
    )


def to_read(procedure: Procedure) -> ProcedureRead:
    return _read(
        procedure.data, procedure.code, procedure.version, procedure.in_force_from, procedure.updated_at
    )


def version_to_read(version: ProcedureVersion) -> ProcedureRead:
    return _read(
        version.data, version.procedure_code, version.version, version.in_force_from, version.changed_at
    )


async def get_procedure(session: AsyncSession, code: str, *, for_update: bool = False) -> Procedure:
    procedure = (
        await load_for_update(session, Procedure, code) if for_update else await session.get(Procedure, code)
    )
    if procedure is None:
        raise NotFound(f"Procedure {code!r} does not exist")
    return procedure


async def version_in_force(session: AsyncSession, code: str, day: date) -> ProcedureVersion | None:
    """The version of the procedure that applied on ``day`` (None before its first version)."""
    # Versions take effect in order, so the newest one already in force on that day is the answer.
    return await session.scalar(
        select(ProcedureVersion)
        .where(
            ProcedureVersion.procedure_code == code,
            or_(ProcedureVersion.in_force_from.is_(None), ProcedureVersion.in_force_from <= day),
        )
        .order_by(ProcedureVersion.version.desc())
        .limit(1)
    )


async def procedure_as_of(session: AsyncSession, procedure: Procedure, day: date) -> ProcedureRead:
    version = await version_in_force(session, procedure.code, day)
    if version is None:
        raise NotFound(f"Procedure {procedure.code!r} was not yet in force on {day.isoformat()}")
    return version_to_read(version)


# Cursor: `[version]`, newest first.
_HISTORY_ORDER = SortKey([ProcedureVersion.version], descending=True)


async def history(session: AsyncSession, procedure: Procedure, page: PageParams) -> Window[ProcedureVersion]:
    """The versions of the procedure, newest first."""
    query = select(ProcedureVersion).where(ProcedureVersion.procedure_code == procedure.code)
    return await keyset_window(session, query, _HISTORY_ORDER, page, lambda version: [version.version])


# --- procedures: writing ---------------------------------------------------------------------


def _columns(fields: ProcedureFields) -> dict[str, Any]:
    return {
        "name": fields.name,
        "search_name": fold(fields.name),
        "sector_code": fields.sector_code,
        **{f"level_{level.value}": level in fields.levels for level in UnitLevel},
        **{f"channel_{channel.value}": channel in fields.channels for channel in Channel},
        "online_service": fields.online_service.value,
        "status": fields.status.value,
        "data": fields.model_dump(mode="json"),
    }


def _diff(before: dict[str, Any], after: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        field: {"from": before.get(field), "to": value}
        for field, value in after.items()
        if before.get(field) != value
    }


def _actor_name(actor: Principal | None) -> str:
    return actor.name if actor else COMMAND_LINE


async def missing_sectors(session: AsyncSession, codes: set[str]) -> set[str]:
    if not codes:
        return set()
    found = set((await session.scalars(select(Sector.code).where(Sector.code.in_(codes)))).all())
    return codes - found


def new_procedure(data: ProcedureCreate, actor: Principal | None) -> tuple[Procedure, ProcedureVersion]:
    fields = ProcedureFields.model_validate(data.model_dump(exclude={"code"}))
    columns = _columns(fields)
    in_force_from = fields.effective_from
    procedure = Procedure(
        code=data.code, search_code=data.code.lower(), version=1, in_force_from=in_force_from, **columns
    )
    version = ProcedureVersion(
        procedure_code=data.code,
        version=1,
        in_force_from=in_force_from,
        data=columns["data"],
        changes=_diff({}, columns["data"]),
        changed_by=_actor_name(actor),
        request_id=request_id_var.get(),
    )
    return procedure, version


async def create_procedure(
    session: AsyncSession, data: ProcedureCreate, actor: Principal | None
) -> Procedure:
    if await session.get(Procedure, data.code) is not None:
        raise Conflict(f"Procedure {data.code!r} already exists")
    if await missing_sectors(session, {data.sector_code}):
        raise InvalidInput.for_field(
            "body.sector_code", f"Sector {data.sector_code!r} does not exist", "unknown_reference"
        )
    procedure, version = new_procedure(data, actor)
    session.add(procedure)
    await session.flush()
    session.add(version)
    try:
        await session.flush()
    except IntegrityError as exc:
        raise Conflict(f"Procedure {data.code!r} already exists") from exc
    await record(session, actor, "create", "procedure", procedure.code)
    return procedure


def next_version(
    procedure: Procedure, fields: ProcedureFields, in_force_from: date, actor: Principal | None
) -> ProcedureVersion | None:
    """Move the procedure to a new version with ``fields``; None when nothing changes."""
    columns = _columns(fields)
    changes = _diff(procedure.data, columns["data"])
    if not changes:
        return None
    for name, value in columns.items():
        setattr(procedure, name, value)
    procedure.version += 1
    procedure.in_force_from = in_force_from
    return ProcedureVersion(
        procedure_code=procedure.code,
        version=procedure.version,
        in_force_from=in_force_from,
        data=columns["data"],
        changes=changes,
        changed_by=_actor_name(actor),
        request_id=request_id_var.get(),
    )


# A version decided today takes effect within years, not centuries: a date far ahead would block
# every change dated before it (versions follow each other in time).
MAX_YEARS_AHEAD = 10


def _check_in_force_from(procedure: Procedure, in_force_from: date, field: str) -> None:
    if in_force_from.year > today_in_vietnam().year + MAX_YEARS_AHEAD:
        raise InvalidInput.for_field(
            field,
            f"A new version takes effect within {MAX_YEARS_AHEAD} years, not on {in_force_from}",
            "in_force_from_too_late",
        )
    if procedure.in_force_from is not None and in_force_from < procedure.in_force_from:
        raise InvalidInput.for_field(
            field,
            f"A new version cannot take effect before the current one ({procedure.in_force_from})",
            "in_force_from_too_early",
        )


async def update_procedure(
    session: AsyncSession, procedure: Procedure, patch: ProcedureUpdate, actor: Principal | None
) -> Procedure:
    """Change the procedure by ``patch``; a new version, when something differs, is audited."""
    if await revise(session, procedure, patch, actor) is not None:
        await record(session, actor, "update", "procedure", procedure.code, {"version": procedure.version})
    return procedure


async def revise(
    session: AsyncSession, procedure: Procedure, patch: ProcedureUpdate, actor: Principal | None
) -> ProcedureVersion | None:
    """The new version ``patch`` makes of the procedure, None when nothing differs. Not audited
    on its own: for a caller whose own audit record covers it (a proposal implemented)."""
    changes = patch.model_dump(mode="json", exclude_unset=True, exclude={"in_force_from"})
    try:
        fields = ProcedureFields.model_validate({**procedure.data, **changes})
    except ValidationError as exc:
        raise InvalidInput(
            "The change makes the procedure invalid", errors=FieldError.from_pydantic(exc.errors(), "body")
        ) from exc
    if "sector_code" in changes and await missing_sectors(session, {fields.sector_code}):
        raise InvalidInput.for_field(
            "body.sector_code", f"Sector {fields.sector_code!r} does not exist", "unknown_reference"
        )
    in_force_from = patch.in_force_from or today_in_vietnam()
    _check_in_force_from(procedure, in_force_from, "body.in_force_from")
    version = next_version(procedure, fields, in_force_from, actor)
    if version is not None:
        session.add(version)
        await session.flush()
    return version
