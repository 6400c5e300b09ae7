"""Sectors and the procedure catalogue: versions, search, and bulk import."""

import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy import ColumnElement, Select, Text, and_, cast, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.db import load_for_update, plan_with_values
from app.core.errors import Conflict, FieldError, InvalidInput, NotFound, request_id_var
from app.core.pagination import Page, PageParams, encode_cursor
from app.core.security import Principal
from app.core.text import fold, like_escape
from app.core.timezone import today_in_vietnam
from app.procedures.models import Procedure, ProcedureVersion, Sector
from app.procedures.schemas import (
    Channel,
    ImportResult,
    OnlineService,
    ProcedureCreate,
    ProcedureFields,
    ProcedureRead,
    ProcedureStatus,
    ProcedureUpdate,
    ProcedureVersionRead,
    SectorCreate,
    SectorRead,
    SectorUpdate,
)
from app.units.models import UnitLevel

COMMAND_LINE = "(command line)"

# --- sectors ---------------------------------------------------------------------------------


async def get_sector(session: AsyncSession, code: str, *, for_update: bool = False) -> Sector:
    sector = await load_for_update(session, Sector, code) if for_update else await session.get(Sector, code)
    if sector is None:
        raise NotFound(f"Sector {code!r} does not exist")
    return sector


async def create_sector(session: AsyncSession, data: SectorCreate) -> Sector:
    if await session.get(Sector, data.code) is not None:
        raise Conflict(f"Sector {data.code!r} already exists")
    sector = Sector(code=data.code, name=data.name)
    session.add(sector)
    try:
        await session.flush()
    except IntegrityError as exc:
        raise Conflict(f"Sector {data.code!r} already exists") from exc
    return sector


async def update_sector(session: AsyncSession, sector: Sector, data: SectorUpdate) -> Sector:
    sector.name = data.name
    await session.flush()
    return sector


async def list_sectors(session: AsyncSession, page: PageParams) -> Page[SectorRead]:
    query = select(Sector).order_by(Sector.code).limit(page.limit + 1)
    if page.after:
        query = query.where(Sector.code > str(page.after[0]))
    rows = (await session.scalars(query)).all()
    items = [SectorRead.model_validate(row) for row in rows[: page.limit]]
    return Page[SectorRead](
        items=items, next_cursor=encode_cursor([items[-1].code]) if len(rows) > page.limit else None
    )


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


async def procedure_as_of(session: AsyncSession, code: str, day: date) -> ProcedureRead:
    await get_procedure(session, code)
    version = await version_in_force(session, code, day)
    if version is None:
        raise NotFound(f"Procedure {code!r} was not yet in force on {day.isoformat()}")
    return version_to_read(version)


async def history(session: AsyncSession, code: str, page: PageParams) -> Page[ProcedureVersionRead]:
    await get_procedure(session, code)
    query = select(ProcedureVersion).where(ProcedureVersion.procedure_code == code)
    if page.after:
        query = query.where(ProcedureVersion.version < int(page.after[0]))
    rows = (
        await session.scalars(query.order_by(ProcedureVersion.version.desc()).limit(page.limit + 1))
    ).all()
    items = [
        ProcedureVersionRead(
            version=row.version,
            in_force_from=row.in_force_from,
            changed_at=row.changed_at,
            changed_by=row.changed_by,
            request_id=row.request_id,
            changes=row.changes,
        )
        for row in rows[: page.limit]
    ]
    more = len(rows) > page.limit
    return Page[ProcedureVersionRead](
        items=items, next_cursor=encode_cursor([items[-1].version]) if more else None
    )


class ProcedureFilters:
    def __init__(
        self,
        *,
        q: str | None = None,
        sector: str | None = None,
        level: UnitLevel | None = None,
        online_service: OnlineService | None = None,
        status: ProcedureStatus | None = None,
        channel: Channel | None = None,
    ) -> None:
        self.q = q.strip() if q and q.strip() else None
        self.sector = sector
        self.level = level
        self.online_service = online_service
        self.status = status
        self.channel = channel


def _filtered(filters: ProcedureFilters) -> Select[Procedure]:
    query = select(Procedure)
    if filters.sector is not None:
        query = query.where(Procedure.sector_code == filters.sector)
    if filters.level is not None:
        query = query.where(getattr(Procedure, f"level_{filters.level.value}").is_(True))
    if filters.channel is not None:
        query = query.where(getattr(Procedure, f"channel_{filters.channel.value}").is_(True))
    if filters.online_service is not None:
        query = query.where(Procedure.online_service == filters.online_service.value)
    if filters.status is not None:
        query = query.where(Procedure.status == filters.status.value)
    return query


