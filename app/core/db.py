"""Engine, sessions and the declarative base shared by every domain."""

import asyncio
import json
import random
import re
import sqlite3
import time
from collections.abc import AsyncIterator, Collection, Sequence
from contextlib import asynccontextmanager
from operator import itemgetter
from typing import Annotated, Any, TypeVar

import asyncpg
from fastapi import Depends, Path, Request
from sqlalchemy import (
    ARRAY,
    JSON,
    ColumnElement,
    Select,
    String,
    Table,
    any_,
    bindparam,
    event,
    exists,
    func,
    insert,
    select,
    text,
    true,
    update,
)
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError, InterfaceError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import QueryableAttribute, Session
from sqlalchemy.pool import ConnectionPoolEntry, QueuePool

from app.core.bounded_engine import BoundedConnection, answered, postgres_engine
from app.core.config import Settings
from app.core.data_version import bump_version
from app.core.replicas import READ_FROM, route_reads

_T = TypeVar("_T")


# Without a command timeout (the CLI), a write waits this long for another process's.
_SQLITE_BUSY_MS = 5000


def _sqlite_pragmas(busy_ms: int) -> Any:
    def pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={busy_ms}")
        cursor.close()

    return pragmas


def create_engine(settings: Settings) -> AsyncEngine:
    if settings.is_sqlite:
        engine = create_async_engine(settings.database_url, echo=settings.database_echo)
        bound = settings.database_command_timeout
        busy_ms = _SQLITE_BUSY_MS if bound is None else max(1, round(bound * 1000))
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas(busy_ms))
        if bound is not None:
            _take_turns_to_write(engine.sync_engine, bound, busy_ms)
        return engine
    return postgres_engine(
        settings.database_url,
        pool_size=settings.database_pool_size,
        pool_timeout=settings.database_pool_timeout,
        connect_timeout=settings.database_connect_timeout,
        command_timeout=settings.database_command_timeout,
        echo=settings.database_echo,
    )


# SQLite has one writer at a time, and its busy handler lets the others poll for the lock, every
# 100 ms once they have waited a little: under steady writes a writer can miss every turn until
# its timeout runs out (issue 27: 2 of 398 writes from 16 writers were 503 "database is locked").
# So the writers of this process queue for their turn, first come first served, and the one whose
# turn it is takes the lock itself (BEGIN IMMEDIATE), retrying every few milliseconds against
# other processes' writers; the whole wait is bounded by the command timeout (a 503 beyond it).
_TURN = "sqlite_write_turn"
_WRITES = re.compile(r"\s*(?:WITH\b.*?\)\s*)?(?:INSERT|UPDATE|DELETE|REPLACE)\b", re.IGNORECASE | re.DOTALL)


class _WriteTurns:
    def __init__(self, bound: float, busy_ms: int) -> None:
        self.bound = bound
        self.busy_ms = busy_ms
        self.queue = asyncio.Lock()  # wakes its waiters in arrival order

    async def take(self, driver: Any) -> None:
        """Wait for this process's turn, then for SQLite's write lock (``driver``: aiosqlite's)."""
        deadline = time.monotonic() + self.bound
        try:
            async with asyncio.timeout(self.bound):
                await self.queue.acquire()
        except TimeoutError:
            raise TimeoutError(f"no turn to write to SQLite within {self.bound} s") from None
        try:
            if not driver.in_transaction:
                await self._lock(driver, deadline)
        except BaseException:
            self.queue.release()
            raise

    async def _lock(self, driver: Any, deadline: float) -> None:
        # SQLite's own polling is what starved writers: here it fails at once, and the retry
        # comes after a few milliseconds, with jitter so that two processes do not stay in step.
        await _run(driver, "PRAGMA busy_timeout=0")
        try:
            while True:
                try:
                    await _run(driver, "BEGIN IMMEDIATE")
                    return
                except sqlite3.OperationalError as exc:
                    if exc.sqlite_errorcode & 0xFF != sqlite3.SQLITE_BUSY:
                        raise
                if time.monotonic() >= deadline:
                    raise TimeoutError(f"SQLite's write lock not free within {self.bound} s")
                await asyncio.sleep(random.uniform(0.001, 0.005))
        finally:
            await _run(driver, f"PRAGMA busy_timeout={self.busy_ms}")

    def release(self, info: dict[Any, Any]) -> None:
        if info.pop(_TURN, None) is not None:
            self.queue.release()


