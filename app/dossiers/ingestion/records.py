"""The national portal's DongBoHoSoMC records: each is mapped onto its dossier's history."""

import hashlib
import json
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import msgspec
from pydantic import TypeAdapter, ValidationError

from app.core.db import rows_of_each
from app.core.errors import (
    Conflict,
    DomainError,
    FieldError,
    InvalidInput,
    Problem,
    problem_of,
)
from app.core.hygiene import is_unicode_text
from app.core.timezone import local_day, utcnow
from app.dossiers.dvcqg import (
    RECORD_FIELDS,
    PortalRecord,
    RecordResult,
    end_of,
    event_prefix,
    history_parts,
    record_events,
)
from app.dossiers.history import HistoryEvent
from app.dossiers.ingestion.catalogue import Catalogue, load_catalogue
from app.dossiers.ingestion.decide import arriving_positions
from app.dossiers.ingestion.decoding import EventIn, canonical, decode_event, event_problems
from app.dossiers.ingestion.events import beyond_limit
from app.dossiers.ingestion.pipeline import load_stored, open_round, rounds, settle, with_retries
from app.dossiers.ingestion.work import (
    Answer,
    Arrival,
    Ingestion,
    Stored,
)
from app.dossiers.ingestion.writes import CounterSink
from app.dossiers.models import DossierEvent, Outcome
from app.dossiers.schemas import ResultStatus


async def ingest_records(ingestion: Ingestion, items: list[Any], sink: CounterSink) -> list[RecordResult]:
    """Each record is answered created, updated, unchanged or error; a record applies whole or not at
    all. The counters' difference goes to ``sink``, which must take back what a rolled-back attempt
    gave it: written in the transaction (a request's live counters, a bulk load's staged ones)."""
    return await with_retries(ingestion.session, lambda: _records_once(ingestion, items, sink))


async def _records_once(ingestion: Ingestion, items: list[Any], sink: CounterSink) -> list[RecordResult]:
    codes: list[str | None] = []
    records: list[tuple[int, PortalRecord]] = []
    answers: dict[int, Answer] = {}
    per_dossier: Counter[str] = Counter()
    parts_taken = 0
    for index, raw in enumerate(items):
        raw_code = raw.get("MaHoSo") if isinstance(raw, dict) else None
        codes.append(raw_code if isinstance(raw_code, str) and is_unicode_text(raw_code) else None)
        if (too_many := _too_many_supplements(raw)) is not None:
            answers[index] = Answer(ResultStatus.error, too_many)
            continue
        # Before the record is read: a record past the budget costs nothing.
        parts = history_parts(raw)
        if (over_budget := _beyond_budget(parts_taken, parts)) is not None:
            answers[index] = Answer(ResultStatus.error, over_budget)
            continue
        try:
            record = _RECORD.validate_python(raw)
        except ValidationError as exc:
            answers[index] = Answer(
                ResultStatus.error,
                InvalidInput(
                    "The record is invalid", errors=FieldError.from_pydantic(exc.errors(), whole="event")
                ),
            )
            continue
        if (
            too_many_records := beyond_limit(per_dossier, record.MaHoSo, MAX_SAME_DOSSIER, "MaHoSo")
        ) is not None:
            answers[index] = Answer(ResultStatus.error, too_many_records)
            continue
        parts_taken += parts
        per_dossier[record.MaHoSo] += 1
        records.append((index, record))
    for records_of_round in rounds(records, lambda item: item[1].MaHoSo):
        answers |= await _records_round(ingestion, records_of_round, sink)
    results = []
    for index, code in enumerate(codes):
        answer = answers[index]
        problem = _record_problem(answer.problem) if answer.problem is not None else None
        results.append(RecordResult(MaHoSo=code, status=answer.status, problem=problem))
    return results


_RECORD = TypeAdapter(PortalRecord)

MAX_SAME_DOSSIER = 20
"""Records of one request naming one ``MaHoSo``: each is a round of its own (locks, the dossier's
history replayed, a write), so they are bounded. A record is a dossier's whole state, so a sync
sends its latest, or the few states it queued; the 21st is that record's 422."""
MAX_SUPPLEMENTS = 50
"""Entries of one record's ``DanhSachHoSoBoSung``: each is two events of the dossier's history,
replayed whenever the record changes. Two requests already make a dossier late (SPEC §3); the 51st
is that record's 422, checked before the record is read."""


