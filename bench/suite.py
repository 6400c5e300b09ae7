"""Every scenario of the performance issue, each beside the stack's own limit, in one command.

    python -m bench.suite [--sizes 10000,1000000] [--seconds 15] [--workers 1,2] [--output FILE]

The limit is `GET /api/v1/_baseline` (one `SELECT 1` through the same session dependency, pool,
middleware and server settings), measured on the same server, at the same concurrency, just
before each scenario; every figure is also given as a ratio to it. Scenarios, each with 1 and 2
server workers:

1. batch ingestion, events/s (20,000 dossiers on a fresh database; and the loads of each size);
2. quarter statistics of a district, at each size;
3. catalogue search, 10,000 procedures;
4. a single dossier read;
5. polling: revalidations with `If-None-Match` (all 304), and a mix of 80 % revalidations, 10 %
   fresh statistics and 10 % dossier reads.

Needs PostgreSQL at 127.0.0.1 (database `tthc_bench`, created and wiped) and `wrk`. With the
default sizes it takes about 30 minutes, most of it loading 1,000,000 dossiers.
"""

import argparse
import asyncio
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from bench import dossier_data
from bench.catalogue_search import load_catalogue, search_paths
from bench.harness import (
    DEFAULT_DATABASE,
    LoadResult,
    Request,
    Server,
    analyze,
    cpu_seconds,
    fresh_database,
    log,
    machine,
    make_key,
    serve,
    wrk,
)
from bench.ingestion import batches_for, push, setup
from bench.stats_query import load, stats_paths

BASELINE = "/api/v1/_baseline"
PORTAL_SCOPES = ["dossiers:write", "dossiers:read", "units:write", "catalogue:write"]
STATS_CONNECTIONS = 4
POLLING_CONNECTIONS = 32


@dataclass
class Row:
    scenario: str
    data: str
    workers: int
    connections: int
    throughput: float
    unit: str
    result: LoadResult | None
    baseline: LoadResult
    rss_mb: float

    def markdown(self) -> str:
        ratio = self.throughput / self.baseline.throughput
        latency = (
            f"{self.result.p50_ms:.1f} | {self.result.p99_ms:.1f} | {self.result.errors}"
            if self.result
            else "– | – | 0"
        )
        return (
            f"| {self.scenario} | {self.data} | {self.workers} | {self.connections} | "
            f"{self.throughput:,.0f} {self.unit} | {latency} | {self.baseline.throughput:,.0f} | "
            f"{self.baseline.p99_ms:.1f} | {ratio:.0%} | {self.rss_mb:.0f} |"
        )


HEADER = (
    "| scenario | data | workers | connections | throughput | p50 ms | p99 ms | errors | "
    "baseline req/s | baseline p99 ms | ratio | max RSS MB |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|---|"
)


class Bench:
    def __init__(self, seconds: int) -> None:
        self.seconds = seconds
        self.rows: list[Row] = []
        self.notes: list[str] = []
        self._baselines: dict[tuple[str, int], LoadResult] = {}

    def baseline(self, server: Server, connections: int) -> LoadResult:
        """The limit at this concurrency, measured once per server."""
        key = (server.url, connections)
        if key not in self._baselines:
            wrk(server.url, [BASELINE], seconds=2, connections=connections)  # warm-up
            self._baselines[key] = wrk(server.url, [BASELINE], seconds=self.seconds, connections=connections)
        return self._baselines[key]

    def measure(
        self,
        server: Server,
        workers: int,
        scenario: str,
        data: str,
        requests: Sequence[Request],
        connections: int,
        headers: dict[str, str] | None = None,
    ) -> None:
        baseline = self.baseline(server, connections)
        wrk(server.url, requests, seconds=2, connections=connections, headers=headers)  # warm-up
        log(f"{scenario} ({data}): {workers} worker(s), {connections} connections, {self.seconds}s")
        result = wrk(server.url, requests, seconds=self.seconds, connections=connections, headers=headers)
        self.add(scenario, data, workers, connections, result.throughput, "req/s", result, baseline, server)

    def add(
        self,
        scenario: str,
        data: str,
        workers: int,
        connections: int,
        throughput: float,
        unit: str,
        result: LoadResult | None,
        baseline: LoadResult,
        server: Server,
    ) -> None:
        row = Row(
            scenario,
            data,
            workers,
            connections,
            throughput,
            unit,
            result,
            baseline,
            max(server.worker_rss_mb()),
        )
        self.rows.append(row)
        log("  " + row.markdown())


