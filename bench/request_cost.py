"""What the heaviest requests an outsider can send cost the server: CPU seconds of the serving
process (and of PostgreSQL) and wall time, one request at a time, on a real server.

    python -m bench.request_cost [--database-url URL] [--dossiers 2000]

Issue 27's bound: no request costs over 2 s of the application's CPU. Each scenario is the hostile
or largest-allowed form of one way in: the most revisions of one event, the most records of one
dossier with the most supplements, a 2 MiB body of changed records, the longest statistics series
asked anonymously, a catalogue import far over its row limit, JSON nested beyond the bound, the
largest batch and record requests, and the dossier with the longest timeline. CPU is read from
/proc before and after each request (the server runs one worker, nothing else is sent meanwhile).
"""

import argparse
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx

from bench import dossier_data
from bench.harness import DEFAULT_DATABASE, Server, cpu_seconds, fresh_database, log, machine, make_key, serve
from bench.ingestion import portal_record, setup

BATCH = "/api/v1/dossier-events/batch"
SYNC = "/api/v1/sync/dvcqg"


@dataclass
class Cost:
    scenario: str
    status: str
    body_bytes: int
    wall: float
    server_cpu: float
    postgres_cpu: float


@dataclass(frozen=True)
class Scenario:
    name: str
    method: str
    path: str
    body: bytes | None = None
    content_type: str = "application/json"
    anonymous: bool = False


def _stamp(at: datetime) -> str:
    return at.strftime("%Y%m%d%H%M%S")


def _with_supplements(template: dict[str, Any], code: str, count: int, shift_hours: int) -> dict[str, Any]:
    """The template's dossier, still processing, after ``count`` requests for papers each answered
    ``shift_hours`` later."""
    record = {key: value for key, value in template.items() if key not in ("NgayKetThucXuLy", "NgayTra")}
    at = datetime.strptime(record["NgayTiepNhan"], "%Y%m%d%H%M%S")
    requests = []
    for number in range(count):
        asked = at + timedelta(hours=1)
        at = asked + timedelta(hours=shift_hours)
        requests.append(
            {"HoSoBoSungId": str(number + 1), "NgayBoSung": _stamp(asked), "NgayTiepNhanBoSung": _stamp(at)}
        )
    return {**record, "MaHoSo": code, "TrangThaiHoSo": 4, "DanhSachHoSoBoSung": requests}


def _sync_body(records: list[dict[str, Any]]) -> bytes:
    return json.dumps({"service": "DongBoHoSoMC", "data": records}).encode()


