"""Live ingestion against a large database: the same sender on a fresh province and on one that
already holds millions of dossiers.

    python -m bench.scale [--sizes 10000,10000000] [--live 20000] [--senders 2] [--workers 2]
                          [--repeat 3]

Per size: a database ``<bench database>_<size>`` with the bench province and that many past
dossiers (2019–2024, three events each: received, resolved, returned; their counters summed per
day, month and year as ingestion keeps them) — written by SQL in chunks of a million, not
through the API, since only their volume matters here; then `bench.ingestion`'s in-order sender
pushes ``--live`` new dossiers through the API and the rate is measured. The pushed dossiers are
deleted afterwards, so a database built once (it is kept, and reused when its size matches) can
be measured again.
"""

import argparse
import asyncio
import statistics
import time
from typing import Any

import asyncpg

from app.core import migrations
from bench import dossier_data
from bench.harness import DEFAULT_DATABASE, analyze, fresh_database, log, machine, make_key, serve
from bench.ingestion import batches_for, push, setup

CLIENT = "bench-portal"
BUILD_CHUNK = 1_000_000
HISTORY_START = "2019-01-01 01:00:00+00"
HISTORY_SECONDS = 6 * 365 * 86400

# One past dossier per g: procedure, unit and instants spread by g; resolved within two days,
# one in twenty late; returned a day later. The statuses and marks are those ingestion would make.
_DOSSIERS_SQL = (
    """
INSERT INTO dossiers (code, procedure_code, unit_code, sector_code, status, channel, online_level,
    received_at, due_at, original_due_at, finished_at, returned_at, supplement_count, apology_count,
    on_time, early, last_event_at, fee_payable, digitized, e_result, created_at, updated_at)
SELECT 'HIS-' || lpad(g::text, 9, '0'),
       procedures[1 + g % cardinality(procedures)],
       units[1 + (g / 7) % cardinality(units)],
       sectors[1 + g % cardinality(procedures)],
       10,
       (ARRAY['online', 'direct', 'postal'])[1 + g % 3],
       CASE WHEN g % 3 = 0 THEN 'full' END,
       received, received + interval '5 days', received + interval '5 days',
       received + CASE WHEN g % 20 = 0 THEN interval '9 days' ELSE interval '2 days' END,
       received + CASE WHEN g % 20 = 0 THEN interval '10 days' ELSE interval '3 days' END,
       0, 0, g % 20 <> 0, g % 20 <> 0 AND g % 2 = 0,
       received + CASE WHEN g % 20 = 0 THEN interval '10 days' ELSE interval '3 days' END,
       false, true, false, now(), now()
FROM generate_series($1::bigint, $2::bigint - 1) AS g,
     LATERAL (SELECT timestamptz '"""
    + HISTORY_START
    + """'
                     + make_interval(secs => (g::float8 / $3) * """
    + str(HISTORY_SECONDS)
    + """)
                     AS received) AS instant,
     (SELECT $4::text[] AS procedures, $5::text[] AS units, $6::text[] AS sectors) AS catalogue
"""
)

_EVENTS_SQL = """
INSERT INTO dossier_events (client_id, event_id, dossier_code, type, occurred_at, payload,
    payload_hash, ingested_at, revision, status)
SELECT $3, d.code || '-' || step, d.code, kind, at,
       json_build_object('event_id', d.code || '-' || step, 'dossier_code', d.code, 'type', kind,
                         'occurred_at', at, 'procedure_code', d.procedure_code, 'unit_code', d.unit_code),
       md5(d.code || step), now(), 1, 'applied'
FROM dossiers AS d,
     LATERAL (VALUES (1, 'received', d.received_at), (2, 'resolved', d.finished_at),
                     (3, 'returned', d.returned_at)) AS e(step, kind, at)
WHERE d.code >= 'HIS-' || lpad($1::bigint::text, 9, '0') AND d.code < 'HIS-' || lpad($2::bigint::text, 9, '0')
"""