def etags_of(base_url: str, paths: Sequence[str]) -> list[tuple[str, dict[str, str]]]:
    """Each path with the ETag it currently has, as a poller that already fetched it would send."""
    with httpx.Client(base_url=base_url, timeout=60) as http:
        return [(path, {"If-None-Match": http.get(path).headers["etag"]}) for path in paths]


def ingestion(bench: Bench, url: str, workers_list: list[int], seed: int, procedures: int) -> None:
    procedure_rows = dossier_data.procedures(procedures, seed)
    dossiers = list(dossier_data.dossier_events(20_000, procedure_rows, seed))
    events = sum(len(d) for d in dossiers)
    bodies = batches_for(dossiers, 1000, 2)
    for workers in workers_list:
        fresh_database(url)
        key = make_key(url, "bench-portal", PORTAL_SCOPES)
        with serve(url, workers=workers, benchmark_baseline="true") as server:
            setup(server.url, key, procedure_rows)
            baseline = bench.baseline(server, 2)
            log(f"ingesting 20,000 dossiers: {workers} worker(s), 2 senders, batches of 1,000")
            before = cpu_seconds(server)
            created, errors, seconds = asyncio.run(push(server.url, key, bodies))
            after = cpu_seconds(server)
            bench.notes.append(
                f"Ingestion, {workers} worker(s): CPU per 1,000 events — "
                + ", ".join(f"{name} {1e6 * (after[name] - before[name]) / events:.0f} ms" for name in after)
                + f" (wall {1e6 * seconds / events:.0f} ms; the machine has 2 cores)"
            )
            log(bench.notes[-1])
            if errors or created != events:
                raise RuntimeError(f"ingestion: {created} of {events} created, {errors} errors")
            bench.add(
                "1 ingestion",
                "20,000 dossiers",
                workers,
                2,
                events / seconds,
                "events/s",
                None,
                baseline,
                server,
            )


def search(bench: Bench, url: str, workers_list: list[int], seed: int) -> None:
    fresh_database(url)
    key = make_key(url, "bench-loader", ["catalogue:write"])
    with serve(url) as server:
        procedures = load_catalogue(server.url, key, 10_000, seed)
    analyze(url)
    paths = search_paths(procedures, seed)
    for workers in workers_list:
        with serve(url, workers=workers, benchmark_baseline="true") as server:
            for connections in (1, STATS_CONNECTIONS):
                bench.measure(server, workers, "3 search", "10,000 procedures", paths, connections)