async def _run(driver: Any, statement: str) -> None:
    cursor = await driver.execute(statement)
    await cursor.close()


def _take_turns_to_write(engine: Engine, bound: float, busy_ms: int) -> None:
    turns = _WriteTurns(bound, busy_ms)

    def writing(connection: Connection, _cursor: Any, statement: str, *_args: Any) -> None:
        if _TURN in connection.info or not _WRITES.match(statement):
            return
        dbapi_connection = connection.connection.dbapi_connection
        assert dbapi_connection is not None
        dbapi_connection.run_async(turns.take)
        connection.info[_TURN] = True

    def ended(connection: Connection) -> None:
        turns.release(connection.info)

    def returned(_dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        turns.release(record.info)

    event.listen(engine, "before_cursor_execute", writing)
    # Before SQLite's COMMIT: the next writer's first try may find it still running, and retries.
    event.listen(engine, "commit", ended)
    event.listen(engine, "rollback", ended)
    event.listen(engine, "checkin", returned)


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
    """On PostgreSQL, plan the rest of the transaction's statements with their parameters' values,
    and compile none of them (JIT).

    asyncpg prepares statements, and after a few runs PostgreSQL may switch to a generic plan that
    cannot turn `LIKE 'prefix%'`, `IN (…1000 values…)` or date ranges into index ranges.
    PostgreSQL compiles a plan whose estimated cost is high, and on a table a bulk load is filling
    (no statistics yet) the estimates run into millions: one look-up of 1,000 dossiers' events
    spent 77 ms compiling, 12 ms running. Set per transaction, not per connection, so that the
    connection's startup names nothing pgbouncer does not know.
    """
    if session.get_bind().dialect.name != "postgresql":
        return
    # Once per transaction: a request may compute many periods; a replay after rollback is a new one.
    if session.in_transaction() and session.info.get(_PLANNED_WITH_VALUES) is session.get_transaction():
        return
    await session.execute(_WITH_VALUES_AND_NO_JIT)
    session.info[_PLANNED_WITH_VALUES] = session.get_transaction()


_WITH_VALUES_AND_NO_JIT = text(
    "SELECT set_config('plan_cache_mode', 'force_custom_plan', true), set_config('jit', 'off', true)"
)


async def plan_generically(session: AsyncSession) -> None:
    """Undo ``plan_with_values`` for the rest of the transaction: PostgreSQL's own choice of plans
    again, for writes. A foreign key is checked by one cached query per row written, which a
    custom plan plans again for every row: a COPY of dossiers (two foreign keys) took 1.9 times as
    long, of events (one) 1.6 times. A later ``plan_with_values`` sets it again."""
    planned = session.info.get(_PLANNED_WITH_VALUES)
    if planned is None or planned is not session.get_transaction():
        return
    await session.execute(text("SET LOCAL plan_cache_mode = DEFAULT"))
    del session.info[_PLANNED_WITH_VALUES]


_PLANNED_WITH_VALUES = "planned_with_values"


def one_of(
    session: AsyncSession, column: ColumnElement[Any] | QueryableAttribute[Any], values: Collection[Any]
) -> ColumnElement[bool]:
    """``column IN (values)``; on PostgreSQL ``column = ANY(:array)``: one parameter however many
    values, where IN has SQLAlchemy render, and PostgreSQL parse, one per value. A look-up of 1,000
    dossier codes took 6.5 ms of the client's CPU and 11 ms in all as IN, 2.4 ms and 7 ms as ANY."""
    expression = column.expression
    if session.get_bind().dialect.name == "postgresql":
        # Text as text[], not varchar(n)[]: a cast to varchar(n) would cut a longer value to match.
        item = String() if isinstance(expression.type, String) else expression.type
        return expression == any_(bindparam(None, list(values), type_=ARRAY(item)))
    return expression.in_(values)


async def held_values(
    session: AsyncSession, column: ColumnElement[Any] | QueryableAttribute[Any], values: Collection[Any]
) -> set[Any]:
    """Which of ``values`` some row holds in ``column`` (an indexed one).

    On PostgreSQL each value is looked up on its own (``EXISTS`` per element of an array): one
    index descent per value, whatever the planner knows of the table. ``column = ANY(:values)``
    is planned from the table's statistics, and without them (a table a bulk load is filling
    faster than an analyze runs, or one never analyzed) 2,000 values were estimated to match most
    rows: a parallel scan of the whole table, 250 ms per look-up at 2.8 million events, against
    2 ms for the same answer this way."""
    if not values:
        return set()
    return set(await session.scalars(held_statement(session.get_bind().dialect.name, column, values)))


def held_statement(
    dialect: str, column: ColumnElement[Any] | QueryableAttribute[Any], values: Collection[Any]
) -> Select[tuple[Any]]:
    """The statement of ``held_values`` for a dialect."""
    expression = column.expression
    if dialect != "postgresql":
        return select(expression).where(expression.in_(values)).distinct()
    wanted = _each_value(expression, values)
    return select(wanted.c.value).where(exists().where(expression == wanted.c.value))


def rows_of_each(
    session: AsyncSession,
    column: ColumnElement[Any] | QueryableAttribute[Any],
    values: Collection[Any],
    columns: Sequence[ColumnElement[Any] | QueryableAttribute[Any]],
    *conditions: ColumnElement[bool],
) -> Select[tuple[Any, ...]]:
    """``columns`` of the rows whose ``column`` is one of ``values`` (and that meet ``conditions``),
    as a statement: on PostgreSQL the rows of each value are fetched on their own (a subquery per
    value that the planner may not merge into a join: ``OFFSET 0``), so each is an index look-up
    whatever the planner knows of the table, as in ``held_values``. ``column = ANY(:values)``
    over a table never analyzed was planned as a walk of its whole primary key (with
    ``ORDER BY id``) or a scan: 40–70 ms a batch at 570,000 events, growing with them."""
    expression = column.expression
    if session.get_bind().dialect.name != "postgresql":
        return select(*columns).where(expression.in_(values), *conditions)
    wanted = _each_value(expression, dict.fromkeys(values))
    found = select(*columns).where(expression == wanted.c.value, *conditions).offset(0).lateral()
    return select(found).select_from(wanted).join(found, true())


def _each_value(expression: ColumnElement[Any], values: Collection[Any]) -> Any:
    """``values`` as rows of one column, ``value`` (PostgreSQL: ``unnest`` of one array parameter)."""
    item = String() if isinstance(expression.type, String) else expression.type
    array = bindparam(None, list(values), type_=ARRAY(item))
    return func.unnest(array).table_valued("value").render_derived()


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
            try:
                await session.rollback()
            except Exception:
                # The connection was lost mid-command (a deadline cancelled it): the original error
                # answers the request, and the connection is discarded rather than pooled.
                await session.invalidate()
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
    text_already = all(isinstance(record[n], str | None) for record in records for n in json_positions)
    if not text_already:
        records = [
            tuple(json.dumps(value) if n in json_positions else value for n, value in enumerate(record))
            for record in records
        ]
    await insert_records(session, table, columns, records)


async def insert_records(
    session: AsyncSession, table: Table, columns: Sequence[str], records: Sequence[tuple[Any, ...]]
) -> None:
    """Insert many rows given as tuples in the order of ``columns`` (no mapping built per row, for
    the millions of a bulk load): COPY on PostgreSQL, else executemany. JSON columns as JSON text
    on PostgreSQL (``bulk_insert`` turns values into text)."""
    if not records:
        return
    if session.get_bind().dialect.name != "postgresql":
        await session.execute(insert(table), [dict(zip(columns, record, strict=True)) for record in records])
        return
    async with raw_driver(session, f"COPY INTO {table.name}") as driver:
        await driver.copy_records_to_table(table.name, records=records, columns=list(columns))


async def bulk_update(session: AsyncSession, table: Table, key: str, rows: list[dict[str, Any]]) -> None:
    """Update many rows, each found by its ``key`` column and given its own values (every row names
    the same columns): on PostgreSQL one statement over one array per column (an executemany of
    20,000 rows waited on 20,000 round trips), else executemany. JSON columns as JSON text or values.
    """
    columns = [name for name in rows[0] if name != key]
    dialect = session.get_bind().dialect
    if dialect.name != "postgresql":
        statement = (
            update(table)
            .where(table.c[key] == bindparam("_key"))
            .values({name: bindparam(name) for name in columns})
        )
        await session.execute(statement, [{**row, "_key": row[key]} for row in rows])
        return
    names = [key, *columns]
    arrays: list[list[Any]] = []
    for name in names:
        values = [row[name] for row in rows]
        if isinstance(table.c[name].type, JSON):
            values = [
                value if value is None or isinstance(value, str) else json.dumps(value) for value in values
            ]
        arrays.append(values)
    kinds = [table.c[name].type.compile(dialect=dialect) for name in names]
    sql = (
        f"UPDATE {table.name} AS t SET {', '.join(f'{name} = u.{name}' for name in columns)} "
        f"FROM unnest({', '.join(f'${n}::{kind}[]' for n, kind in enumerate(kinds, start=1))}) "
        f"AS u({', '.join(names)}) WHERE t.{key} = u.{key}"
    )
    async with raw_driver(session, sql) as driver:
        await driver.execute(sql, *arrays)


# A connection the server ended (shut down, crashed, killed), lost on the way, or left by asyncpg in a
# state it cannot leave.
_CONNECTION_GONE = (
    asyncpg.PostgresConnectionError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    OSError,
)


_OPENS_THE_TRANSACTION = text("SELECT 1")


@asynccontextmanager
async def raw_driver(session: AsyncSession, statement: str) -> AsyncIterator[Any]:
    """The session's asyncpg connection for ``statement``, sent past SQLAlchemy, its wait for the answer
    bounded by the request's deadline, and the driver's errors raised as SQLAlchemy's, which every
    caller already handles: a unique key taken an IntegrityError (409); a connection lost, or left
    unusable by a server that ended it between two statements (a primary's death: the driver is
    then still consuming the server's last error), an InterfaceError with the connection
    invalidated (503, and it never returns to the pool)."""
    connection = await session.connection()
    driver = (await connection.get_raw_connection()).driver_connection
    assert driver is not None
    if not driver.is_in_transaction():
        # SQLAlchemy's asyncpg adapter sends BEGIN with the first statement it runs itself: a command
        # sent past it first would run on its own and commit at once, whatever the session does next
        # (a bulk import's chunk was kept without its checkpoint when the load was stopped).
        await connection.execute(_OPENS_THE_TRANSACTION)
    # Not isinstance: asyncpg's metaclass makes every connection an instance of every subclass.
    if type(driver) is BoundedConnection:
        driver.begin_wait()
    try:
        yield driver
    except asyncpg.UniqueViolationError as exc:
        raise IntegrityError(statement, None, exc) from exc
    except _CONNECTION_GONE as exc:
        await connection.invalidate(exc)
        raise InterfaceError(statement, None, exc, connection_invalidated=True) from exc
    finally:
        answered()


def pooled_connections(session: AsyncSession) -> int:
    """How many connections the session's engine keeps in its pool (1 for a pool without a size):
    work spread over that many sessions at once never waits for a connection."""
    engine = session.get_bind()
    pool = engine.pool if isinstance(engine, Engine) else None
    return pool.size() if isinstance(pool, QueuePool) else 1
