"""A database's rows kept in memory and put back: an expensive set-up (a loaded quarter) is made
once per backend and worker, then restored for each test that needs it in a second or two."""

from typing import Any

from fastapi import FastAPI
from sqlalchemy import Integer, Table, func, select, text

from app.core.base import Base

Rows = dict[str, list[dict[str, Any]]]


async def take(app: FastAPI) -> Rows:
    """Every row of every table, by table, in primary-key order."""
    rows: Rows = {}
    async with app.state.engine.connect() as connection:
        for table in Base.metadata.sorted_tables:
            found = await connection.execute(select(table).order_by(*table.primary_key.columns))
            rows[table.name] = _parents_first(table, [dict(row._mapping) for row in found])
    return rows


def _parents_first(table: Table, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``rows`` with every row after the row it refers to in its own table (a unit after its
    parent): both databases check such a reference row by row."""
    for key in table.foreign_keys:
        if key.column.table is not table:
            continue
        child, parent = key.parent.name, key.column.name
        placed: set[Any] = set()
        ordered: list[dict[str, Any]] = []
        waiting = rows
        while waiting:
            ready = [row for row in waiting if row[child] is None or row[child] in placed]
            if not ready:
                raise ValueError(f"{table.name}: rows refer to rows that are not there")
            ordered += ready
            waiting = [row for row in waiting if not (row[child] is None or row[child] in placed)]
            placed.update(row[parent] for row in ready)
        rows = ordered
    return rows


async def restore(app: FastAPI, rows: Rows) -> None:
    """The database as ``take`` found it: every table emptied, then filled with its rows (and, on
    PostgreSQL, each id sequence moved past them, so that later inserts do not collide)."""
    engine = app.state.engine
    async with engine.begin() as connection:
        for table in reversed(Base.metadata.sorted_tables):
            await connection.execute(table.delete())
        for table in Base.metadata.sorted_tables:
            if rows[table.name]:
                await connection.execute(table.insert(), rows[table.name])
            if engine.dialect.name != "postgresql":
                continue
            for column in table.primary_key.columns:
                if isinstance(column.type, Integer) and column.autoincrement in (True, "auto"):
                    highest = await connection.scalar(select(func.max(column)))
                    if highest is not None:
                        await connection.execute(
                            text("SELECT setval(pg_get_serial_sequence(:table, :column), :value)"),
                            {"table": table.name, "column": column.name, "value": highest},
                        )
