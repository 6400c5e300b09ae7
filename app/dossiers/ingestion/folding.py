"""Fold: staged events of a bulk load (app.dossiers.bulk) turned into dossiers, whole dossier at a time.

A file's valid events are staged first; then each range of dossier codes is folded in one
transaction. A dossier the database has never seen (no row, no stored event) is worked with all
of its file's events at once, in memory — the arrivals of one request on an empty dossier, so the
fast path or the replay decides as it would for the API (app.dossiers.history: the outcome does
not depend on the order of arrival) — and written set-based, its counter increments summed by day
for the merge that ends the file (app.dossiers.counters.merge_staged_counters). A dossier the
database already knows, or whose file lines resend or cancel an event, goes through the API's own
ingestion with its raw lines in file order, where resends and corrections are decided.
"""

import json
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Table

from app.core.db import held_values, plan_with_values
from app.core.errors import Problem, problem_of
from app.dossiers.history import HistoryEvent
from app.dossiers.ingestion.catalogue import load_catalogue
from app.dossiers.ingestion.decide import arriving_positions
from app.dossiers.ingestion.events import ingest_in_transaction, ingest_lines
from app.dossiers.ingestion.locks import lock_dossiers
from app.dossiers.ingestion.pipeline import open_round, settle
from app.dossiers.ingestion.work import Arrival, Ingestion
from app.dossiers.ingestion.writes import CounterSink
from app.dossiers.models import Dossier, DossierEvent, ImportStagedEvent
from app.dossiers.schemas import ResultStatus

LineResult = tuple[ResultStatus, Problem | None]
"""A line's status (as the API answers it: app.dossiers.schemas.ResultStatus) and its problem."""
_STAGED: Table = ImportStagedEvent.__table__  # type: ignore[assignment]
# Core columns, not ORM attributes: a fold reads every staged line once, as plain rows.
_FIELDS = ("line", "dossier_code", "event_id", "revision", "cancelled", "raw", "payload", "payload_hash")
STAGED_COLUMNS = [_STAGED.c[name] for name in _FIELDS]


@dataclass(frozen=True)
class StagedLine:
    line: int
    dossier_code: str
    event_id: str
    revision: int
    cancelled: bool
    raw: str
    payload: str
    payload_hash: str

    @classmethod
    def of(cls, row: Any) -> "StagedLine":
        return cls(*row)


async def fold(ingestion: Ingestion, lines: Sequence[StagedLine], sink: CounterSink) -> dict[int, LineResult]:
    """Each line's result; ``lines`` are whole dossiers, in code order. The new dossiers' counter
    increments go to ``sink`` (the others' counters are written). Raises IntegrityError when
    a concurrent writer or an event id already stored elsewhere stands in the way: the caller rolls
    back and calls ``through_api`` for the same lines."""
    by_dossier: dict[str, list[StagedLine]] = defaultdict(list)
    for line in lines:
        by_dossier[line.dossier_code].append(line)
    codes = list(by_dossier)
    await lock_dossiers(ingestion.session, codes)
    known = await _known(ingestion, codes)
    repeated = {event_id for event_id, count in Counter(line.event_id for line in lines).items() if count > 1}
    fresh: list[str] = []
    others: list[StagedLine] = []
    for code, mine in by_dossier.items():
        if code in known or any(line.cancelled or line.event_id in repeated for line in mine):
            others.extend(mine)
        else:
            fresh.append(code)
    results = await _fold_fresh(ingestion, {code: by_dossier[code] for code in fresh}, sink)
    if others:
        others.sort(key=lambda line: line.line)
        results |= await _through(ingestion, others, retrying=False)
    return results


async def through_api(ingestion: Ingestion, lines: Sequence[StagedLine]) -> dict[int, LineResult]:
    """Every line through the API's ingestion, in file order."""
    return await _through(ingestion, sorted(lines, key=lambda line: line.line), retrying=True)


async def _through(ingestion: Ingestion, lines: list[StagedLine], *, retrying: bool) -> dict[int, LineResult]:
    items = [json.loads(line.raw) for line in lines]
    if retrying:
        # Replaying itself after a lost race (its transaction holds nothing else).
        from_api = await ingest_lines(ingestion, items)
    else:
        from_api = await ingest_in_transaction(ingestion, items)
    return {line.line: (result.status, result.problem) for line, result in zip(lines, from_api, strict=True)}


async def _known(ingestion: Ingestion, codes: list[str]) -> set[str]:
    """The codes the database has a dossier or a stored event for. Looked up by the codes
    themselves, not as a range: a grouped file's chunk is in code-point order, which a column's
    collation need not share (in en_US, 'a0' sorts before 'B1'), and a range would miss codes.
    Each code is one probe of an index (``held_values``), so the look-up costs the same in a table
    of a thousand events and of millions, whether or not it has been analyzed."""
    session = ingestion.session
    await plan_with_values(session)
    found: set[str] = set()
    for start in range(0, len(codes), _CODES_PER_QUERY):
        some = codes[start : start + _CODES_PER_QUERY]
        found |= await held_values(session, Dossier.code, some)
        found |= await held_values(session, DossierEvent.dossier_code, some)
    return found


_CODES_PER_QUERY = 5000
"""Bound values per look-up, well within SQLite's limit, however large the chunk."""


async def _fold_fresh(
    ingestion: Ingestion, dossiers: dict[str, list[StagedLine]], sink: CounterSink
) -> dict[int, LineResult]:
    """Dossiers the database has never seen, each with all its lines at once: the arrivals of one
    request on an empty dossier (locked and known to be new, so nothing stored is loaded)."""
    if not dossiers:
        return {}
    client_id = ingestion.principal.client_id
    positions = arriving_positions()
    procedures: set[str] = set()
    units: set[str] = set()
    arrivals: dict[str, list[Arrival]] = {}
    for code, lines in dossiers.items():
        mine = arrivals[code] = []
        for line in lines:
            event = HistoryEvent.from_canonical(next(positions), client_id, line.payload)
            procedures.add(event.procedure_code or "")
            units.add(event.unit_code or "")
            mine.append(
                Arrival(line.line, line.event_id, code, event, line.payload, line.payload_hash, line.revision)
            )
    opened = await open_round(ingestion, [], lock=False)
    catalogue = await load_catalogue(ingestion.session, procedures - {""}, units - {""})
    fresh = [opened.dossier(code, mine, stored=()) for code, mine in arrivals.items()]
    answers = await settle(ingestion, fresh, opened.context(ingestion, catalogue), sink)
    return {
        line: (answer.status, problem_of(answer.problem) if answer.problem is not None else None)
        for line, answer in answers.items()
    }
