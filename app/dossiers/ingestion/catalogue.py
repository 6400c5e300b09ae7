"""Resolve: the procedures (each version in force on its day) and units a batch refers to."""

from collections import defaultdict
from datetime import date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.calendar.working_time import TimeUnit
from app.core.errors import (
    InvalidInput,
)
from app.core.timezone import local_day
from app.dossiers.lifecycle import Reception
from app.procedures.models import ProcedureVersion
from app.units.models import Unit
from app.units.service import TWO_TIERS_SINCE


class Catalogue:
    """The procedure versions and units a batch refers to, loaded once per batch."""

    def __init__(self, versions: dict[str, list[tuple[date | None, dict[str, Any]]]], units: dict[str, Any]):
        self.versions = versions
        self.units = units
        # A batch's receptions share few procedure versions and unit levels: each Reception is built
        # once per (procedure, version, level), not once per dossier.
        self._receptions: dict[tuple[str, int, str], Reception] = {}

    def in_force(self, procedure_code: str, day: date) -> dict[str, Any]:
        # The position first: it refuses a procedure the catalogue lacks, before any look-up by it.
        position = self._version_in_force(procedure_code, day)
        return self.versions[procedure_code][position][1]

    def _version_in_force(self, procedure_code: str, day: date) -> int:
        """The position of the procedure's version in force on the day among its versions."""
        history = self.versions.get(procedure_code)
        if not history:
            raise InvalidInput.for_field(
                "procedure_code", f"Procedure {procedure_code!r} does not exist", "unknown_reference"
            )
        # Versions are in order, so the last one in force by the day applies.
        for position in range(len(history) - 1, -1, -1):
            since = history[position][0]
            if since is None or since <= day:
                return position
        raise InvalidInput.for_field(
            "procedure_code", f"Procedure {procedure_code!r} was not in force on {day}", "not_in_force"
        )

    def reception(self, procedure_code: str, unit_code: str, occurred_at: datetime) -> Reception:
        day = local_day(occurred_at)
        unit = self.units.get(unit_code)
        if unit is None:
            raise InvalidInput.for_field(
                "unit_code", f"Unit {unit_code!r} does not exist", "unknown_reference"
            )
        if unit.level == "district" and day >= TWO_TIERS_SINCE:
            raise InvalidInput.for_field(
                "unit_code",
                f"Unit {unit_code!r} is at district level, which no longer exists on {day} (two tiers since "
                f"{TWO_TIERS_SINCE})",
                "no_district_level",
            )
        if (unit.valid_from and day < unit.valid_from) or (unit.valid_to and day > unit.valid_to):
            raise InvalidInput.for_field(
                "unit_code", f"Unit {unit_code!r} did not exist on {day}", "unit_not_valid"
            )
        position = self._version_in_force(procedure_code, day)
        key = (procedure_code, position, unit.level)
        reception = self._receptions.get(key)
        if reception is None:
            data = self.versions[procedure_code][position][1]
            reception = self._receptions[key] = Reception(
                unit_level=unit.level,
                sector_code=data["sector_code"],
                procedure_levels=tuple(data["levels"]),
                processing_value=float(data["processing_time"]["value"]),
                processing_unit=TimeUnit(data["processing_time"]["unit"]),
                procedure_abolished=data["status"] == "abolished",
            )
        return reception


async def load_catalogue(session: AsyncSession, procedure_codes: set[str], unit_codes: set[str]) -> Catalogue:
    versions: dict[str, list[tuple[date | None, dict[str, Any]]]] = defaultdict(list)
    if procedure_codes:
        # Only the parts a due date needs: decoding whole versions would dominate a batch.
        data = ProcedureVersion.data
        rows = await session.execute(
            select(
                ProcedureVersion.procedure_code,
                ProcedureVersion.in_force_from,
                data["levels"],
                data["processing_time"],
                data["status"],
                data["sector_code"],
                data["online_service"],
            )
            .where(ProcedureVersion.procedure_code.in_(procedure_codes))
            .order_by(ProcedureVersion.procedure_code, ProcedureVersion.version)
        )
        for code, since, levels, processing_time, status, sector_code, online_service in rows:
            wanted = {
                "levels": levels,
                "processing_time": processing_time,
                "status": status,
                "sector_code": sector_code,
                "online_service": online_service,
            }
            versions[code].append((since, wanted))
    units: dict[str, Any] = {}
    if unit_codes:
        rows = await session.execute(
            select(Unit.code, Unit.level, Unit.valid_from, Unit.valid_to).where(Unit.code.in_(unit_codes))
        )
        units = {row.code: row for row in rows}
    return Catalogue(versions, units)
