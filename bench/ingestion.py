"""Batch ingestion throughput: events/s through `POST /api/v1/dossier-events/batch`.

    python -m bench.ingestion [--dossiers 20000] [--batch 1000] [--senders 2] [--workers 1,2]

Each sender pushes its own share of dossiers, every dossier's events in order. Batches are
serialised before the clock starts, so the figure is the server's, not the client's JSON.
"""

import argparse
import asyncio
import json
import time
from typing import Any

import httpx

from bench import dossier_data
from bench.catalogue import SECTORS
from bench.harness import DEFAULT_DATABASE, fresh_database, log, machine, make_key, serve


def _setup(base_url: str, key: str, procedure_rows: list[dict[str, Any]]) -> None:
    with httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {key}"}, timeout=120) as http:
        for unit in dossier_data.units():
            http.post("/api/v1/units", json=unit).raise_for_status()
        for code, name in SECTORS:
            http.post("/api/v1/sectors", json={"code": code, "name": name}).raise_for_status()
        http.post("/api/v1/procedures/import", json=procedure_rows).raise_for_status()


def batches_for(dossiers: list[list[dict[str, Any]]], size: int, senders: int) -> list[list[bytes]]:
    """Per sender, its batches as ready-to-send JSON bodies."""
    shares: list[list[dict[str, Any]]] = [[] for _ in range(senders)]
    for number, events in enumerate(dossiers):
        shares[number % senders].extend(events)
    return [
        [json.dumps({"events": share[start : start + size]}).encode() for start in range(0, len(share), size)]
        for share in shares
    ]


async def push(base_url: str, key: str, bodies: list[list[bytes]]) -> tuple[int, int, float]:
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    created = errors = 0
    done = 0
    total = sum(len(b) for b in bodies)

    async def sender(mine: list[bytes]) -> None:
        nonlocal created, errors, done
        async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=300) as http:
            for body in mine:
                response = await http.post("/api/v1/dossier-events/batch", content=body)
                response.raise_for_status()
                for result in response.json()["results"]:
                    created += result["status"] == "created"
                    errors += result["status"] == "error"
                done += 1
                if done % 20 == 0 or done == total:
                    log(f"  batches {done}/{total}")

    started = time.perf_counter()
    await asyncio.gather(*(sender(mine) for mine in bodies))
    return created, errors, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database-url", default=DEFAULT_DATABASE)
    parser.add_argument("--dossiers", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--senders", type=int, default=2)
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--procedures", type=int, default=300)
    parser.add_argument("--seed", type=int, default=2023)
    args = parser.parse_args()

    log(f"machine: {machine()}")
    procedure_rows = dossier_data.procedures(args.procedures, args.seed)
    dossiers = list(dossier_data.dossier_events(args.dossiers, procedure_rows, args.seed))
    events = sum(len(d) for d in dossiers)
    bodies = batches_for(dossiers, args.batch, args.senders)
    log(f"generated {args.dossiers} dossiers, {events} events")
    rows = []
    for workers in [int(w) for w in args.workers.split(",")]:
        fresh_database(args.database_url)
        key = make_key(
            args.database_url, "bench-portal", ["dossiers:write", "units:write", "catalogue:write"]
        )
        with serve(args.database_url, workers=workers) as server:
            _setup(server.url, key, procedure_rows)
            log(f"ingesting: {workers} worker(s), {args.senders} senders, batches of {args.batch}")
            created, errors, seconds = asyncio.run(push(server.url, key, bodies))
            rss = max(server.worker_rss_mb())
        rows.append(
            f"| {workers} | {args.senders} | {args.batch} | {events} | {created} | {errors} | "
            f"{seconds:.1f} | {events / seconds:,.0f} | {rss:.0f} |"
        )
        log(f"{workers} worker(s): {events / seconds:,.0f} events/s ({created} created, {errors} errors)")
    print(f"\nBatch ingestion, {args.dossiers} dossiers:\n")
    print("| workers | senders | batch | events | created | errors | seconds | events/s | max RSS MB |")
    print("|---|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
