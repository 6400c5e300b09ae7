"""Write: the batch's rows stored set-based (COPY on PostgreSQL), the data versions moved, counters last."""

import json
from operator import itemgetter
from typing import Any

import asyncpg
from sqlalchemy import JSON, Table, bindparam, delete, insert, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.data_version import touch
from app.dossiers import counters
from app.dossiers.ingestion.batch import STATE_FIELDS, Batch
from app.dossiers.models import Dossier, DossierEvent, DossierEventCorrection
from app.units.access import provinces_of

_DOSSIERS: Table = Dossier.__table__  # type: ignore[assignment]
_EVENTS: Table = DossierEvent.__table__  # type: ignore[assignment]
_CORRECTIONS: Table = DossierEventCorrection.__table__  # type: ignore[assignment]


async def bulk_insert(session: AsyncSession, table: Table, rows: list[dict[str, Any]]) -> None:
    """Insert many rows: with COPY on PostgreSQL (several times faster than INSERT), else executemany.

    Rows must carry every column that has a Python-side default, since COPY bypasses them, and
    JSON columns as JSON text.
    """
    if session.get_bind().dialect.name != "postgresql":
        json_columns = [c.name for c in table.c if isinstance(c.type, JSON)]
        await session.execute(
            insert(table),
            [
                {**row, **{c: json.loads(row[c]) for c in json_columns if isinstance(row[c], str)}}
                for row in rows
            ],
        )
        return
    columns = list(rows[0])
    # itemgetter builds each record in C: per-value Python was 8 % of an ingestion batch.
    records: list[tuple[Any, ...]] = list(map(itemgetter(*columns), rows))
    json_positions = [n for n, name in enumerate(columns) if isinstance(table.c[name].type, JSON)]
    if any(not isinstance(record[n], str | None) for record in records for n in json_positions):
        records = [
            tuple(json.dumps(value) if n in json_positions else value for n, value in enumerate(record))
            for record in records
        ]
    connection = await session.connection()
    driver = (await connection.get_raw_connection()).driver_connection
    assert driver is not None
    try:
        await driver.copy_records_to_table(table.name, records=records, columns=columns)
    except asyncpg.UniqueViolationError as exc:
        # Raised by the driver itself here: make it the error every caller already handles.
        raise IntegrityError(f"COPY INTO {table.name}", None, exc) from exc


async def write_batch(batch: Batch) -> None:
    """Store what the batch decided: dossiers, events and corrections set-based, then the counters."""
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
    # Last, so that the rows every batch of a unit shares stay locked for the shortest time.
    rows = [row for row in counters.counter_rows(batch.marks) if any(row[1])]
    await counters.add_counters(session, rows)