# The counters of the past dossiers, per unit with sector and procedure and per unit for all:
# received and ended by channel, finished on time or late, each in its day, month and year.
_COUNTERS_SQL = """
INSERT INTO dossier_counters (unit_code, sector_code, procedure_code, grain, bucket,
    received_direct, received_postal, received_online_partial, received_online_full,
    ended_direct, ended_postal, ended_online_partial, ended_online_full,
    finished_on_time, finished_early, finished_late, withdrawn, refused,
    waiting_start, waiting_end, overdue_start, overdue_end)
SELECT unit_code, rollup.sector_code, rollup.procedure_code, grain, bucket,
       sum(received_direct), sum(received_postal), sum(received_online_partial),
       sum(received_online_full), sum(ended_direct), sum(ended_postal), sum(ended_online_partial),
       sum(ended_online_full), sum(on_time), sum(early), sum(late), 0, 0, 0, 0, sum(late), sum(late)
FROM (
    SELECT d.unit_code, coalesce(d.sector_code, '-') AS sector, d.procedure_code AS procedure,
           (m.at AT TIME ZONE 'Asia/Ho_Chi_Minh')::date AS day,
           (m.kind = 'received' AND d.channel = 'direct')::int AS received_direct,
           (m.kind = 'received' AND d.channel = 'postal')::int AS received_postal,
           (m.kind = 'received' AND d.channel = 'online' AND d.online_level IS NULL)::int
               AS received_online_partial,
           (m.kind = 'received' AND d.online_level IS NOT DISTINCT FROM 'full')::int AS received_online_full,
           (m.kind = 'ended' AND d.channel = 'direct')::int AS ended_direct,
           (m.kind = 'ended' AND d.channel = 'postal')::int AS ended_postal,
           (m.kind = 'ended' AND d.channel = 'online' AND d.online_level IS NULL)::int
               AS ended_online_partial,
           (m.kind = 'ended' AND d.online_level IS NOT DISTINCT FROM 'full')::int AS ended_online_full,
           (m.kind = 'ended' AND d.on_time)::int AS on_time,
           (m.kind = 'ended' AND d.early)::int AS early,
           (m.kind = 'ended' AND NOT d.on_time)::int AS late
    FROM dossiers AS d,
         LATERAL (VALUES ('received', d.received_at), ('ended', d.finished_at)) AS m(kind, at)
    WHERE d.code LIKE 'HIS-%'
) AS marks,
LATERAL (VALUES ('d', day), ('m', date_trunc('month', day)::date), ('y', date_trunc('year', day)::date))
    AS grains(grain, bucket),
LATERAL (VALUES (sector, procedure), ('*', '*')) AS rollup(sector_code, procedure_code)
GROUP BY unit_code, rollup.sector_code, rollup.procedure_code, grain, bucket
"""


def database_of_size(base: str, size: int) -> str:
    """The database `bench.scale` builds for that many past dossiers."""
    return f"{base}_{size}"


async def _history_size(url: str) -> int | None:
    try:
        connection = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
    except asyncpg.InvalidCatalogNameError:
        return None
    try:
        # Counted only once complete: the counters are written last.
        if not await connection.fetchval("SELECT EXISTS (SELECT FROM dossier_counters)"):
            return None
        return int(await connection.fetchval("SELECT count(*) FROM dossiers WHERE code LIKE 'HIS-%'"))
    except asyncpg.UndefinedTableError:
        return None
    finally:
        await connection.close()


async def _build_history(url: str, size: int, procedure_rows: list[dict[str, Any]]) -> None:
    connection = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
    try:
        client_id = await connection.fetchval("SELECT id FROM api_clients WHERE name = $1", CLIENT)
        procedures = [row["code"] for row in procedure_rows if row["levels"] == ["commune"]]
        sectors = [row["sector_code"] for row in procedure_rows if row["levels"] == ["commune"]]
        communes = [u["code"] for u in dossier_data.units() if u["level"] == "commune"]
        started = time.perf_counter()
        for first in range(0, size, BUILD_CHUNK):
            last = min(size, first + BUILD_CHUNK)
            async with connection.transaction():
                await connection.execute(_DOSSIERS_SQL, first, last, size, procedures, communes, sectors)
                await connection.execute(_EVENTS_SQL, first, last, client_id)
            elapsed = time.perf_counter() - started
            log(
                f"  history: {last:,}/{size:,} dossiers, {last * 3:,} events "
                f"({last / elapsed:,.0f} dossiers/s, ETA {(size - last) * elapsed / last:,.0f} s)"
            )
        await connection.execute(_COUNTERS_SQL)
        counters = await connection.fetchval("SELECT count(*) FROM dossier_counters")
        seconds = time.perf_counter() - started
        log(f"  history: {size:,} dossiers, {counters:,} counter rows in {seconds:,.0f} s")
    finally:
        await connection.close()