MAX_HISTORY_PARTS = 5000
"""The parts of dossier history (``history_parts``) the records of one request may carry in all.
Their cost is per part: the 2 MiB body of 419 records with 50 supplement requests each (43,576
parts) took 5.5 s of CPU on PostgreSQL and 7.8 s on SQLite when every part changed; within this
budget, 1.3 s and 1.1 s (docs/benchmarks.md, ``bench.request_cost``). 5,000 still takes the 1,000
records of the largest request when they carry no supplements; a record that would
pass it is that record's 422 (found before the record is read), and the records after it are judged
on what is left; a record refused for another reason takes nothing of it."""


def _beyond_budget(taken: int, parts: int) -> InvalidInput | None:
    if taken + parts <= MAX_HISTORY_PARTS:
        return None
    return InvalidInput.for_field(
        "DanhSachHoSoBoSung",
        f"The records of one request may carry at most {MAX_HISTORY_PARTS} parts of dossier history "
        f"(this one has {parts}, the records before it {taken}); send this record in another request",
        "request_budget",
    )


def _too_many_supplements(raw: Any) -> InvalidInput | None:
    supplements = raw.get("DanhSachHoSoBoSung") if isinstance(raw, dict) else None
    if not isinstance(supplements, list) or len(supplements) <= MAX_SUPPLEMENTS:
        return None
    return InvalidInput.for_field(
        "DanhSachHoSoBoSung",
        f"A record carries at most {MAX_SUPPLEMENTS} supplement requests (this one has {len(supplements)})",
        "too_long",
    )


# Where the event's fields come from in a record, to name the record's field in a problem.
_OCCURRED_AT = {
    "received": "NgayTiepNhan",
    "refused": "NgayTuChoi",
    "supplement_requested": "DanhSachHoSoBoSung",
    "supplement_received": "DanhSachHoSoBoSung",
    "processing": "NgayTiepNhan",
    "returned": "NgayTra",
}


def _record_problem(exc: DomainError) -> Problem:
    problem = problem_of(exc)
    if problem.errors:
        for error in problem.errors:
            error.field = RECORD_FIELDS.get(error.field, error.field)
    return problem


async def _records_round(
    ingestion: Ingestion, records: list[tuple[int, PortalRecord]], sink: CounterSink
) -> dict[int, Answer]:
    """One round through the pipeline: each record's parts compared with those an earlier record of
    this client stored, the differences its group of arrivals, which applies whole or not at all."""
    codes = sorted({record.MaHoSo for _, record in records})
    opened = await open_round(ingestion, codes)
    catalogue = await load_catalogue(
        ingestion.session,
        {r.MaTTHC for _, r in records if r.MaTTHC},
        {r.DonViXuLy for _, r in records if r.DonViXuLy},
    )
    histories = await load_stored(ingestion.session, codes)
    answers: dict[int, Answer] = {}
    changes: list[tuple[int, str, list[Arrival]]] = []
    positions = arriving_positions()
    for index, record in records:
        try:
            events = _record_as_events(catalogue, record)
        except InvalidInput as exc:
            answers[index] = Answer(ResultStatus.error, exc)
            continue
        arrivals = _record_changes(
            ingestion, record.MaHoSo, histories[record.MaHoSo], index, events, positions
        )
        if not arrivals:
            answers[index] = Answer(ResultStatus.unchanged)
            continue
        changes.append((index, record.MaHoSo, arrivals))
    taken = await _taken_elsewhere(
        ingestion, [a for _, _, arrivals in changes for a in arrivals if a.target is None]
    )
    by_dossier: dict[str, list[Arrival]] = defaultdict(list)
    for index, code, arrivals in changes:
        clash = next((a.event_id for a in arrivals if a.event_id in taken), None)
        if clash is not None:
            # Stored, the part would break the unique key of the client's event ids, and the
            # whole request would fail however often it was replayed.
            answers[index] = Answer(
                ResultStatus.error,
                Conflict(
                    f"The event id {clash!r} this record's part takes already names an event of "
                    f"dossier {taken[clash]!r} this client sent"
                ),
            )
            continue
        by_dossier[code] += arrivals
    applied = {index for index, code, _ in changes if index not in answers}
    dossiers = [opened.dossier(code, mine, stored=histories[code]) for code, mine in by_dossier.items()]
    context = opened.context(ingestion, catalogue, strict_groups=frozenset(applied))
    decided = await settle(ingestion, dossiers, context, sink)
    for index, code, _ in changes:
        if index in applied and decided[index].status is not ResultStatus.error:
            decided[index] = Answer(ResultStatus.updated if code in opened.states else ResultStatus.created)
    return answers | decided


_IDS_PER_QUERY = 5000


