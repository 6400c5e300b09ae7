"""The heaviest statements of live ingestion, explained on databases of different sizes.

    python -m bench.explain_ingest [--sizes 10000,10000000] [--dossiers 1000] [--output docs/profiles]

On the databases `bench.scale` built (``<bench database>_<size>``): the statements one batch of
``--dossiers`` new dossiers (received, resolved) makes — the counter upsert (its day sums rolled up into
day, month and year rows per procedure and per unit), the look-up of the batch's event ids, the load of its
dossiers' states — each under ``EXPLAIN (ANALYZE, BUFFERS)`` in a transaction rolled back, so
the database is left as it was. Shared buffers are warmed by running each statement once first.
"""

import argparse
import asyncio
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg

from app.dossiers.counters import ADD_DAY_SUMS, COUNTERS, add_day_marks
from bench import dossier_data
from bench.harness import DEFAULT_DATABASE, log
from bench.scale import CLIENT, database_of_size

_EVENT_IDS = "SELECT id, event_id FROM dossier_events WHERE client_id = $1 AND event_id = ANY($2::text[])"
_STATES = "SELECT * FROM dossiers WHERE code = ANY($1::text[])"


def _batch(dossiers: int, seed: int) -> tuple[list[list[Any]], list[str], list[str]]:
    """The counter upsert's columns, event ids and dossier codes of one batch of new dossiers."""
    procedure_rows = dossier_data.procedures(300, seed)
    sectors = {row["code"]: row["sector_code"] for row in procedure_rows}
    marks = []
    event_ids, codes = [], []
    for events in dossier_data.dossier_events(dossiers, procedure_rows, seed + 1):
        received = events[0]
        unit, procedure = received["unit_code"], received["procedure_code"]
        codes.append(received["dossier_code"])
        event_ids += [event["event_id"] for event in events]
        at = datetime.fromisoformat(received["occurred_at"])
        marks.append((unit, sectors[procedure], procedure, ("received_direct", at, 1)))
        ended = datetime.fromisoformat(events[-1]["occurred_at"])
        marks.append((unit, sectors[procedure], procedure, ("ended_direct", ended, 1)))
        marks.append((unit, sectors[procedure], procedure, ("finished_on_time", ended, 1)))
    sums: dict[Any, list[int]] = {}
    add_day_marks(sums, marks)
    keys, increments = zip(*sums.items(), strict=True)
    columns = [list(column) for column in (*zip(*keys, strict=True), *zip(*increments, strict=True))]
    assert len(columns) == 4 + len(COUNTERS)
    return columns, event_ids, codes


async def _explain(url: str, batch: tuple[list[list[Any]], list[str], list[str]]) -> str:
    columns, event_ids, codes = batch
    connection = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
    try:
        client_id = await connection.fetchval("SELECT id FROM api_clients WHERE name = $1", CLIENT)
        report = []
        for title, statement, arguments in (
            (f"counter upsert ({len(columns[0]):,} day sums, rolled up)", ADD_DAY_SUMS, columns),
            (f"event ids sent before ({len(event_ids):,})", _EVENT_IDS, [client_id, event_ids]),
            (f"dossier states ({len(codes):,})", _STATES, [codes]),
        ):
            for _run in ("warm", "measured"):
                transaction = connection.transaction()
                await transaction.start()
                try:
                    plan = await connection.fetch(f"EXPLAIN (ANALYZE, BUFFERS) {statement}", *arguments)
                finally:
                    await transaction.rollback()
            # The batch's values, inlined by the plan, cut short.
            lines = (row[0] if len(row[0]) <= 160 else row[0][:160] + " …" for row in plan)
            report.append(f"-- {title}\n" + "\n".join(lines))
        return "\n\n".join(report)
    finally:
        await connection.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database-url", default=DEFAULT_DATABASE)
    parser.add_argument("--sizes", default="10000,10000000")
    parser.add_argument("--dossiers", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=2023)
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()
    batch = _batch(args.dossiers, args.seed)
    for size in [int(s) for s in args.sizes.split(",")]:
        log(f"{size:,} past dossiers")
        text = asyncio.run(_explain(database_of_size(args.database_url, size), batch))
        print(f"\n## {size:,} past dossiers\n\n{text}")
        if args.output:
            args.output.mkdir(parents=True, exist_ok=True)
            (args.output / f"explain-ingest-{size}.txt").write_text(
                f"EXPLAIN (ANALYZE, BUFFERS), {size:,} past dossiers, a batch of {args.dossiers:,} "
                f"new dossiers (python -m bench.explain_ingest)\n\n{text}\n"
            )


if __name__ == "__main__":
    main()
