"""Administrative units: rules of the hierarchy, queries and the official-list import."""

from collections.abc import Callable, Sequence
from datetime import date
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from vietnam_provinces import Province, Ward

from app.core.audit import record
from app.core.db import load_for_update
from app.core.errors import Conflict, FieldError, InvalidInput, NotFound
from app.core.filters import equal, given, where_given
from app.core.pagination import PageParams, SortKey, Window, keyset_window
from app.core.security import Principal
from app.core.text import fold, like_escape
from app.units.models import LEVEL_RANK, Unit, UnitLevel
from app.units.schemas import UnitCreate, UnitFilters, UnitImportSummary, UnitUpdate


def _covers(
    outer_from: date | None, outer_to: date | None, inner_from: date | None, inner_to: date | None
) -> bool:
    """Whether the period [inner_from, inner_to] lies inside [outer_from, outer_to] (None = open end)."""
    starts_inside = outer_from is None or (inner_from is not None and inner_from >= outer_from)
    ends_inside = outer_to is None or (inner_to is not None and inner_to <= outer_to)
    return starts_inside and ends_inside


# The 2025 reform: two tiers (province, commune) from this day on.
TWO_TIERS_SINCE = date(2025, 7, 1)


def hierarchy_errors(
    *,
    level: UnitLevel,
    valid_from: date | None,
    valid_to: date | None,
    parent: Unit | None,
    children: Sequence[Unit] = (),
) -> list[FieldError]:
    """Everything wrong with a unit's place in the hierarchy, as field errors (empty when fine)."""
    errors: list[FieldError] = []
    if level == UnitLevel.district and (valid_to is None or valid_to >= TWO_TIERS_SINCE):
        errors.append(
            FieldError(
                field="body.valid_to",
                message="Since 1 July 2025 Vietnam has no district level: a district-level unit "
                "ends by 2025-06-30 (set valid_to)",
                type="no_district_level",
            )
        )
    if parent is not None:
        if LEVEL_RANK[level] <= LEVEL_RANK[parent.level]:
            errors.append(
                FieldError(
                    field="body.level",
                    message=f"A {level} unit cannot belong to a {parent.level} unit",
                    type="level_not_below_parent",
                )
            )
        if not _covers(parent.valid_from, parent.valid_to, valid_from, valid_to):
            errors.append(
                FieldError(
                    field="body.valid_from" if valid_from != parent.valid_from else "body.valid_to",
                    message=(
                        f"The unit's validity must lie within its parent's "
                        f"({parent.valid_from or '…'} to {parent.valid_to or '…'})"
                    ),
                    type="validity_outside_parent",
                )
            )
    outside = [
        child.code
        for child in children
        if not _covers(valid_from, valid_to, child.valid_from, child.valid_to)
    ]
    if outside:
        errors.append(
            FieldError(
                field="body.valid_to",
                message=f"Child units would fall outside this unit's validity: {', '.join(outside[:10])}",
                type="children_outside_validity",
            )
        )
    return errors


async def get_unit(session: AsyncSession, code: str, *, for_update: bool = False) -> Unit:
    unit = await load_for_update(session, Unit, code) if for_update else await session.get(Unit, code)
    if unit is None:
        raise NotFound(f"Unit {code!r} does not exist")
    return unit


async def _parent_for(session: AsyncSession, parent_code: str | None) -> Unit | None:
    if parent_code is None:
        return None
    parent = await session.get(Unit, parent_code)
    if parent is None:
        raise InvalidInput.for_field(
            "body.parent_code", f"Parent unit {parent_code!r} does not exist", "unknown_reference"
        )
    return parent


async def create_unit(session: AsyncSession, data: UnitCreate, actor: Principal) -> Unit:
    if await session.get(Unit, data.code) is not None:
        raise Conflict(f"Unit {data.code!r} already exists")
    parent = await _parent_for(session, data.parent_code)
    errors = hierarchy_errors(
        level=data.level, valid_from=data.valid_from, valid_to=data.valid_to, parent=parent
    )
    if errors:
        raise InvalidInput("The unit does not fit the hierarchy", errors=errors)
    unit = Unit(**data.model_dump(), search_name=fold(data.name))
    session.add(unit)
    try:
        await session.flush()
    except IntegrityError as exc:  # a concurrent request created the same code
        raise Conflict(f"Unit {data.code!r} already exists") from exc
    await record(session, actor, "create", "unit", unit.code)
    return unit


