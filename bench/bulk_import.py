"""Bulk history import: `tthc dossiers import` against a COPY of the rows it writes.

    python -m bench.bulk_import [--dossiers 20000] [--orders in-order,scrambled,records] [--jobs N]

Per order: a fresh database with the bench province (units, sectors, procedures), the events
(or records) written as JSON Lines, `tthc dossiers import` timed end to end as a command and by
its own summary (the load without the start-up: Python, the application's imports, settings),
then the rows the import wrote (dossiers and events) COPYed into tables with the same indexes,
checks and foreign keys (what the database alone needs for them: the ratio of the import's rate
to that one is the share of the database's limit the import reaches), and the same lines COPYed
as text into an unindexed table (what the machine can write at all). Beside the command's CPU
(its parts' included), the CPU this machine's PostgreSQL processes used meanwhile: with the
command's, where each event's cost goes.
"""

import argparse
import asyncio
import json
import os
import random
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncpg

from bench import dossier_data
from bench.harness import (
    DEFAULT_DATABASE,
    fresh_database,
    log,
    machine,
    make_key,
    postgres_cpu_seconds,
    serve,
)
from bench.ingestion import _arrival, portal_record, setup
from bench.profile import summarise

CLIENT = "bench-portal"


def _lines(dossiers: list[list[dict[str, Any]]], order: str, seed: int) -> list[str]:
    if order == "records":
        return [json.dumps(portal_record(events)) for events in dossiers]
    events = [event for history in dossiers for event in history]
    if order == "scrambled":
        rng = random.Random(seed)
        events.sort(key=lambda event: _arrival(event, rng))
    return [json.dumps(event) for event in events]


def command_tail(path: Path, chunk: int, jobs: int) -> list[str]:
    return [
        "-m", "app.cli", "dossiers", "import", str(path), "--client", CLIENT, "--chunk", str(chunk),
        "--jobs", str(jobs),
    ]  # fmt: skip


_WRITTEN = ("dossiers", "dossier_events")


async def _indexed_copy(url: str) -> float:
    """Seconds to COPY the rows the import wrote (its dossiers and events) into tables like the
    real ones — the same columns, indexes, checks and foreign keys — in one transaction, rolled
    back: what the database alone needs for them, the issue's yardstick for the import."""
    connection = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
    try:
        tables = {name: await connection.fetch(f"SELECT * FROM {name}") for name in _WRITTEN}
        transaction = connection.transaction()
        await transaction.start()
        try:
            for name in tables:
                await connection.execute(f"CREATE TABLE bench_{name} (LIKE {name} INCLUDING ALL)")
                foreign_keys = await connection.fetch(
                    "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = $1::regclass "
                    "AND contype = 'f'",
                    name,
                )
                for (definition,) in foreign_keys:
                    await connection.execute(f"ALTER TABLE bench_{name} ADD {definition}")
            started = time.perf_counter()
            for name, rows in tables.items():
                await connection.copy_records_to_table(
                    f"bench_{name}", records=[tuple(row) for row in rows], columns=list(rows[0].keys())
                )
            return time.perf_counter() - started
        finally:
            await transaction.rollback()
    finally:
        await connection.close()


