import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient
from sqlalchemy import Column, Integer, MetaData, Select, String, Table, func, select, text

from app.core.config import Settings
from app.core.db import (
    SessionDep,
    bulk_insert,
    bulk_update,
    held_statement,
    held_values,
    one_of,
    plan_generically,
    plan_with_values,
    rows_of_each,
    take_write_lock,
)
from app.core.errors import Conflict
from app.procedures.models import Sector
from app.units.models import Unit
from tests.conftest import running_app


async def test_session_commits_on_success_and_rolls_back_on_error(app: FastAPI, client: AsyncClient) -> None:
    async def write(session: SessionDep, fail: bool = False) -> dict[str, str]:
        session.add(Unit(code="77", name="Tỉnh Thử", level="province", search_name="tinh thu"))
        await session.flush()
        if fail:
            raise Conflict("refused after writing")
        return {"status": "written"}

    app.add_api_route("/write", write, methods=["POST"])

    failed = await client.post("/write", params={"fail": "true"})
    assert failed.status_code == 409
    async with app.state.sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(Unit)) == 0

    succeeded = await client.post("/write")
    assert succeeded.status_code == 200
    async with app.state.sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(Unit)) == 1


async def test_sqlite_has_foreign_keys_and_wal(app: FastAPI) -> None:
    engine = app.state.engine
    if engine.dialect.name != "sqlite":
        return
    async with engine.connect() as connection:
        assert (await connection.execute(text("PRAGMA foreign_keys"))).scalar_one() == 1
        assert (await connection.execute(text("PRAGMA journal_mode"))).scalar_one() == "wal"


WRITERS = 16
WRITES_EACH = 24


async def test_sixteen_concurrent_writers_all_succeed(writer: AsyncClient) -> None:
    """Issue 27 #16b: on SQLite, 2 of 398 writes from 16 concurrent writers were 503 "database is
    locked". Every writer waits for the database's one write lock instead."""
    assert (
        await writer.post("/api/v1/units", json={"code": "31", "name": "Hải Phòng", "level": "province"})
    ).status_code == 201

    async def write(n: int) -> list[int]:
        statuses = []
        for k in range(WRITES_EACH):
            if k % 2:
                response = await writer.post(
                    "/api/v1/feedback",
                    json={
                        "external_ref": f"W-{n}-{k}",
                        "channel": "portal",
                        "subject": "unit",
                        "unit_code": "31",
                        "content": "Hồ sơ trả chậm",
                        "received_at": "2025-08-01T09:00:00+07:00",
                    },
                )
            else:
                response = await writer.post(
                    "/api/v1/units",
                    json={
                        "code": f"9{n:02d}{k:02d}",
                        "name": f"Xã {n} {k}",
                        "level": "commune",
                        "parent_code": "31",
                    },
                )
            statuses.append(response.status_code)
        return statuses

    results = await asyncio.gather(*(write(n) for n in range(WRITERS)))
    assert [status for statuses in results for status in statuses if status != 201] == []
    units = (await writer.get("/api/v1/units", params={"parent": "31", "limit": 500})).json()["items"]
    assert len(units) == WRITERS * WRITES_EACH // 2


HOLD = 0.15


def with_slow_writes(application: FastAPI) -> FastAPI:
    """A write whose transaction holds SQLite's write lock for a while (a slow disk, work inside
    the transaction)."""

    async def slow_write(session: SessionDep, code: str) -> dict[str, str]:
        await take_write_lock(session)
        await asyncio.sleep(HOLD)
        session.add(Unit(code=code, name="Xã", level="commune", search_name="xa"))
        return {"code": code}

    application.add_api_route("/slow-write", slow_write, methods=["POST"])
    return application


async def slow_writers(application: FastAPI, prefix: str, writers: int, writes_each: int) -> list[int]:
    """The statuses of ``writers`` concurrent clients each writing ``writes_each`` times in a row."""
    async with AsyncClient(transport=ASGITransport(app=application), base_url="http://t") as http:

        async def write(n: int) -> list[int]:
            return [
                (await http.post("/slow-write", params={"code": f"{prefix}{n:02d}{k}"})).status_code
                for k in range(writes_each)
            ]

        results = await asyncio.gather(*(write(n) for n in range(writers)))
    return [status for statuses in results for status in statuses]