async def update_unit(session: AsyncSession, unit: Unit, patch: UnitUpdate, actor: Principal) -> Unit:
    changes = patch.model_dump(exclude_unset=True)
    merged: dict[str, Any] = {
        "parent_code": unit.parent_code,
        "valid_from": unit.valid_from,
        "valid_to": unit.valid_to,
        **changes,
    }
    if (
        merged["valid_from"] is not None
        and merged["valid_to"] is not None
        and merged["valid_from"] > merged["valid_to"]
    ):
        raise InvalidInput.for_field(
            "body.valid_to", "valid_from must not be after valid_to", "validity_order"
        )
    parent = await _parent_for(session, merged["parent_code"])
    children = (await session.scalars(select(Unit).where(Unit.parent_code == unit.code))).all()
    errors = hierarchy_errors(
        level=unit.level,
        valid_from=merged["valid_from"],
        valid_to=merged["valid_to"],
        parent=parent,
        children=children,
    )
    if errors:
        raise InvalidInput("The change does not fit the hierarchy", errors=errors)
    for field, value in changes.items():
        setattr(unit, field, value)
    if "name" in changes:
        unit.search_name = fold(unit.name)
    await session.flush()
    await record(
        session, actor, "update", "unit", unit.code, patch.model_dump(mode="json", exclude_unset=True)
    )
    return unit


def _filtered(filters: UnitFilters) -> Select[Unit]:
    return where_given(
        select(Unit),
        equal(Unit.level, filters.level),
        equal(Unit.parent_code, filters.parent),
        given(filters.valid_on, _valid_on),
        given(fold(filters.q or "") or None, _named_like),
    )


def _valid_on(day: date) -> ColumnElement[bool]:
    return and_(
        or_(Unit.valid_from.is_(None), Unit.valid_from <= day),
        or_(Unit.valid_to.is_(None), Unit.valid_to >= day),
    )


def _named_like(folded: str) -> ColumnElement[bool]:
    """The name contains the folded words, or the code starts with them."""
    return or_(
        Unit.search_name.like(f"%{like_escape(folded)}%", escape="\\"),
        func.lower(Unit.code).like(f"{like_escape(folded)}%", escape="\\"),
    )


_UNIT_ORDER = SortKey([Unit.code])


async def list_units(session: AsyncSession, filters: UnitFilters, page: PageParams) -> Window[Unit]:
    return await keyset_window(session, _filtered(filters), _UNIT_ORDER, page, lambda unit: [unit.code])


# --- import of the official list -------------------------------------------------------------

IMPORT_BATCH = 500


def official_units() -> list[dict[str, Any]]:
    """The official units from `vietnam-provinces`, provinces first, as rows for the units table."""
    rows: list[dict[str, Any]] = []
    for province in sorted(Province.iter_all(), key=lambda p: int(p.code)):
        rows.append(
            {
                "code": f"{int(province.code):02d}",
                "name": province.name,
                "level": UnitLevel.province.value,
                "division_type": province.division_type.value,
                "parent_code": None,
                # Every current province continues one that existed before 2025 under the same code.
                "valid_from": None,
            }
        )
    for ward in sorted(Ward.iter_all(), key=lambda w: int(w.code)):
        rows.append(
            {
                "code": f"{int(ward.code):05d}",
                "name": ward.name,
                "level": UnitLevel.commune.value,
                "division_type": ward.division_type.value,
                "parent_code": f"{int(ward.province_code):02d}",
                "valid_from": TWO_TIERS_SINCE,  # the communes in the official list were formed then
            }
        )
    return rows


_SYNCED_FIELDS = ("name", "division_type", "parent_code")


async def import_official_units(
    session: AsyncSession, progress: Callable[[int, int], None] | None = None
) -> UnitImportSummary:
    """Insert missing official units and refresh names and parents of existing ones; safe to rerun.

    A code already used by a unit of another level, or by a dissolved unit, is left alone and
    reported as a conflict rather than overwritten.
    """
    rows = official_units()
    existing = {
        unit.code: unit
        for unit in (
            await session.scalars(select(Unit).where(Unit.code.in_([r["code"] for r in rows])))
        ).all()
    }
    summary = UnitImportSummary()
    to_insert: list[dict[str, Any]] = []
    to_update: list[dict[str, Any]] = []
    for row in rows:
        current = existing.get(row["code"])
        if current is None:
            to_insert.append({**row, "search_name": fold(row["name"])})
        elif current.level != row["level"] or current.valid_to is not None:
            summary.conflicts.append(row["code"])
        elif any(getattr(current, field) != row[field] for field in _SYNCED_FIELDS):
            to_update.append(
                {"code": row["code"], **{f: row[f] for f in _SYNCED_FIELDS}, "search_name": fold(row["name"])}
            )
        else:
            summary.unchanged += 1

    done = summary.unchanged + len(summary.conflicts)
    total = len(rows)
    for batch_rows, statement in ((to_insert, insert(Unit)), (to_update, update(Unit))):
        for start in range(0, len(batch_rows), IMPORT_BATCH):
            batch = batch_rows[start : start + IMPORT_BATCH]
            await session.execute(statement, batch)
            done += len(batch)
            if progress is not None:
                progress(done, total)
    summary.created = len(to_insert)
    summary.updated = len(to_update)
    await session.flush()
    return summary
