"""Bulk history import: `tthc dossiers import` against a bare COPY of the same rows.

    python -m bench.bulk_import [--dossiers 20000] [--orders in-order,scrambled,records]

Per order: a fresh database with the bench province (units, sectors, procedures), the events
(or records) written as JSON Lines, `tthc dossiers import` timed end to end as a command and by
its own summary (the load without the start-up: Python, the application's imports, settings),
then the same lines COPYed as text into an unindexed table (what the machine can write at all):
the ratio of the load's rate to the COPY's is the share of the physical limit the import reaches.
"""

import argparse
import asyncio
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncpg

from bench import dossier_data
from bench.harness import DEFAULT_DATABASE, fresh_database, log, machine, make_key, serve
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


def command_tail(path: Path, chunk: int) -> list[str]:
    return ["-m", "app.cli", "dossiers", "import", str(path), "--client", CLIENT, "--chunk", str(chunk)]


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
    parser.add_argument("--seed", type=int, default=2023)
    parser.add_argument("--orders", default="in-order,scrambled,records")
    parser.add_argument("--profile", type=Path, help="py-spy the imports; summaries written to this folder")
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
            command = [sys.executable, *command_tail(path, args.chunk)]
            stacks = Path(folder) / "stacks.txt"
            if args.profile:
                spy = str(Path(sys.executable).with_name("py-spy"))
                command = [spy, "record", "--rate", "250", "--format", "raw", "--output", str(stacks), "--"]
                command += [sys.executable, *command_tail(path, args.chunk)]
            started = time.perf_counter()
            finished = subprocess.run(
                command,
                env={**os.environ, "TTHC_DATABASE_URL": args.database_url, "TTHC_LOG_LEVEL": "WARNING"},
                check=True,
                stdout=subprocess.PIPE,
                text=True,
            )
            seconds = time.perf_counter() - started
            sys.stdout.write(finished.stdout)
            # The command's summary: its own time, from the file opened to the load's end.
            loaded = re.search(r" lines in ([\d.]+)s: ", finished.stdout)
            assert loaded is not None, finished.stdout
            load_seconds = float(loaded[1])
            if args.profile:
                args.profile.mkdir(parents=True, exist_ok=True)
                summary = summarise(stacks.read_text(), top=40)
                (args.profile / f"bulk-import-{order}.txt").write_text(
                    f"py-spy of `tthc dossiers import` ({len(lines):,} lines, {order}, "
                    f"chunks of {args.chunk}; {seconds:.1f} s under the profiler)\n\n{summary}\n"
                )
        bare = asyncio.run(_bare_copy(args.database_url, lines))
        unit = "records/s" if order == "records" else "events/s"
        rate, bare_rate = len(lines) / load_seconds, len(lines) / bare
        rows.append(
            f"| {order} | {len(lines):,} | {seconds:.1f} | {load_seconds:.1f} | {rate:,.0f} {unit} "
            f"| {bare_rate:,.0f} lines/s | {rate / bare_rate:.3f} |"
        )
        log(
            f"{order}: {rate:,.0f} {unit} loading ({seconds:.1f} s with start-up); "
            f"COPY {bare_rate:,.0f} lines/s"
        )
    print(f"\nBulk import, {args.dossiers} dossiers, chunks of {args.chunk}:\n")
    print("| order | lines | s with start-up | s loading | import | bare COPY of the lines | ratio |")
    print("|---|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
