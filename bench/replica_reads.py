"""Statistics answered with one hot standby beside the primary, against the primary alone.

    python -m bench.replica_reads [--dossiers 50000] [--seconds 15] [--workers 2] [--output FILE]

A database of that many dossiers (`tthc_bench`, reused when it already holds them), a real hot
standby of it started as the tests start theirs (tests/standby.py: `pg_basebackup -R`, `pg_ctl`),
then, for each of "primary only" and "one standby" (`TTHC_DATABASE_READ_URLS`), the same server
driven by wrk with quarter statistics computed for every request (answer cache off: the database
does the work) and with revalidations (all 304). Beside each figure: the database transactions the
primary and the standby committed per request, which shows where the reads went.

All three — the app, the primary and the standby — share this machine's cores, so the standby adds
no hardware here: the figure to read is how much of the read load leaves the primary.
"""

import argparse
import asyncio
import time
from collections.abc import Sequence
from pathlib import Path

from sqlalchemy.exc import DBAPIError

from bench import dossier_data
from bench.harness import (
    DEFAULT_DATABASE,
    Request,
    analyze,
    fresh_database,
    log,
    machine,
    make_key,
    serve,
    wrk,
)
from bench.ingestion import setup
from bench.stats_query import load, stats_paths
from bench.suite import (
    BASELINE,
    HEADER,
    POLLING_CONNECTIONS,
    PORTAL_SCOPES,
    STATS_CONNECTIONS,
    Bench,
    etags_of,
    loaded_dossiers,
)
from tests.standby import query, start_standby


def committed(url: str) -> int:
    """Transactions committed in the database so far, as the server counts them (pg_stat_database)."""
    rows = query(url, "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()")
    return int(rows[0][0])


def ensure_data(url: str, size: int, seed: int) -> None:
    try:
        loaded = loaded_dossiers(url)
    except DBAPIError:  # no such database, or not migrated yet
        loaded = 0
    if loaded == size:
        log(f"reusing the database: it holds {size:,} dossiers")
        return
    fresh_database(url)
    key = make_key(url, "bench-portal", PORTAL_SCOPES)
    procedure_rows = dossier_data.procedures(100, seed)
    with serve(url, workers=2) as server:
        setup(server.url, key, procedure_rows)
        events, seconds = asyncio.run(load(server.url, key, size, seed, procedure_rows))
        log(f"loaded {size:,} dossiers: {events:,} events in {seconds:.0f} s")
    analyze(url)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database", default=DEFAULT_DATABASE)
    parser.add_argument("--dossiers", type=int, default=50_000)
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--rounds", type=int, default=2, help="times each setup is measured, alternating")
    parser.add_argument("--output", type=Path, default=Path("docs/profiles/replica-reads.md"))
    args = parser.parse_args()

    url: str = args.database
    ensure_data(url, args.dossiers, args.seed)
    log("starting a hot standby (pg_basebackup -R)")
    started = time.monotonic()
    standby = start_standby(url)
    bench = Bench(args.seconds)
    data = f"{args.dossiers:,} dossiers"
    try:
        standby.wait_until_caught_up()
        log(f"standby on port {standby.port}, caught up in {time.monotonic() - started:.0f} s")
        setups: tuple[tuple[str, dict[str, str]], ...] = (
            ("primary only", {}),
            ("one standby", {"database_read_urls": standby.url}),
        )
        # Alternated, so that a drift of this shared machine does not favour one of them.
        for label, settings in setups * args.rounds:
            with serve(url, workers=args.workers, benchmark_baseline="true") as server:
                baselines = {}
                for connections in (STATS_CONNECTIONS, POLLING_CONNECTIONS):
                    wrk(server.url, [BASELINE], seconds=2, connections=connections)  # warm-up
                    baselines[connections] = wrk(
                        server.url, [BASELINE], seconds=args.seconds, connections=connections
                    )
            for scenario, connections in (
                ("quarter statistics, cache off", STATS_CONNECTIONS),
                ("polling, all 304", POLLING_CONNECTIONS),
            ):
                before = committed(url), committed(standby.url)
                with serve(url, workers=args.workers, stats_cache_bytes="0", **settings) as server:
                    requests: Sequence[Request] = stats_paths()
                    if scenario.startswith("polling"):
                        requests = etags_of(server.url, stats_paths())
                    wrk(server.url, requests, seconds=2, connections=connections)  # warm-up
                    log(f"{scenario} — {label}: {args.workers} worker(s), {connections} connections")
                    result = wrk(server.url, requests, seconds=args.seconds, connections=connections)
                    bench.add(
                        f"{scenario} — {label}",
                        data,
                        args.workers,
                        connections,
                        result.throughput,
                        "req/s",
                        result,
                        baselines[connections],
                        server,
                    )
                # Counted once the server has stopped: a pooled connection publishes its counts only
                # at its next transaction or when it closes.
                time.sleep(1)
                after = committed(url), committed(standby.url)
                primary, replica = after[0] - before[0], after[1] - before[1]
                bench.notes.append(
                    f"{scenario} — {label}: {result.requests:,} requests measured; transactions committed "
                    f"over the server's life (start, warm-up, measurement): primary {primary:,}, standby "
                    f"{replica:,} (on the standby: {replica / max(1, primary + replica):.0%})"
                )
                log("  " + bench.notes[-1])
    finally:
        standby.destroy()

    lines = [
        "# Reads with one hot standby beside the primary (`python -m bench.replica_reads`)",
        "",
        f"{machine()}; {args.seconds} s per figure, setups alternated {args.rounds} times; app, primary "
        "and standby on the same machine.",
        "",
        HEADER,
        *(row.markdown() for row in bench.rows),
        "",
        *(f"- {note}" for note in bench.notes),
        "",
    ]
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text("\n".join(lines))
    log(f"written to {args.output}")


if __name__ == "__main__":
    main()