async def _taken_elsewhere(ingestion: Ingestion, arrivals: list[Arrival]) -> dict[str, str]:
    """Of the new parts' event ids, those the client already sent for another dossier (as events:
    a record's parts are named after its own dossier), with that dossier's code."""
    wanted = {a.event_id: a.dossier_code for a in arrivals}
    ids = sorted(wanted)
    taken: dict[str, str] = {}
    columns = [DossierEvent.event_id, DossierEvent.dossier_code]
    mine = DossierEvent.client_id == ingestion.principal.client_id
    for start in range(0, len(ids), _IDS_PER_QUERY):
        some = ids[start : start + _IDS_PER_QUERY]
        rows = await ingestion.session.execute(
            rows_of_each(ingestion.session, DossierEvent.event_id, some, columns, mine)
        )
        for event_id, dossier_code in rows:
            if dossier_code != wanted[event_id]:
                taken[event_id] = dossier_code
    return taken


def _record_as_events(catalogue: Catalogue, record: PortalRecord) -> list[EventIn]:
    """The record's parts as validated events; raises InvalidInput naming the record's field."""
    if record.TrangThaiHoSo != 1:
        if record.MaTTHC is not None and record.MaTTHC not in catalogue.versions:
            raise InvalidInput.for_field(
                "MaTTHC", f"Procedure {record.MaTTHC!r} does not exist", "unknown_reference"
            )
        if record.DonViXuLy is not None and record.DonViXuLy not in catalogue.units:
            raise InvalidInput.for_field(
                "DonViXuLy", f"Unit {record.DonViXuLy!r} does not exist", "unknown_reference"
            )

    def online_level_of(record: PortalRecord, at: datetime) -> str:
        assert record.MaTTHC is not None
        offered = catalogue.in_force(record.MaTTHC, local_day(at)).get("online_service")
        if offered not in ("partial", "full"):
            raise InvalidInput.for_field(
                "MucDo",
                f"An online dossier needs MucDo 3 or 4: procedure {record.MaTTHC!r} offers no online service",
                "missing",
            )
        return str(offered)

    now = utcnow()
    ended_by = end_of(record)[1]
    events = []
    for part in record_events(record, online_level_of):
        # An instant of the event comes from this field of the record (the end's, NgayTra when
        # a returned dossier's record does not name NgayKetThucXuLy).
        source = _OCCURRED_AT.get(str(part["type"]), ended_by)
        try:
            event = decode_event(part)
        except ValidationError as exc:
            errors = FieldError.from_pydantic(exc.errors(), whole="event")
            raise InvalidInput("The record is invalid", errors=_named(errors, source)) from exc
        problems = event_problems(event, now)
        if problems:
            raise InvalidInput("The record is invalid", errors=_named(problems, source))
        events.append(event)
    return events


def _named(errors: list[FieldError], source: str) -> list[FieldError]:
    for error in errors:
        if error.field == "occurred_at":
            error.field = source
    return errors


def _record_changes(
    ingestion: Ingestion,
    code: str,
    history: tuple[Stored, ...],
    group: int,
    events: list[EventIn],
    positions: Iterator[int],
) -> list[Arrival]:
    """What differs between the record's parts and those an earlier record of this client stored:
    new parts, parts changed (a higher revision) and parts no longer there (cancelled)."""
    client_id, secret_key = ingestion.principal.client_id, ingestion.secret_key
    prefix = event_prefix(code)
    mine = {s.event_id: s for s in history if s.client_id == client_id and s.event_id.startswith(prefix)}
    arrivals: list[Arrival] = []
    for event in events:
        stored = mine.pop(event.event_id, None)
        if stored is None:
            payload, digest = canonical(event, secret_key)
            arriving = HistoryEvent.from_canonical(next(positions), client_id, payload)
            arrivals.append(Arrival(group, event.event_id, code, arriving, payload, digest, 1))
            continue
        same = msgspec.structs.replace(event, revision=stored.revision if stored.revision > 1 else None)
        if canonical(same, secret_key)[1] == stored.payload_hash:
            continue
        revised = msgspec.structs.replace(event, revision=stored.revision + 1)
        payload, digest = canonical(revised, secret_key)
        arriving = HistoryEvent.from_canonical(stored.id, client_id, payload)
        arrivals.append(
            Arrival(
                group,
                event.event_id,
                code,
                arriving,
                payload,
                digest,
                stored.revision + 1,
                target=stored,
            )
        )
    for stored in mine.values():
        if stored.status == Outcome.cancelled:
            continue
        withdrawn = {**stored.payload, "revision": stored.revision + 1, "cancelled": True}
        payload = json.dumps(withdrawn, separators=(",", ":"), ensure_ascii=False)
        arrivals.append(
            Arrival(
                group,
                stored.event_id,
                code,
                stored.history_event(),
                payload,
                hashlib.sha256(payload.encode()).hexdigest(),
                stored.revision + 1,
                target=stored,
                cancelled=True,
            )
        )
    return arrivals
