"""Write: the batch's rows stored set-based (COPY on PostgreSQL), the data versions moved, counters
last (or, for a bulk load's fold, their increments summed by day for its merge)."""

from typing import Any

from sqlalchemy import Table, bindparam, delete, insert, update

from app.core.data_version import touch
from app.core.db import bulk_insert
from app.dossiers import counters
from app.dossiers.ingestion.batch import STATE_FIELDS, Batch
from app.dossiers.models import Dossier, DossierEvent, DossierEventCorrection
from app.units.access import provinces_of

_DOSSIERS: Table = Dossier.__table__  # type: ignore[assignment]
_EVENTS: Table = DossierEvent.__table__  # type: ignore[assignment]
_CORRECTIONS: Table = DossierEventCorrection.__table__  # type: ignore[assignment]


async def write_batch(batch: Batch, day_sums: dict[counters.DayKey, list[int]] | None = None) -> None:
    """Store what the batch decided: dossiers, events and corrections set-based, then the counters
    — or, for a bulk load that merges its counters when it ends, their increments in ``day_sums``."""
    session = batch.session
    now = batch.now
    # The statistics of these provinces change; nothing of the others (data_version).
    changed_units = {s.unit_code for s in (*batch.new_dossiers, *batch.changed_dossiers)}
    changed_units |= {unit for unit, *_rest in batch.marks}
    touch(session, await provinces_of(session, changed_units))
    if batch.new_dossiers:
        await bulk_insert(
            session,
            _DOSSIERS,
            [{**state.as_row(), "created_at": now, "updated_at": now} for state in batch.new_dossiers],
        )
    if batch.changed_dossiers:
        values: dict[str, Any] = {name: bindparam(name) for name in STATE_FIELDS if name != "code"}
        await session.execute(
            update(_DOSSIERS).where(_DOSSIERS.c.code == bindparam("dossier_code")).values(values),
            [{**state.as_row(), "dossier_code": state.code} for state in batch.changed_dossiers],
        )
    if batch.gone_dossiers:
        await session.execute(delete(_DOSSIERS).where(_DOSSIERS.c.code.in_(batch.gone_dossiers)))
    if batch.event_rows:
        await bulk_insert(session, _EVENTS, batch.event_rows)
    for row in batch.event_updates:
        values = {name: value for name, value in row.items() if name != "row_id"}
        await session.execute(update(_EVENTS).where(_EVENTS.c.id == row["row_id"]).values(values))
    if batch.correction_rows:
        await session.execute(insert(_CORRECTIONS), batch.correction_rows)
    if day_sums is not None:
        counters.add_day_marks(day_sums, batch.marks)
        return
    # Last, so that the rows every batch of a unit shares stay locked for the shortest time.
    rows = [row for row in counters.counter_rows(batch.marks) if any(row[1])]
    await counters.add_counters(session, rows)