async def _forget_live(url: str) -> None:
    """The pushed dossiers removed (their counters stay: they only add to the history's)."""
    connection = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
    try:
        await connection.execute("DELETE FROM dossier_events WHERE dossier_code LIKE 'H56-%'")
        await connection.execute("DELETE FROM dossiers WHERE code LIKE 'H56-%'")
    finally:
        await connection.close()


def _prepare(url: str, size: int, procedure_rows: list[dict[str, Any]]) -> str:
    """The database with ``size`` past dossiers, built unless it is already there; the sender's key."""
    if asyncio.run(_history_size(url)) == size:
        # Only a key's hash is stored: a kept database gets a new client for this run.
        log(f"{size:,} past dossiers: kept database")
        migrations.upgrade(url)
        asyncio.run(_forget_live(url))
        return make_key(url, f"{CLIENT}-{int(time.time())}", ["dossiers:write"])
    fresh_database(url)
    key = make_key(url, CLIENT, ["dossiers:write", "units:write", "catalogue:write"])
    with serve(url) as server:
        setup(server.url, key, procedure_rows)
    log(f"{size:,} past dossiers: building")
    asyncio.run(_build_history(url, size, procedure_rows))
    analyze(url)
    return key


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database-url", default=DEFAULT_DATABASE)
    parser.add_argument("--sizes", default="10000,10000000")
    parser.add_argument("--live", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--senders", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--procedures", type=int, default=300)
    parser.add_argument("--seed", type=int, default=2023)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    log(f"machine: {machine()}")
    procedure_rows = dossier_data.procedures(args.procedures, args.seed)
    live = list(dossier_data.dossier_events(args.live, procedure_rows, args.seed))
    events = sum(len(d) for d in live)
    bodies = batches_for(live, args.batch, args.senders, "in-order", args.seed)
    sizes = [int(s) for s in args.sizes.split(",")]
    rates: dict[int, list[float]] = {size: [] for size in sizes}
    # Sizes taken in turn, run after run: the machine's drift falls on every size alike.
    for run in range(1, args.repeat + 1):
        for size in sizes:
            url = database_of_size(args.database_url, size)
            key = _prepare(url, size, procedure_rows)
            with serve(url, workers=args.workers) as server:
                log(f"run {run}, {size:,} past dossiers: {args.live:,} new dossiers pushed")
                _created, errors, seconds = asyncio.run(
                    push(server.url, key, bodies, "/api/v1/dossier-events/batch")
                )
            assert errors == 0, f"{errors} events refused"
            rates[size].append(events / seconds)
            log(f"run {run}, {size:,} past dossiers: {events / seconds:,.0f} events/s")
            asyncio.run(_forget_live(url))
    fresh = statistics.median(rates[sizes[0]])
    print(
        f"\nLive ingestion beside the size of the database: {args.live:,} new dossiers ({events:,} events) "
        f"in order, {args.senders} senders, {args.workers} workers, {args.repeat} runs per size:\n"
    )
    print("| past dossiers | runs (events/s) | median | against the smallest |")
    print("|---|---|---|---|")
    for size in sizes:
        median = statistics.median(rates[size])
        runs = ", ".join(f"{rate:,.0f}" for rate in rates[size])
        print(f"| {size:,} | {runs} | {median:,.0f} | {median / fresh:.2f} |")


if __name__ == "__main__":
    main()
