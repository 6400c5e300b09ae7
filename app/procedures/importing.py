"""The bulk import of procedures (from a JSON array or a CSV file): every row or none.

Phases: parse the rows into procedures, resolve what they refer to (sectors, the procedures they
change), refuse the whole import if any row is wrong, then write. Parsing and building what is
written take a second or so for the largest import: they run in a worker thread, so the event loop
keeps serving other requests meanwhile.
"""

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.audit import record_many
from app.core.errors import FieldError, InvalidInput
from app.core.security import Principal
from app.core.timezone import today_in_vietnam
from app.procedures.models import Procedure, ProcedureVersion
from app.procedures.schemas import ImportResult, ProcedureCreate, ProcedureFields
from app.procedures.service import missing_sectors, new_procedure, next_version

MAX_IMPORT_ROWS = 5000
# Codes looked up per query: an `IN` list of a bounded length.
_LOOKUP_CHUNK = 1000


@dataclass(frozen=True)
class _Row:
    """A row that parsed into a procedure, with its 1-based number in the upload."""

    number: int
    data: ProcedureCreate


@dataclass
class _Parsed:
    rows: list[_Row]
    errors: list[FieldError]


async def import_procedures(
    session: AsyncSession, rows: Sequence[dict[str, Any] | FieldError], actor: Principal | None
) -> ImportResult:
    """Validate every row, then apply all of them or none.

    ``rows`` are raw objects (from JSON or CSV) or, for rows the reader could not even parse,
    the error. New codes are created; existing ones get a new version (in force from today)
    when something differs, and are left alone when nothing does; each procedure created or
    changed is audited. Returns the counts.
    """
    _check_size(rows)
    parsed = await asyncio.to_thread(_parse, rows)
    unreadable = [row for row in rows if isinstance(row, FieldError)]
    errors = [*unreadable, *parsed.errors, *await _unknown_sectors(session, parsed.rows)]
    existing = await _existing(session, [row.data.code for row in parsed.rows])
    today = today_in_vietnam()
    errors += _changes_behind_future_versions(parsed.rows, existing, today)
    _refuse_if_any(errors)
    result, versions = await _write(session, parsed.rows, existing, today, actor)
    await record_many(
        session,
        actor,
        [("create" if v.version == 1 else "update", "procedure", v.procedure_code) for v in versions],
    )
    return result


# --- parsing ---------------------------------------------------------------------------------


def _check_size(rows: Sequence[object]) -> None:
    if len(rows) > MAX_IMPORT_ROWS:
        raise InvalidInput.for_field(
            "body", f"An import takes at most {MAX_IMPORT_ROWS} rows", "too_many_rows"
        )


def _parse(rows: Sequence[dict[str, Any] | FieldError]) -> _Parsed:
    """The rows that are procedures, each code once; the errors of the others (reader errors aside)."""
    parsed = _Parsed(rows=[], errors=[])
    first_row_of: dict[str, int] = {}
    for number, raw in enumerate(rows, start=1):
        if isinstance(raw, FieldError):
            continue
        try:
            data = ProcedureCreate.model_validate(raw)
        except ValidationError as exc:
            parsed.errors += FieldError.from_pydantic(exc.errors(), row=number, whole="row")
            continue
        if data.code in first_row_of:
            parsed.errors.append(_repeated(data.code, first_row_of[data.code], number))
            continue
        first_row_of[data.code] = number
        parsed.rows.append(_Row(number, data))
    return parsed


def _repeated(code: str, first: int, number: int) -> FieldError:
    return FieldError(field="code", message=f"Code repeated from row {first}", type="duplicate", row=number)


# --- resolving references --------------------------------------------------------------------


async def _unknown_sectors(session: AsyncSession, rows: list[_Row]) -> list[FieldError]:
    missing = await missing_sectors(session, {row.data.sector_code for row in rows})
    return [
        FieldError(
            field="sector_code",
            message=f"Sector {row.data.sector_code!r} does not exist",
            type="unknown_reference",
            row=row.number,
        )
        for row in rows
        if row.data.sector_code in missing
    ]


async def _existing(session: AsyncSession, codes: list[str]) -> dict[str, Procedure]:
    """The procedures of the catalogue among ``codes``, by code."""
    existing: dict[str, Procedure] = {}
    for start in range(0, len(codes), _LOOKUP_CHUNK):
        chunk = codes[start : start + _LOOKUP_CHUNK]
        found = await session.scalars(select(Procedure).where(Procedure.code.in_(chunk)))
        existing |= {procedure.code: procedure for procedure in found.all()}
    return existing


def _changes_behind_future_versions(
    rows: list[_Row], existing: dict[str, Procedure], today: date
) -> list[FieldError]:
    """An import takes effect today: it cannot change a procedure whose latest version comes later."""
    errors: list[FieldError] = []
    for row in rows:
        current = existing.get(row.data.code)
        if current is not None and current.in_force_from is not None and current.in_force_from > today:
            errors.append(
                FieldError(
                    field="code",
                    message=f"A version takes effect on {current.in_force_from}; change it with PATCH",
                    type="in_force_from_too_early",
                    row=row.number,
                )
            )
    return errors


def _refuse_if_any(errors: list[FieldError]) -> None:
    if errors:
        errors.sort(key=lambda error: error.row or 0)
        raise InvalidInput(
            f"{len({e.row for e in errors})} rows are invalid; nothing was imported", errors=errors
        )


# --- writing ---------------------------------------------------------------------------------


async def _write(
    session: AsyncSession,
    rows: list[_Row],
    existing: dict[str, Procedure],
    today: date,
    actor: Principal | None,
) -> tuple[ImportResult, list[ProcedureVersion]]:
    """Create the new procedures and move the changed ones to a new version in force ``today``."""
    # The session is not used while the thread runs (this coroutine waits for it), and nothing the
    # thread touches is loaded lazily: `existing` holds every column, and autoflush is off.
    planned = await asyncio.to_thread(_plan, rows, existing, today, actor)
    session.add_all(planned.new_procedures)
    await session.flush()
    session.add_all(planned.versions)
    await session.flush()
    return planned.result, planned.versions


@dataclass
class _Planned:
    result: ImportResult
    new_procedures: list[Procedure]
    versions: list[ProcedureVersion]


def _plan(rows: list[_Row], existing: dict[str, Procedure], today: date, actor: Principal | None) -> _Planned:
    """The new procedures, and the changed ones moved to their new version, with the versions."""
    planned = _Planned(ImportResult(), [], [])
    for row in rows:
        current = existing.get(row.data.code)
        if current is None:
            procedure, version = new_procedure(row.data, actor)
            planned.new_procedures.append(procedure)
            planned.versions.append(version)
            planned.result.created += 1
            continue
        fields = ProcedureFields.model_validate(row.data.model_dump(exclude={"code"}))
        changed = next_version(current, fields, today, actor)
        if changed is None:
            planned.result.unchanged += 1
        else:
            planned.versions.append(changed)
            planned.result.updated += 1
    return planned
