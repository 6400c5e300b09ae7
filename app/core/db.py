"""Engine, sessions and the declarative base shared by every domain."""

import json
from collections.abc import AsyncIterator, Mapping
from operator import itemgetter
from typing import Annotated, Any, TypeVar, TypeVarTuple

import asyncpg
from fastapi import Depends, Path, Request
from sqlalchemy import JSON, Select, Table, event, insert, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import QueryableAttribute, Session

from app.core.config import Settings
from app.core.data_version import bump_version
from app.core.replicas import READ_FROM, route_reads

_T = TypeVar("_T")
_Ts = TypeVarTuple("_Ts")


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


def create_engine(settings: Settings) -> AsyncEngine:
    if settings.is_sqlite:
        engine = create_async_engine(settings.database_url, echo=settings.database_echo)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    return create_async_engine(
        settings.database_url,
        echo=settings.database_echo,
        pool_size=settings.database_pool_size,
        max_overflow=settings.database_pool_size,
        # A dead connection is found and replaced at checkout, so the service recovers by itself
        # after a database restart; the timeouts turn an outage into quick 503s instead of hangs.
        pool_pre_ping=True,
        pool_timeout=settings.database_pool_timeout,
        connect_args={
            "timeout": settings.database_connect_timeout,
            "command_timeout": settings.database_command_timeout,
        },
    )


class RoutingSession(Session):
    """A session bound to the primary that reads a standby while ``info`` names one (app.core.replicas)."""

    def get_bind(self, *args: Any, **kwargs: Any) -> Engine | Connection:
        standby: AsyncEngine | None = self.info.get(READ_FROM)
        if standby is not None:
            return standby.sync_engine
        return super().get_bind(*args, **kwargs)


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(
        engine, expire_on_commit=False, autoflush=False, sync_session_class=RoutingSession
    )


# Integer primary keys are 32-bit on PostgreSQL: a larger id cannot exist, so it is a 422 up front
# instead of an overflow in the driver.
MAX_ID = 2**31 - 1
RowId = Annotated[int, Path(ge=1, le=MAX_ID)]


async def plan_with_values(session: AsyncSession) -> None:
    """On PostgreSQL, plan the rest of the transaction's statements with their parameters' values.

    asyncpg prepares statements, and after a few runs PostgreSQL may switch to a generic plan that
    cannot turn `LIKE 'prefix%'`, `IN (…1000 values…)` or date ranges into index ranges.
    """
    if session.get_bind().dialect.name != "postgresql":
        return
    # Once per transaction: a request may compute many periods; a replay after rollback is a new one.
    if session.in_transaction() and session.info.get(_PLANNED_WITH_VALUES) is session.get_transaction():
        return
    await session.execute(text("SET LOCAL plan_cache_mode = force_custom_plan"))
    session.info[_PLANNED_WITH_VALUES] = session.get_transaction()


_PLANNED_WITH_VALUES = "planned_with_values"


SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One session per request: committed when the endpoint returns, rolled back when it raises.

    Used with ``scope="function"`` so the commit happens before the response is sent: a 2xx is
    only ever sent for work that is durably stored. A write also moves the data version on. A read
    whose route allows it is answered by a standby, when one is configured and well.
    """
    sessionmaker: async_sessionmaker[AsyncSession] = request.app.state.sessionmaker
    async with sessionmaker() as session:
        if request.method in SAFE_METHODS:
            await route_reads(request, session)
        try:
            yield session
        except BaseException:
            await session.rollback()
            raise
        else:
            if request.method not in SAFE_METHODS and session.in_transaction():
                await bump_version(session)
            await session.commit()


SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]


# Writes nothing, but begins SQLite's write transaction (waiting for the current writer, if any).
_SQLITE_WRITE_LOCK = text("UPDATE data_versions SET scope = scope WHERE 0")


async def take_write_lock(session: AsyncSession) -> None:
    """On SQLite, make the transaction the database's one writer before it reads what it will change.

    SQLite has one writer at a time, but a transaction reads from a snapshot until it first
    writes: two requests could both read "draft" and both move it. Taking the write lock first
    makes every later read current. (PostgreSQL locks rows instead: ``load_for_update``.)
    """
    if session.get_bind().dialect.name == "sqlite":
        await session.execute(_SQLITE_WRITE_LOCK)


async def load_for_update(session: AsyncSession, entity: type[_T], key: Any) -> _T | None:
    """The row, fresh and locked until the transaction ends: a read-check-write cannot interleave
    with another request's (If-Match comparisons, state-machine transitions)."""
    await take_write_lock(session)
    return await session.get(entity, key, with_for_update=True, populate_existing=True)


def where_equal(query: Select[*_Ts], equalities: Mapping[QueryableAttribute[Any], object]) -> Select[*_Ts]:
    """The query narrowed to rows whose columns equal the values given (a None value: no filter)."""
    for column, value in equalities.items():
        if value is not None:
            query = query.where(column == value)
    return query


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