def at_size(
    bench: Bench, url: str, size: int, workers_list: list[int], seed: int, procedures: int, reuse: bool
) -> None:
    data = f"{size:,} dossiers"
    procedure_rows = dossier_data.procedures(procedures, seed)
    if reuse and loaded_dossiers(url) == size:
        log(f"reusing the database: it holds {size:,} dossiers")
        key = make_key(url, f"bench-portal-{time.time_ns()}", PORTAL_SCOPES)
    else:
        fresh_database(url)
        key = make_key(url, "bench-portal", PORTAL_SCOPES)
        with serve(url, workers=2, benchmark_baseline="true") as server:
            setup(server.url, key, procedure_rows)
            baseline = bench.baseline(server, 2)
            events, seconds = asyncio.run(load(server.url, key, size, seed, procedure_rows))
            bench.add("1 ingestion (load)", data, 2, 2, events / seconds, "events/s", None, baseline, server)
        analyze(url)

    stats = stats_paths()
    rng = random.Random(seed)
    dossier_paths = [f"/api/v1/dossiers/H56-{rng.randrange(size):08d}" for _ in range(1000)]
    auth = {"Authorization": f"Bearer {key}"}
    for workers in workers_list:
        computed(bench, url, data, workers)
        with serve(url, workers=workers, benchmark_baseline="true") as server:
            bench.measure(server, workers, "2 quarter statistics", data, stats, STATS_CONNECTIONS)
            bench.measure(server, workers, "4 dossier read", data, dossier_paths, STATS_CONNECTIONS, auth)
            revalidations = etags_of(server.url, stats)
            bench.measure(server, workers, "5 polling, all 304", data, revalidations, POLLING_CONNECTIONS)
            # Per 10 requests: 8 revalidations, 1 fresh statistics, 1 dossier read (with the key).
            mixed: list[Request] = []
            for number, (path, headers) in enumerate(revalidations):
                mixed.extend((path, headers) for _ in range(8))
                mixed.append(stats[(number + 1) % len(stats)])
                mixed.append((dossier_paths[number], auth))
            bench.measure(server, workers, "5 polling, mixed", data, mixed, POLLING_CONNECTIONS)


def computed(bench: Bench, url: str, data: str, workers: int) -> None:
    """Quarter statistics computed for every request: the answer cache turned off."""
    with serve(url, workers=workers, benchmark_baseline="true", stats_cache_bytes="0") as server:
        bench.measure(
            server, workers, "2 quarter statistics, cache off", data, stats_paths(), STATS_CONNECTIONS
        )


def loaded_dossiers(url: str) -> int:
    async def run() -> int:
        engine = create_async_engine(url, poolclass=NullPool)
        try:
            async with engine.connect() as connection:
                return int(await connection.scalar(text("SELECT count(*) FROM dossiers")) or 0)
        finally:
            await engine.dispose()

    return asyncio.run(run())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database-url", default=DEFAULT_DATABASE)
    parser.add_argument("--sizes", default="10000,1000000")
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--procedures", type=int, default=3000, help="in the dossiers' catalogue")
    parser.add_argument("--seed", type=int, default=2023)
    parser.add_argument(
        "--only",
        default="ingestion,search,sizes",
        help="which parts to run; `cold` measures computed statistics on the database as it is",
    )
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="measure on the database as loaded if it holds that many dossiers",
    )
    parser.add_argument("--output", type=Path, help="also write the results table (Markdown) here")
    args = parser.parse_args()

    started = time.monotonic()
    log(f"machine: {machine()}")
    bench = Bench(args.seconds)
    workers = [int(w) for w in args.workers.split(",")]
    parts = set(args.only.split(","))
    if "ingestion" in parts:
        ingestion(bench, args.database_url, workers, args.seed, args.procedures)
    if "search" in parts:
        search(bench, args.database_url, workers, args.seed)
    if "sizes" in parts:
        for size in [int(s) for s in args.sizes.split(",")]:
            at_size(bench, args.database_url, size, workers, args.seed, args.procedures, args.reuse)

    if "cold" in parts:
        count = loaded_dossiers(args.database_url)
        for number in workers:
            computed(bench, args.database_url, f"{count:,} dossiers", number)

    table = "\n".join([HEADER, *(row.markdown() for row in bench.rows)])
    notes = "".join(f"\n- {note}" for note in bench.notes)
    report = (
        f"{time.strftime('%Y-%m-%d')} · {machine()} · `python -m bench.suite "
        f"--sizes {args.sizes} --seconds {args.seconds}`, {args.seconds}s each\n\n{table}\n{notes}\n"
    )
    print("\n" + report)
    if args.output:
        args.output.write_text(report)
    log(f"done: {len(bench.rows)} measurements in {(time.monotonic() - started) / 60:.0f} min")


if __name__ == "__main__":
    main()