async def _bare_copy(url: str, lines: list[str]) -> float:
    connection = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
    try:
        await connection.execute("DROP TABLE IF EXISTS bench_bare_copy")
        await connection.execute("CREATE UNLOGGED TABLE bench_bare_copy (line text)")
        started = time.perf_counter()
        await connection.copy_records_to_table("bench_bare_copy", records=[(line,) for line in lines])
        return time.perf_counter() - started
    finally:
        await connection.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database-url", default=DEFAULT_DATABASE)
    parser.add_argument("--dossiers", type=int, default=20_000)
    parser.add_argument("--procedures", type=int, default=300)
    parser.add_argument("--chunk", type=int, default=2000)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="the import's --jobs")
    parser.add_argument("--seed", type=int, default=2023)
    parser.add_argument("--orders", default="in-order,scrambled,records")
    parser.add_argument("--profile", type=Path, help="py-spy the imports; summaries written to this folder")
    parser.add_argument(
        "--native", action="store_true", help="with --profile: the C functions under each frame too"
    )
    args = parser.parse_args()

    log(f"machine: {machine()}")
    procedure_rows = dossier_data.procedures(args.procedures, args.seed)
    dossiers = list(dossier_data.dossier_events(args.dossiers, procedure_rows, args.seed))
    rows = []
    for order in args.orders.split(","):
        lines = _lines(dossiers, order, args.seed)
        fresh_database(args.database_url)
        key = make_key(args.database_url, CLIENT, ["dossiers:write", "units:write", "catalogue:write"])
        with serve(args.database_url) as server:
            setup(server.url, key, procedure_rows)
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / f"{order}.jsonl"
            path.write_text("\n".join(lines) + "\n")
            log(f"{order}: {len(lines)} lines → tthc dossiers import")
            command = [sys.executable, *command_tail(path, args.chunk, args.jobs)]
            stacks = Path(folder) / "stacks.txt"
            if args.profile:
                spy = str(Path(sys.executable).with_name("py-spy"))
                command = [
                    spy,
                    "record",
                    "--subprocesses",
                    "--rate",
                    "250",
                    "--format",
                    "raw",
                    "--output",
                    str(stacks),
                    *(["--native"] if args.native else []),
                    "--",
                ]
                command += [sys.executable, *command_tail(path, args.chunk, args.jobs)]
            used_before = resource.getrusage(resource.RUSAGE_CHILDREN)
            server_before = postgres_cpu_seconds()
            started = time.perf_counter()
            finished = subprocess.run(
                command,
                env={**os.environ, "TTHC_DATABASE_URL": args.database_url, "TTHC_LOG_LEVEL": "WARNING"},
                check=True,
                stdout=subprocess.PIPE,
                text=True,
            )
            seconds = time.perf_counter() - started
            # The command's CPU and its parts' (reaped by it, so counted in its own children's).
            used = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu = sum(getattr(used, name) - getattr(used_before, name) for name in ("ru_utime", "ru_stime"))
            database_cpu = postgres_cpu_seconds() - server_before
            sys.stdout.write(finished.stdout)
            # The command's summary: its own time, from the file opened to the load's end.
            loaded = re.search(r" lines in ([\d.]+)s: ", finished.stdout)
            assert loaded is not None, finished.stdout
            load_seconds = float(loaded[1])
            if args.profile:
                args.profile.mkdir(parents=True, exist_ok=True)
                summary = summarise(stacks.read_text(), top=40)
                # The raw stacks too, to find a frame's callers (e.g. with grep).
                (args.profile / f"bulk-import-{order}.stacks").write_text(stacks.read_text())
                (args.profile / f"bulk-import-{order}.txt").write_text(
                    f"py-spy of `tthc dossiers import` ({len(lines):,} lines, {order}, "
                    f"chunks of {args.chunk}; {seconds:.1f} s under the profiler)\n\n{summary}\n"
                )
        bare = asyncio.run(_bare_copy(args.database_url, lines))
        indexed = asyncio.run(_indexed_copy(args.database_url))
        unit = "records/s" if order == "records" else "events/s"
        rate, bare_rate, indexed_rate = len(lines) / load_seconds, len(lines) / bare, len(lines) / indexed
        rows.append(
            f"| {order} | {len(lines):,} | {seconds:.1f} | {load_seconds:.1f} | {rate:,.0f} {unit} "
            f"| {indexed_rate:,.0f} {unit} | {rate / indexed_rate:.2f} | {bare_rate:,.0f} lines/s "
            f"| {cpu:.1f} s, {cpu / len(lines) * 1e6:.0f} µs a line "
            f"| {database_cpu:.1f} s, {database_cpu / len(lines) * 1e6:.0f} µs a line |"
        )
        log(
            f"{order}: {rate:,.0f} {unit} loading ({seconds:.1f} s with start-up); "
            f"COPY {bare_rate:,.0f} lines/s"
        )
    print(f"\nBulk import, {args.dossiers} dossiers, chunks of {args.chunk}, {args.jobs} jobs:\n")
    print(
        "| order | lines | s with start-up | s loading | import | COPY of its rows into the same "
        "indexed tables | ratio | bare COPY of the lines | the command's CPU, start-up and parts included "
        "| PostgreSQL's CPU meanwhile |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