async def count_units(application: FastAPI) -> int | None:
    async with application.state.sessionmaker() as session:
        return await session.scalar(select(func.count()).select_from(Unit))


@pytest.mark.only_backend("sqlite")
async def test_sqlite_writers_take_turns_in_arrival_order(database_url: str) -> None:
    """Issue 27 #16b, the cause: SQLite's busy handler lets waiting writers poll the lock every
    100 ms, so under steady writes one of them could miss every turn until its 5 s ran out
    ("database is locked", 503). Writers whose transactions take a while show it at once."""
    # The longest fair wait is one turn of every other writer (15 × 0.15 s): within the bound.
    settings = Settings(database_url=database_url, database_command_timeout=8.0)
    async with running_app(settings) as application:
        statuses = await slow_writers(with_slow_writes(application), "1", writers=16, writes_each=4)
        assert [status for status in statuses if status != 200] == []
        assert await count_units(application) == 16 * 4


@pytest.mark.only_backend("sqlite")
async def test_two_processes_of_sqlite_writers_share_the_lock_fairly(database_url: str) -> None:
    """Two apps on one file (as two workers are): each queues its own writers, and the writer
    whose turn it is competes with the other app's every few milliseconds, not every 100 ms."""
    settings = Settings(database_url=database_url, database_command_timeout=8.0)
    async with running_app(settings) as first, running_app(settings) as second:
        statuses = await asyncio.gather(
            slow_writers(with_slow_writes(first), "1", writers=8, writes_each=3),
            slow_writers(with_slow_writes(second), "2", writers=8, writes_each=3),
        )
        assert [status for both in statuses for status in both if status != 200] == []
        assert await count_units(first) == 2 * 8 * 3


@pytest.mark.parametrize("first", ["bulk_insert", "bulk_update"])
async def test_a_bulk_write_first_in_a_transaction_is_part_of_it(app: FastAPI, first: str) -> None:
    """A bulk write sent past SQLAlchemy as the transaction's first command is rolled back with it
    (it once ran on its own and committed at once on PostgreSQL: a stopped import kept a chunk
    without its checkpoint)."""
    now = datetime.now(UTC)
    sectors: Table = Sector.__table__  # type: ignore[assignment]
    async with app.state.sessionmaker() as session, session.begin():
        await bulk_insert(
            session, sectors, [{"code": "kept", "name": "Kept", "created_at": now, "updated_at": now}]
        )
    async with app.state.sessionmaker() as session:
        if first == "bulk_insert":
            rows = [{"code": "gone", "name": "Gone", "created_at": now, "updated_at": now}]
            await bulk_insert(session, sectors, rows)
        else:
            await bulk_update(session, sectors, "code", [{"code": "kept", "name": "Renamed"}])
        await session.rollback()
    async with app.state.sessionmaker() as session:
        stored = {code: name for code, name in await session.execute(select(Sector.code, Sector.name))}
    assert stored == {"kept": "Kept"}


async def test_writes_are_planned_generically_after_reads_planned_with_values(app: FastAPI) -> None:
    """``plan_with_values`` holds for a transaction's reads; ``plan_generically`` gives its writes
    back PostgreSQL's cached plans (a foreign key is checked by one cached query per row written,
    which a custom plan would plan again for every row); a later ``plan_with_values`` sets it again,
    and the next transaction starts as the server's default."""
    async with app.state.sessionmaker() as session:
        await plan_with_values(session)  # SQLite: nothing to plan, nothing set
        await plan_generically(session)  # nothing to undo, even before any statement
        await session.rollback()
    if app.state.engine.dialect.name != "postgresql":
        return
    async with app.state.sessionmaker() as session:

        async def mode() -> str | None:
            return await session.scalar(text("SHOW plan_cache_mode"))

        async with session.begin():
            await plan_generically(session)  # nothing to undo: the server's own setting stays
            default = await mode()
            assert default != "force_custom_plan"
            await plan_with_values(session)
            assert await mode() == "force_custom_plan"
            await plan_generically(session)
            assert await mode() == default
            await plan_generically(session)
            assert await mode() == default
            await plan_with_values(session)
            assert await mode() == "force_custom_plan"
        async with session.begin():
            assert await mode() == default
            await plan_with_values(session)
            assert await mode() == "force_custom_plan"


