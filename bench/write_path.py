"""The write path's Python, split: decode, decide, and the rules alone — per event, no database.

    python -m bench.write_path [--dossiers 20000] [--repeat 3]

On the reference province's dossiers (bench.dossier_data, one client, in order):

- **decode**: each line as the bulk import and the API read it — JSON, validation, the canonical
  form and its hash (``events.parse``);
- **decide**: each dossier's arrivals as the pipeline builds them from a staged line (the history
  event from the canonical payload) and ``decide.decide`` on a new dossier, its counter marks
  summed by day (what a bulk fold does between reading its chunk and COPYing it);
- **rules**: ``history.replay`` then ``facts_of`` and ``facts_marks`` only — the cost of SPEC §3–§5
  that any way in pays.

The best of ``--repeat`` runs of each, in µs per event. What the database adds is measured by
``bench.bulk_import`` (the same lines through ``tthc dossiers import``).
"""

import argparse
import json
import time
from datetime import date
from types import SimpleNamespace
from typing import Any

from app.calendar.working_time import WorkingCalendar
from app.core.timezone import utcnow
from app.dossiers.counters import add_day_marks
from app.dossiers.facts import facts_marks
from app.dossiers.history import HistoryEvent, facts_of, replay
from app.dossiers.ingestion.catalogue import Catalogue
from app.dossiers.ingestion.decide import Context, Dossier, Reach, arriving_positions, decide
from app.dossiers.ingestion.events import parse
from app.dossiers.ingestion.work import Arrival
from app.dossiers.ingestion.writes import DaySums
from bench import dossier_data
from bench.harness import log, machine

SECRET = "bench-secret"


def catalogue_of(procedures: list[dict[str, Any]]) -> Catalogue:
    """The province's catalogue in memory, as ``load_catalogue`` would read it."""
    versions: dict[str, list[tuple[date | None, dict[str, Any]]]] = {
        p["code"]: [
            (
                None,
                {
                    "levels": p["levels"],
                    "processing_time": p["processing_time"],
                    "status": "active",
                    "sector_code": p["sector_code"],
                    "online_service": p.get("online_service"),
                },
            )
        ]
        for p in procedures
    }
    units = {
        u["code"]: SimpleNamespace(
            code=u["code"],
            level=u["level"],
            valid_from=date.fromisoformat(u["valid_from"]) if u.get("valid_from") else None,
            valid_to=date.fromisoformat(u["valid_to"]) if u.get("valid_to") else None,
        )
        for u in dossier_data.units()
    }
    return Catalogue(versions, units)


def _best(run: Any, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - started)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dossiers", type=int, default=20_000)
    parser.add_argument("--procedures", type=int, default=300)
    parser.add_argument("--seed", type=int, default=2023)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    log(f"machine: {machine()}")
    procedures = dossier_data.procedures(args.procedures, args.seed)
    histories = list(dossier_data.dossier_events(args.dossiers, procedures, args.seed))
    lines = [json.dumps(event) for history in histories for event in history]
    events = len(lines)
    calendar = WorkingCalendar()
    context = Context(catalogue_of(procedures), Reach(1, None), calendar)
    parsed = parse([json.loads(line) for line in lines], SECRET, utcnow())
    assert not parsed.errors, parsed.errors
    by_dossier: dict[str, list[tuple[str, str, str, int]]] = {}
    for item in parsed.parsed:
        by_dossier.setdefault(item.event.dossier_code, []).append(
            (item.event.event_id, item.payload, item.digest, item.event.revision or 1)
        )

    def decode() -> None:
        parse([json.loads(line) for line in lines], SECRET, utcnow())

    def decide_all() -> None:
        sums = DaySums()
        marks: list[Any] = []
        positions = arriving_positions()
        for code, staged in by_dossier.items():
            arrivals = tuple(
                Arrival(
                    number,
                    event_id,
                    code,
                    HistoryEvent.from_canonical(next(positions), 1, payload),
                    payload,
                    digest,
                    revision,
                )
                for number, (event_id, payload, digest, revision) in enumerate(staged)
            )
            marks.extend(decide(Dossier(code, None, arrivals, stored=()), context).marks)
        add_day_marks(sums.sums, marks)

    history_events = {
        code: [
            HistoryEvent.from_canonical(position, 1, payload)
            for position, (_id, payload, _digest, _revision) in enumerate(staged, start=1)
        ]
        for code, staged in by_dossier.items()
    }

    def rules() -> None:
        for code, mine in history_events.items():
            replayed = replay(
                code,
                mine,
                reception_of=lambda e: context.catalogue.reception(
                    e.procedure_code or "", e.unit_code or "", e.occurred_at
                ),
                may_act=lambda e, unit: None,
                calendar=calendar,
            )
            if replayed.state is not None:
                facts_marks(facts_of(replayed.state, replayed.pauses), calendar)

    parts = (("decode", decode), ("decide", decide_all), ("rules", rules))
    figures = {name: _best(run, args.repeat) for name, run in parts}
    print(f"\nThe write path's Python, {len(by_dossier):,} dossiers, {events:,} events", end="")
    print(f" (best of {args.repeat}):\n")
    print("| part | seconds | µs per event | events/s on one core |")
    print("|---|---|---|---|")
    for name, seconds in figures.items():
        print(f"| {name} | {seconds:.2f} | {seconds / events * 1e6:.1f} | {events / seconds:,.0f} |")


if __name__ == "__main__":
    main()
