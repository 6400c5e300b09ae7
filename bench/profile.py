"""Where a scenario's time goes: py-spy samples a one-worker server while wrk drives the scenario.

    python -m bench.profile --scenario stats [--seconds 10] [--output docs/profiles/stats.txt]

Runs on the database a `bench.suite` run left behind (`tthc_bench`, loaded with dossiers).
Writes the collapsed stacks (for speedscope or flamegraph.pl) and prints the functions with the
largest share of samples, inclusive and own.
"""

import argparse
import asyncio
import collections
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench import dossier_data
from bench.harness import DEFAULT_DATABASE, Request, fresh_database, log, make_key, serve, wrk
from bench.ingestion import batches_for, push, setup
from bench.stats_query import stats_paths
from bench.suite import BASELINE, PORTAL_SCOPES, etags_of

SCENARIOS = ("baseline", "stats", "polling", "read", "search", "ingest")
INGEST_DOSSIERS = 20_000


def requests_for(scenario: str, base_url: str, dossiers: int) -> list[Request]:
    if scenario == "baseline":
        return [BASELINE]
    if scenario == "stats":
        return list(stats_paths())
    if scenario == "polling":
        return list[Request](etags_of(base_url, stats_paths()))
    if scenario == "search":
        return [f"/api/v1/procedures?q=thu+tuc+{n}" for n in range(100)]
    rng = random.Random(1)
    return [f"/api/v1/dossiers/H56-{rng.randrange(dossiers):08d}" for _ in range(1000)]


def summarise(collapsed: str, top: int = 25) -> str:
    inclusive: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    total = 0
    for line in collapsed.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        total += count
        # "function (path/to/file.py:line)" → "function file.py", so lines of a function add up.
        frames = [
            frame.split(" (")[0] + " " + frame.rsplit("/", 1)[-1].rstrip(")").split(":")[0]
            for frame in stack.split(";")
        ]
        for frame in set(frames):
            inclusive[frame] += count
        own[frames[-1]] += count
    lines = [f"{total} samples", "", "inclusive:"]
    lines += [f"  {100 * n / total:5.1f}%  {frame}" for frame, n in inclusive.most_common(top + 12)[12:]]
    lines += ["", "own:"]
    lines += [f"  {100 * n / total:5.1f}%  {frame}" for frame, n in own.most_common(top)]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database-url", default=DEFAULT_DATABASE)
    parser.add_argument("--scenario", choices=SCENARIOS, required=True)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--dossiers", type=int, default=10_000, help="how many the database holds")
    parser.add_argument("--no-cache", action="store_true", help="turn the statistics answer cache off")
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()

    if args.scenario == "ingest":
        # A fresh database: 20,000 dossiers pushed by two senders in batches of 1,000.
        fresh_database(args.database_url)
        procedure_rows = dossier_data.procedures(3000, 2023)
        bodies = batches_for(
            list(dossier_data.dossier_events(INGEST_DOSSIERS, procedure_rows, 2023)), 1000, 2
        )
    key = make_key(args.database_url, f"bench-profiler-{time.time_ns()}", PORTAL_SCOPES)
    headers = {"Authorization": f"Bearer {key}"} if args.scenario == "read" else None
    cache = {"stats_cache_bytes": "0"} if args.no_cache else {}
    with serve(args.database_url, workers=1, benchmark_baseline="true", **cache) as server:
        if args.scenario == "ingest":
            setup(server.url, key, procedure_rows)

            def drive() -> None:
                asyncio.run(push(server.url, key, bodies))

        else:
            requests = requests_for(args.scenario, server.url, args.dossiers)
            wrk(server.url, requests, seconds=2, connections=args.connections, headers=headers)

            def drive() -> None:
                wrk(server.url, requests, seconds=args.seconds, connections=args.connections, headers=headers)

        with tempfile.NamedTemporaryFile(suffix=".txt") as raw:
            spy = subprocess.Popen(
                [
                    str(Path(sys.executable).with_name("py-spy")),
                    "record",
                    "--pid",
                    str(server.process.pid),
                    "--duration",
                    str(args.seconds),
                    "--rate",
                    "250",
                    "--format",
                    "raw",
                    "--output",
                    raw.name,
                ],
                stdout=subprocess.DEVNULL,
            )
            load = threading.Thread(target=drive)
            log(f"profiling {args.scenario} for {args.seconds}s")
            load.start()
            spy.wait()
            load.join()
            collapsed = Path(raw.name).read_text()
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(collapsed)
    print(summarise(collapsed))


if __name__ == "__main__":
    main()