def scenarios(dossiers: list[list[dict[str, Any]]]) -> list[Scenario]:
    """In order: a scenario may rely on what an earlier one stored (the changed records)."""
    first = dossiers[0][0]
    template = portal_record(dossiers[0])
    revisions = [
        {**first, "dossier_code": "REV-1", "event_id": "REV-1-r", "revision": number + 1}
        for number in range(1000)
    ]
    largest_batch = [event for events in dossiers for event in events][:1000]
    many = [_with_supplements(template, "SUP-MANY", 50, 3 + n) for n in range(20)]
    # A 2 MiB body of records each carrying the most supplement requests, for many dossiers; sent
    # once, then again with every supplement answered an hour later (each part a correction).
    wide = [_with_supplements(template, f"WIDE-{n:04d}", 50, 3) for n in range(419)]
    wide_changed = [_with_supplements(template, f"WIDE-{n:04d}", 50, 4) for n in range(419)]
    plain = [portal_record(events) for events in dossiers[1000:2000]]
    timeline = [{**first, "dossier_code": "LONG", "event_id": "LONG-received"}]
    received_at = datetime.fromisoformat(first["occurred_at"])
    for number in range(99):
        asked = received_at + timedelta(minutes=10 * number + 1)
        for kind, at in (
            ("supplement_requested", asked),
            ("supplement_received", asked + timedelta(minutes=5)),
        ):
            timeline.append(
                {
                    "event_id": f"LONG-{kind}-{number}",
                    "dossier_code": "LONG",
                    "type": kind,
                    "occurred_at": at.isoformat(),
                }
            )
    catalogue_rows = ("code\n" + "x\n" * 600_000).encode()
    return [
        Scenario(
            "batch: 1,000 revisions of one event", "POST", BATCH, json.dumps({"events": revisions}).encode()
        ),
        Scenario(
            "batch: 1,000 events of new dossiers",
            "POST",
            BATCH,
            json.dumps({"events": largest_batch}).encode(),
        ),
        Scenario(
            "batch: 199 events of one dossier", "POST", BATCH, json.dumps({"events": timeline}).encode()
        ),
        Scenario("records: 20 of one MaHoSo, 50 supplements each", "POST", SYNC, _sync_body(many)),
        Scenario("records: 419 × 50 supplements, new", "POST", SYNC, _sync_body(wide)),
        Scenario("records: the same 419, every supplement changed", "POST", SYNC, _sync_body(wide_changed)),
        Scenario("records: 1,000 plain records", "POST", SYNC, _sync_body(plain)),
        Scenario(
            "anonymous series, 10 years by month",
            "GET",
            "/api/v1/stats/dossiers/series?from=2015-01-01&to=2024-12-31&interval=month",
            anonymous=True,
        ),
        Scenario(
            "catalogue import, 600,000 lines", "POST", "/api/v1/procedures/import", catalogue_rows, "text/csv"
        ),
        Scenario(
            "batch nested 100,000 deep",
            "POST",
            BATCH,
            b'{"events": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        ),
        Scenario("dossier with 199 events", "GET", "/api/v1/dossiers/LONG"),
    ]


def measure(server: Server, key: str, scenario: Scenario) -> Cost:
    headers = {} if scenario.anonymous else {"Authorization": f"Bearer {key}"}
    if scenario.body is not None:
        headers["Content-Type"] = scenario.content_type
    with httpx.Client(base_url=server.url, timeout=600) as http:
        before = cpu_seconds(server)
        started = time.perf_counter()
        response = http.request(scenario.method, scenario.path, content=scenario.body, headers=headers)
        wall = time.perf_counter() - started
        after = cpu_seconds(server)
    status = str(response.status_code)
    if response.status_code == 200 and scenario.path in (BATCH, SYNC):
        outcomes: dict[str, int] = {}
        for result in response.json()["results"]:
            outcomes[result["status"]] = outcomes.get(result["status"], 0) + 1
        status += " " + ", ".join(f"{count} {name}" for name, count in sorted(outcomes.items()))
    return Cost(
        scenario.name,
        status,
        len(scenario.body or b""),
        wall,
        after["server"] - before["server"],
        after["postgres"] - before["postgres"],
    )


def run(database_url: str, dossier_count: int, report: Callable[[Cost], None]) -> list[Cost]:
    procedure_rows = dossier_data.procedures(300, 2023)
    dossiers = list(dossier_data.dossier_events(dossier_count, procedure_rows, 2023))
    fresh_database(database_url)
    key = make_key(
        database_url, "bench-portal", ["dossiers:write", "dossiers:read", "units:write", "catalogue:write"]
    )
    costs = []
    with serve(database_url) as server:
        setup(server.url, key, procedure_rows)
        for scenario in scenarios(dossiers):
            cost = measure(server, key, scenario)
            report(cost)
            costs.append(cost)
    return costs


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database-url", action="append", help=f"repeatable; default {DEFAULT_DATABASE}")
    parser.add_argument("--dossiers", type=int, default=2000, help="generated dossiers (at least 2000)")
    args = parser.parse_args()
    log(f"machine: {machine()}")
    tables = []
    for url in args.database_url or [DEFAULT_DATABASE]:
        backend = "PostgreSQL" if url.startswith("postgresql") else "SQLite"
        log(f"{backend}: {url}")

        def report(cost: Cost) -> None:
            log(f"  {cost.scenario}: {cost.status}, {cost.wall:.2f} s, server CPU {cost.server_cpu:.2f} s")

        costs = run(url, args.dossiers, report)
        rows = [
            f"| {c.scenario} | {c.body_bytes:,} | {c.status} | {c.wall:.2f} | {c.server_cpu:.2f} | "
            + (f"{c.postgres_cpu:.2f} |" if backend == "PostgreSQL" else "– |")
            for c in costs
        ]
        worst = max(costs, key=lambda c: c.server_cpu)
        tables.append(
            f"\n{backend}: the most CPU one request took is {worst.server_cpu:.2f} s ({worst.scenario}).\n\n"
            "| request | body bytes | answer | wall s | server CPU s | PostgreSQL CPU s |\n"
            "|---|---:|---|---:|---:|---:|\n" + "\n".join(rows)
        )
    print("\n".join(tables))


if __name__ == "__main__":
    main()