def _search_ranks(q: str) -> list[ColumnElement[bool]]:
    """The conditions of the ranks of a search, best first; each excludes the ranks before it.

    0: the exact code; 1: the name starts with the words; 2: the name contains them; 3: the code
    starts with ``q``. Each rank can be served by an index, so a page costs a few index scans.
    """
    code = q.strip().lower()
    name = like_escape(fold(q))
    exact_code = Procedure.search_code == code
    name_starts = Procedure.search_name.like(f"{name}%", escape="\\")
    name_contains = Procedure.search_name.like(f"%{name}%", escape="\\")
    code_starts = Procedure.search_code.like(f"{like_escape(code)}%", escape="\\")
    return [
        exact_code,
        and_(name_starts, ~exact_code),
        and_(name_contains, ~name_starts, ~exact_code),
        and_(code_starts, ~name_contains, ~exact_code),
    ]


@dataclass(frozen=True)
class ListedProcedure:
    """A procedure as listed: its stored JSON is passed through, not parsed and re-serialised."""

    code: str
    version: int
    in_force_from: date | None
    updated_at: datetime
    data_json: str

    def json(self) -> str:
        meta = json.dumps(
            {
                "code": self.code,
                "version": self.version,
                "in_force_from": self.in_force_from.isoformat() if self.in_force_from else None,
                "updated_at": self.updated_at.isoformat().replace("+00:00", "Z"),
            },
            ensure_ascii=False,
        )
        return meta[:-1] + "," + self.data_json.lstrip()[1:]


_LISTED_COLUMNS = (
    Procedure.code,
    Procedure.version,
    Procedure.in_force_from,
    Procedure.updated_at,
    cast(Procedure.data, Text),
)


async def list_procedures(
    session: AsyncSession, filters: ProcedureFilters, page: PageParams
) -> tuple[list[ListedProcedure], str | None]:
    """One page of the filtered catalogue, ranked when searching, with the next page's cursor."""
    query = _filtered(filters).with_only_columns(*_LISTED_COLUMNS)
    if filters.q is None:
        if page.after:
            query = query.where(Procedure.code > str(page.after[0]))
        rows = (await session.execute(query.order_by(Procedure.code).limit(page.limit + 1))).all()
        listed = [ListedProcedure(*row) for row in rows[: page.limit]]
        cursor = encode_cursor([listed[-1].code]) if len(rows) > page.limit else None
        return listed, cursor

    # A generic plan cannot turn `LIKE 'prefix%'` into an index range: plan each search afresh.
    await plan_with_values(session)
    # Rank by rank, each an index-served query in name order, until the page (and one more row)
    # is full: a common word fills the page from the first ranks and never reaches the others.
    start_rank, after_name, after_code = page.after if page.after else (0, None, None)
    wanted = page.limit + 1
    found: list[tuple[int, str, Any]] = []
    for rank, condition in enumerate(_search_ranks(filters.q)):
        if rank < int(start_rank) or len(found) >= wanted:
            continue
        ranked = query.add_columns(Procedure.search_name).where(condition)
        if rank == int(start_rank) and after_code is not None:
            ranked = ranked.where(
                or_(
                    Procedure.search_name > str(after_name),
                    and_(Procedure.search_name == str(after_name), Procedure.code > str(after_code)),
                )
            )
        batch = await session.execute(
            ranked.order_by(Procedure.search_name, Procedure.code).limit(wanted - len(found))
        )
        found += [(rank, row[-1], row[:-1]) for row in batch]
    listed = [ListedProcedure(*row) for _rank, _name, row in found[: page.limit]]
    cursor = None
    if len(found) > page.limit:
        last_rank, last_name, _row = found[page.limit - 1]
        cursor = encode_cursor([last_rank, last_name, listed[-1].code])
    return listed, cursor


async def procedure_chunks(
    session: AsyncSession, filters: ProcedureFilters, chunk: int = 500
) -> AsyncIterator[list[ProcedureRead]]:
    """The filtered catalogue in code order, a chunk at a time (for streaming exports)."""
    after: str | None = None
    while True:
        query = _filtered(filters).order_by(Procedure.code).limit(chunk)
        if filters.q is not None:
            query = query.where(or_(*_search_ranks(filters.q)))
        if after is not None:
            query = query.where(Procedure.code > after)
        rows = (await session.scalars(query)).all()
        if not rows:
            return
        yield [to_read(row) for row in rows]
        after = rows[-1].code


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


async def _missing_sectors(session: AsyncSession, codes: set[str]) -> set[str]:
    if not codes:
        return set()
    found = set((await session.scalars(select(Sector.code).where(Sector.code.in_(codes)))).all())
    return codes - found


