"""Batch ingestion throughput: events/s through `POST /api/v1/dossier-events/batch`, and
records/s through `POST /api/v1/sync/dvcqg`.

    python -m bench.ingestion [--dossiers 20000] [--batch 1000] [--senders 2] [--workers 1,2]
                              [--orders in-order,scrambled,records]

Each sender pushes its own share of dossiers. `in-order`: every dossier's events in order, as
the dossiers come. `scrambled`: as sync pipelines deliver them — each event late by minutes
(70 %), days (25 %) or about two months (5 %) after it happened, and sent in the order of
arrival, so finishes often come before the supplement requests that preceded them and now and
then a reception after later events. `records`: each dossier's final state as one DVCQG
`DongBoHoSoMC` record. Bodies are serialised before the clock starts, so the figure is the
server's, not the client's JSON.
"""

import argparse
import asyncio
import json
import random
import time
from datetime import datetime, timedelta
from typing import Any

import httpx

from bench import dossier_data
from bench.catalogue import SECTORS
from bench.harness import DEFAULT_DATABASE, cpu_seconds, fresh_database, log, machine, make_key, serve


def setup(base_url: str, key: str, procedure_rows: list[dict[str, Any]]) -> None:
    with httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {key}"}, timeout=120) as http:
        for unit in dossier_data.units():
            http.post("/api/v1/units", json=unit).raise_for_status()
        for code, name in SECTORS:
            http.post("/api/v1/sectors", json={"code": code, "name": name}).raise_for_status()
        http.post("/api/v1/procedures/import", json=procedure_rows).raise_for_status()


def batches_for(
    dossiers: list[list[dict[str, Any]]], size: int, senders: int, order: str = "in-order", seed: int = 2023
) -> list[list[bytes]]:
    """Per sender, its batches as ready-to-send JSON bodies."""
    shares: list[list[list[dict[str, Any]]]] = [[] for _ in range(senders)]
    for number, events in enumerate(dossiers):
        shares[number % senders].append(events)
    if order == "records":
        return [
            [
                json.dumps(
                    {"service": "DongBoHoSoMC", "isUpdating": False, "data": share[start : start + size]}
                ).encode()
                for start in range(0, len(share), size)
            ]
            for share in ([portal_record(events) for events in mine] for mine in shares)
        ]
    rng = random.Random(seed)
    flat = [
        [event for events in mine for event in events]
        if order == "in-order"
        else sorted((event for events in mine for event in events), key=lambda event: _arrival(event, rng))
        for mine in shares
    ]
    return [
        [json.dumps({"events": share[start : start + size]}).encode() for start in range(0, len(share), size)]
        for share in flat
    ]


def _arrival(event: dict[str, Any], rng: random.Random) -> datetime:
    """When a sync pipeline delivers the event: minutes, days or about two months after it happened."""
    roll = rng.random()
    delay = (
        timedelta(minutes=rng.uniform(1, 120))
        if roll < 0.7
        else timedelta(days=rng.uniform(1, 14))
        if roll < 0.95
        else timedelta(days=rng.uniform(45, 70))
    )
    return datetime.fromisoformat(event["occurred_at"]) + delay


_STATUS = {
    "received": 2,
    "supplement_requested": 5,
    "supplement_received": 4,
    "withdrawn": 7,
    "resolved": 9,
    "returned": 10,
}


def _portal_time(instant: str) -> str:
    return datetime.fromisoformat(instant).strftime("%Y%m%d%H%M%S")  # the generator writes Vietnam time


def portal_record(events: list[dict[str, Any]]) -> dict[str, Any]:
    """A dossier's final state as a one-stop system syncs it to the national portal."""
    first = events[0]
    record: dict[str, Any] = {
        "MaHoSo": first["dossier_code"],
        "MaTTHC": first["procedure_code"],
        "DonViXuLy": first["unit_code"],
        "KenhThucHien": {"direct": 1, "online": 2, "postal": 3}[first["channel"]],
        "NgayTiepNhan": _portal_time(first["occurred_at"]),
        "TrangThaiHoSo": _STATUS[events[-1]["type"]],
        "DanhSachHoSoBoSung": [],
    }
    if first.get("online_level"):
        record["MucDo"] = {"partial": 3, "full": 4}[first["online_level"]]
    for event in events[1:]:
        at = _portal_time(event["occurred_at"])
        if event["type"] == "supplement_requested":
            record["DanhSachHoSoBoSung"].append({"HoSoBoSungId": "1", "NgayBoSung": at})
        elif event["type"] == "supplement_received":
            record["DanhSachHoSoBoSung"][-1]["NgayTiepNhanBoSung"] = at
        elif event["type"] in ("withdrawn", "resolved"):
            record["NgayKetThucXuLy"] = at
        elif event["type"] == "returned":
            record["NgayTra"] = at
    return record


async def push(
    base_url: str, key: str, bodies: list[list[bytes]], path: str = "/api/v1/dossier-events/batch"
) -> tuple[int, int, float]:
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    created = errors = 0
    done = 0
    total = sum(len(b) for b in bodies)

    async def sender(mine: list[bytes]) -> None:
        nonlocal created, errors, done
        async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=300) as http:
            for body in mine:
                response = await http.post(path, content=body)
                response.raise_for_status()
                for result in response.json()["results"]:
                    created += result["status"] in ("created", "pending")
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
    parser.add_argument("--orders", default="in-order,scrambled,records")
    args = parser.parse_args()

    log(f"machine: {machine()}")
    procedure_rows = dossier_data.procedures(args.procedures, args.seed)
    dossiers = list(dossier_data.dossier_events(args.dossiers, procedure_rows, args.seed))
    events = sum(len(d) for d in dossiers)
    log(f"generated {args.dossiers} dossiers, {events} events")
    rows = []
    for order in args.orders.split(","):
        bodies = batches_for(dossiers, args.batch, args.senders, order, args.seed)
        path = "/api/v1/sync/dvcqg" if order == "records" else "/api/v1/dossier-events/batch"
        items = len(dossiers) if order == "records" else events
        unit = "records/s" if order == "records" else "events/s"
        for workers in [int(w) for w in args.workers.split(",")]:
            fresh_database(args.database_url)
            key = make_key(
                args.database_url, "bench-portal", ["dossiers:write", "units:write", "catalogue:write"]
            )
            with serve(args.database_url, workers=workers) as server:
                setup(server.url, key, procedure_rows)
                log(f"{order}: {workers} worker(s), {args.senders} senders, batches of {args.batch}")
                before = cpu_seconds(server)
                created, errors, seconds = asyncio.run(push(server.url, key, bodies, path))
                after = cpu_seconds(server)
                rss = max(server.worker_rss_mb())
            # Per item: with one sender the server and PostgreSQL take turns, so these add up.
            server_cpu, database_cpu = ((after[k] - before[k]) / items * 1e6 for k in ("server", "postgres"))
            rows.append(
                f"| {order} | {workers} | {args.senders} | {args.batch} | {items} | {created} | {errors} | "
                f"{seconds:.1f} | {items / seconds:,.0f} {unit} | {rss:.0f} "
                f"| {server_cpu:.0f} µs | {database_cpu:.0f} µs |"
            )
            log(
                f"{order}, {workers} worker(s): {items / seconds:,.0f} {unit} "
                f"({created} accepted, {errors} errors)"
            )
    print(f"\nBatch ingestion, {args.dossiers} dossiers:\n")
    print(
        "| order | workers | senders | batch | items | created or pending | errors | seconds | rate "
        "| max RSS MB | the server's CPU an item | PostgreSQL's CPU an item |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
