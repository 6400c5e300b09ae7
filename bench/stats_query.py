"""Quarter statistics for a district under load, at two data volumes: cost must stay flat.

    python -m bench.stats_query [--sizes 10000,1000000] [--seconds 15] [--connections 4] [--workers 1,2]

For each size: a fresh database, the province of bench/dossier_data.py (6 districts of 10
communes), that many dossiers with full lifecycles loaded through the batch endpoint, then wrk on
`GET /api/v1/stats/dossiers?unit=<district>&period=<quarter>&group_by=unit_level` over the six
districts and the eight quarters of 2023–2024 — and, in the same run, on `/api/v1/_baseline`-less
servers, so the figure is the request's own.
"""

import argparse
import asyncio
import itertools
import time

import httpx

from bench import dossier_data
from bench.harness import DEFAULT_DATABASE, analyze, fresh_database, log, machine, make_key, serve, wrk
from bench.ingestion import setup

BATCH = 1000


async def load(
    base_url: str, key: str, count: int, seed: int, procedure_rows: list[dict[str, object]]
) -> tuple[int, float]:
    """Push ``count`` dossiers through the batch endpoint; the events sent and the seconds taken."""
    headers = {"Authorization": f"Bearer {key}"}
    started = time.monotonic()
    in_flight = asyncio.Semaphore(2)
    sent = 0

    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=600) as http:

        async def post(events: list[dict[str, object]]) -> None:
            nonlocal sent
            async with in_flight:
                response = await http.post("/api/v1/dossier-events/batch", json={"events": events})
                response.raise_for_status()
                errors = [r for r in response.json()["results"] if r["status"] == "error"]
                if errors:
                    raise RuntimeError(f"ingestion errors: {errors[:3]}")
                sent += len(events)

        pending: set[asyncio.Task[None]] = set()
        batch: list[dict[str, object]] = []
        # Two streams of dossiers, so that each dossier's events stay in one sender, in order.
        for number, events in enumerate(dossier_data.dossier_events(count, procedure_rows, seed)):
            if len(batch) + len(events) > BATCH:
                while len(pending) >= 2:
                    _done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                # Whole dossiers per batch: two in-flight batches never share a dossier.
                pending.add(asyncio.create_task(post(batch)))
                batch = []
            batch.extend(events)
            if number % 50_000 == 0 and number:
                rate = sent / (time.monotonic() - started)
                log(f"  loaded {number}/{count} dossiers ({rate:,.0f} events/s)")
        if batch:
            pending.add(asyncio.create_task(post(batch)))
        await asyncio.gather(*pending)
    seconds = time.monotonic() - started
    log(f"loaded {count} dossiers, {sent} events in {seconds:.0f}s ({sent / seconds:,.0f} events/s)")
    return sent, seconds


def stats_paths() -> list[str]:
    districts = [u["code"] for u in dossier_data.units() if u["level"] == "district"]
    quarters = [f"{year}-Q{q}" for year in (2023, 2024) for q in range(1, 5)]
    return [
        f"/api/v1/stats/dossiers?unit={district}&period={quarter}&group_by=unit_level"
        for district, quarter in itertools.product(districts, quarters)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database-url", default=DEFAULT_DATABASE)
    parser.add_argument("--sizes", default="10000,1000000")
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--procedures", type=int, default=300)
    parser.add_argument("--seed", type=int, default=2023)
    args = parser.parse_args()

    log(f"machine: {machine()}")
    procedure_rows = dossier_data.procedures(args.procedures, args.seed)
    table = []
    for size in [int(s) for s in args.sizes.split(",")]:
        fresh_database(args.database_url)
        key = make_key(
            args.database_url, "bench-portal", ["dossiers:write", "units:write", "catalogue:write"]
        )
        with serve(args.database_url, workers=2) as server:
            setup(server.url, key, procedure_rows)
            asyncio.run(load(server.url, key, size, args.seed, procedure_rows))
        analyze(args.database_url)
        for workers in [int(w) for w in args.workers.split(",")]:
            with serve(args.database_url, workers=workers) as server:
                wrk(server.url, stats_paths(), seconds=3, connections=args.connections)  # warm-up
                result = wrk(server.url, stats_paths(), seconds=args.seconds, connections=args.connections)
                baseline = wrk(server.url, ["/healthz"], seconds=args.seconds, connections=args.connections)
                rss = max(server.worker_rss_mb())
            log(f"{size} dossiers, {workers} worker(s): {result.throughput:.0f}/s, p99 {result.p99_ms:.1f}")
            table.append(
                f"| {size:,} | {workers} | {args.connections} | {result.throughput:.0f} | "
                f"{result.p50_ms:.1f} | {result.p99_ms:.1f} | {result.errors} | {baseline.throughput:.0f} | "
                f"{rss:.0f} |"
            )
    print(f"\nQuarter statistics of a district (group_by=unit_level), {args.seconds}s each:\n")
    print("| dossiers | workers | connections | req/s | p50 ms | p99 ms | errors | /healthz req/s | RSS MB |")
    print("|---|---|---|---|---|---|---|---|---|")
    print("\n".join(table))


if __name__ == "__main__":
    main()
