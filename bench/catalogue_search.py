"""Catalogue search under load: p50/p99 and throughput of `GET /api/v1/procedures?q=…`.

    python -m bench.catalogue_search [--procedures 10000] [--seconds 20] [--connections 1,4,8] [--workers 1,2]

Needs PostgreSQL (default database `tthc_bench` on 127.0.0.1, created and wiped) and `wrk`.
"""

import argparse
import random
import time
import urllib.parse

import httpx

from app.core.text import fold
from bench import catalogue
from bench.harness import DEFAULT_DATABASE, analyze, fresh_database, log, machine, make_key, serve, wrk

IMPORT_CHUNK = 1000


def load_catalogue(base_url: str, key: str, count: int, seed: int) -> list[dict[str, object]]:
    headers = {"Authorization": f"Bearer {key}"}
    procedures = catalogue.generate(count, seed)
    with httpx.Client(base_url=base_url, headers=headers, timeout=120) as http:
        for code, name in catalogue.SECTORS:
            http.post("/api/v1/sectors", json={"code": code, "name": name}).raise_for_status()
        started = time.monotonic()
        for start in range(0, count, IMPORT_CHUNK):
            http.post(
                "/api/v1/procedures/import", json=procedures[start : start + IMPORT_CHUNK]
            ).raise_for_status()
            log(f"  imported {min(start + IMPORT_CHUNK, count)}/{count} procedures")
        log(f"catalogue loaded: {count} procedures in {time.monotonic() - started:.1f}s")
    return procedures


def search_paths(procedures: list[dict[str, object]], seed: int) -> list[str]:
    """A mix of what citizens' apps send: accented and plain words, codes, and filters."""
    rng = random.Random(seed)
    paths = []
    for _ in range(500):
        item = rng.choice(procedures)
        name = str(item["name"])
        words = name.split()
        start = rng.randrange(len(words))
        phrase = " ".join(words[start : start + rng.choice([1, 2, 3])])
        kind = rng.random()
        if kind < 0.4:
            params = {"q": fold(phrase)}
        elif kind < 0.7:
            params = {"q": phrase}
        elif kind < 0.85:
            params = {"q": str(item["code"])}
        else:
            params = {"q": fold(phrase), "level": "commune", "online_service": "full"}
        paths.append("/api/v1/procedures?" + urllib.parse.urlencode(params))
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database-url", default=DEFAULT_DATABASE)
    parser.add_argument("--procedures", type=int, default=10_000)
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--connections", default="1,4,8", help="comma-separated wrk connection counts")
    parser.add_argument("--workers", default="1,2", help="comma-separated server worker counts")
    parser.add_argument("--seed", type=int, default=2023)
    args = parser.parse_args()

    log(f"machine: {machine()}")
    fresh_database(args.database_url)
    key = make_key(args.database_url, "bench-loader", ["catalogue:write"])
    with serve(args.database_url) as server:
        procedures = load_catalogue(server.url, key, args.procedures, args.seed)
    analyze(args.database_url)
    paths = search_paths(procedures, args.seed)
    rows = []
    for workers in [int(w) for w in args.workers.split(",")]:
        with serve(args.database_url, workers=workers) as server:
            wrk(server.url, paths[:100], seconds=3, connections=4)  # warm-up: connections, plans, caches
            for connections in [int(c) for c in args.connections.split(",")]:
                log(f"searching: {workers} worker(s), {connections} connections, {args.seconds}s")
                result = wrk(server.url, paths, seconds=args.seconds, connections=connections)
                rss = max(server.worker_rss_mb())
                rows.append(
                    f"| {workers} | {connections} | {result.throughput:.0f} | {result.p50_ms:.1f} | "
                    f"{result.p99_ms:.1f} | {result.errors} | {rss:.0f} |"
                )
    print(
        f"\nCatalogue search, {args.procedures} procedures, {len(paths)} distinct queries, "
        f"{args.seconds}s each:\n"
    )
    print("| workers | connections | req/s | p50 ms | p99 ms | errors | max RSS MB |")
    print("|---|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