def _new_procedure(data: ProcedureCreate, actor: Principal | None) -> tuple[Procedure, ProcedureVersion]:
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
    if await _missing_sectors(session, {data.sector_code}):
        raise InvalidInput.for_field(
            "body.sector_code", f"Sector {data.sector_code!r} does not exist", "unknown_reference"
        )
    procedure, version = _new_procedure(data, actor)
    session.add(procedure)
    await session.flush()
    session.add(version)
    try:
        await session.flush()
    except IntegrityError as exc:
        raise Conflict(f"Procedure {data.code!r} already exists") from exc
    return procedure


def _next_version(
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
    changes = patch.model_dump(mode="json", exclude_unset=True, exclude={"in_force_from"})
    try:
        fields = ProcedureFields.model_validate({**procedure.data, **changes})
    except ValidationError as exc:
        raise InvalidInput(
            "The change makes the procedure invalid", errors=FieldError.from_pydantic(exc.errors(), "body")
        ) from exc
    if "sector_code" in changes and await _missing_sectors(session, {fields.sector_code}):
        raise InvalidInput.for_field(
            "body.sector_code", f"Sector {fields.sector_code!r} does not exist", "unknown_reference"
        )
    in_force_from = patch.in_force_from or today_in_vietnam()
    _check_in_force_from(procedure, in_force_from, "body.in_force_from")
    version = _next_version(procedure, fields, in_force_from, actor)
    if version is not None:
        session.add(version)
        await session.flush()
    return procedure


# --- import ----------------------------------------------------------------------------------

MAX_IMPORT_ROWS = 5000


async def import_procedures(
    session: AsyncSession, rows: Sequence[dict[str, Any] | FieldError], actor: Principal | None
) -> tuple[ImportResult, list[ProcedureVersion]]:
    """Validate every row, then apply all of them or none.

    ``rows`` are raw objects (from JSON or CSV) or, for rows the reader could not even parse,
    the error. New codes are created; existing ones get a new version (in force from today)
    when something differs, and are left alone when nothing does. Returns the counts and the
    versions written.
    """
    if len(rows) > MAX_IMPORT_ROWS:
        raise InvalidInput.for_field(
            "body", f"An import takes at most {MAX_IMPORT_ROWS} rows", "too_many_rows"
        )
    errors: list[FieldError] = [row for row in rows if isinstance(row, FieldError)]
    valid: list[tuple[int, ProcedureCreate]] = []
    seen: dict[str, int] = {}
    for number, raw in enumerate(rows, start=1):
        if isinstance(raw, FieldError):
            continue
        try:
            data = ProcedureCreate.model_validate(raw)
        except ValidationError as exc:
            errors += FieldError.from_pydantic(exc.errors(), row=number, whole="row")
            continue
        if data.code in seen:
            errors.append(
                FieldError(
                    field="code",
                    message=f"Code repeated from row {seen[data.code]}",
                    type="duplicate",
                    row=number,
                )
            )
            continue
        seen[data.code] = number
        valid.append((number, data))

    missing = await _missing_sectors(session, {data.sector_code for _, data in valid})
    errors += [
        FieldError(
            field="sector_code",
            message=f"Sector {data.sector_code!r} does not exist",
            type="unknown_reference",
            row=number,
        )
        for number, data in valid
        if data.sector_code in missing
    ]

    existing: dict[str, Procedure] = {}
    codes = list(seen)
    for start in range(0, len(codes), 1000):
        chunk = codes[start : start + 1000]
        existing |= {
            p.code: p
            for p in (await session.scalars(select(Procedure).where(Procedure.code.in_(chunk)))).all()
        }

    today = today_in_vietnam()
    for number, data in valid:
        current = existing.get(data.code)
        if current is not None and current.in_force_from is not None and current.in_force_from > today:
            errors.append(
                FieldError(
                    field="code",
                    message=f"A version takes effect on {current.in_force_from}; change it with PATCH",
                    type="in_force_from_too_early",
                    row=number,
                )
            )

    if errors:
        errors.sort(key=lambda error: error.row or 0)
        raise InvalidInput(
            f"{len({e.row for e in errors})} rows are invalid; nothing was imported", errors=errors
        )

    result = ImportResult()
    new_procedures: list[Procedure] = []
    versions: list[ProcedureVersion] = []
    for _number, data in valid:
        current = existing.get(data.code)
        if current is None:
            procedure, version = _new_procedure(data, actor)
            new_procedures.append(procedure)
            versions.append(version)
            result.created += 1
            continue
        fields = ProcedureFields.model_validate(data.model_dump(exclude={"code"}))
        next_version = _next_version(current, fields, today, actor)
        if next_version is None:
            result.unchanged += 1
        else:
            versions.append(next_version)
            result.updated += 1
    session.add_all(new_procedures)
    await session.flush()
    session.add_all(versions)
    await session.flush()
    return result, versions