async def test_values_are_looked_up_one_index_probe_each(app: FastAPI) -> None:
    """``held_values``: each value held, duplicates once, none for no values. ``rows_of_each``: the
    rows of ``one_of``, with the extra conditions. On PostgreSQL both look each value up with one
    probe of the index even where ``= ANY`` is planned as a scan of the table (no statistics, many
    values: a bulk load's look-ups scanned 2.8 million events per chunk that way), and nothing is
    compiled by JIT, which such estimates would call for."""
    now = datetime.now(UTC)
    units: Table = Unit.__table__  # type: ignore[assignment]
    rows = [
        {
            "code": f"held-{code}",
            "parent_code": parent and f"held-{parent}",
            "name": code,
            "search_name": code,
        }
        | {"level": level, "created_at": now, "updated_at": now}
        for code, parent, level in [
            ("P", None, "province"),
            ("A", "P", "district"),
            ("B", "P", "district"),
            ("C", "A", "commune"),
        ]
    ]
    asked = ["held-P", "held-A", "held-C", "held-P", "nowhere", "Ư"]
    async with app.state.sessionmaker() as session, session.begin():
        await bulk_insert(session, units, rows)
        assert await held_values(session, Unit.parent_code, asked) == {"held-P", "held-A"}
        assert await held_values(session, Unit.code, []) == set()
        dialect = session.get_bind().dialect
        columns = [Unit.code, Unit.parent_code]

        async def fetched(*conditions: Any) -> list[tuple[str, str]]:
            """Sorted, not a set: a value asked twice must not bring its rows twice."""
            found = await session.execute(
                rows_of_each(session, Unit.parent_code, asked, columns, *conditions)
            )
            return sorted((code, parent) for code, parent in found)

        as_in = select(*columns).where(one_of(session, Unit.parent_code, asked))
        expected = sorted((code, parent) for code, parent in await session.execute(as_in))
        assert (
            await fetched() == expected == [("held-A", "held-P"), ("held-B", "held-P"), ("held-C", "held-A")]
        )
        assert await fetched(Unit.level == "district") == [("held-A", "held-P"), ("held-B", "held-P")]
        if dialect.name != "postgresql":
            return
        # A table of 300,000 rows never analyzed, as a bulk load's events are while it runs.
        await session.execute(
            text("CREATE TEMP TABLE probed (id serial PRIMARY KEY, code varchar(64)) ON COMMIT DROP")
        )
        await session.execute(text("CREATE INDEX ON probed (code)"))
        await session.execute(
            text("INSERT INTO probed (code) SELECT 'D' || (n / 3) FROM generate_series(1, 300000) n")
        )
        await plan_with_values(session)
        assert await session.scalar(text("SHOW jit")) == "off"
        probed = Table("probed", MetaData(), Column("id", Integer), Column("code", String(64)))
        values = [f"E{number}" for number in range(2000)]

        async def plan(statement: Select[Any]) -> str:
            compiled = statement.compile(dialect=dialect)
            connection = await session.connection()
            explained = await connection.exec_driver_sql(
                f"EXPLAIN {compiled}", tuple(compiled.construct_params().values())
            )
            return "\n".join(line for (line,) in explained)

        as_any = await plan(select(probed.c.code).where(one_of(session, probed.c.code, values)).distinct())
        assert "Seq Scan on probed" in as_any, as_any  # what held_values is for
        probes = await plan(held_statement(dialect.name, probed.c.code, values))
        assert "Nested Loop Semi Join" in probes and "Index Only Scan" in probes, probes
        assert "Seq Scan on probed" not in probes, probes
        in_id_order = await plan(
            select(probed).where(one_of(session, probed.c.code, values)).order_by(probed.c.id)
        )
        assert "Index Cond" not in in_id_order, in_id_order  # the whole table, in id order
        each = rows_of_each(session, probed.c.code, values, list(probed.c))
        probes = await plan(each.order_by(each.selected_columns.id))
        assert "Nested Loop" in probes and "Index Cond: ((code)::text = " in probes, probes
        assert "Seq Scan on probed" not in probes, probes
