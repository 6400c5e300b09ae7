"""The events endpoint: parse the request, then rounds of batches (one event id per round)."""

from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.db import rows_of_each
from app.core.errors import (
    DomainError,
    FieldError,
    InvalidInput,
    problem_of,
)
from app.core.hygiene import is_unicode_text
from app.core.security import Principal
from app.core.timezone import utcnow
from app.dossiers.history import HistoryEvent
from app.dossiers.ingestion.catalogue import load_catalogue
from app.dossiers.ingestion.decide import arriving_positions
from app.dossiers.ingestion.decoding import EventIn, canonical, decode_event, event_problems
from app.dossiers.ingestion.pipeline import open_round, rounds, settle, with_retries
from app.dossiers.ingestion.work import (
    STORED_COLUMNS,
    Answer,
    Arrival,
    Ingestion,
    Stored,
)
from app.dossiers.ingestion.writes import LiveCounters
from app.dossiers.models import DossierEvent
from app.dossiers.schemas import EventResult, ResultStatus


@dataclass(frozen=True)
class Parsed:
    """An event of the request that passed validation, with its canonical form."""

    index: int
    """Its position in the request."""
    event: EventIn
    payload: str
    digest: str


@dataclass
class ParsedRequest:
    """The request's events after parsing: what each item's id was, which parsed, which failed."""

    event_ids: list[str | None] = field(default_factory=list)
    parsed: list[Parsed] = field(default_factory=list)
    errors: dict[int, DomainError] = field(default_factory=dict)


async def ingest(ingestion: Ingestion, items: list[Any]) -> list[EventResult]:
    """Each event is answered created, updated, pending, duplicate or error; errors store nothing."""
    return await with_retries(ingestion.session, lambda: _ingest_once(ingestion, items))


async def ingest_lines(ingestion: Ingestion, items: list[Any]) -> list[EventResult]:
    """As ``ingest``, for the lines of a file (app.dossiers.bulk), in file order: their work is
    bounded by the file's chunk, not by a request's limits (``_refuse_beyond_limits``), which
    would refuse a dossier's 201st line there although the API takes it in another request."""
    return await with_retries(ingestion.session, lambda: _judged(ingestion, _parsed_now(ingestion, items)))


async def ingest_in_transaction(ingestion: Ingestion, items: list[Any]) -> list[EventResult]:
    """As ``ingest_lines``, without the replay after a lost race: for a caller whose transaction
    holds other writes too (the bulk fold); the IntegrityError is then the caller's to handle."""
    return await _judged(ingestion, _parsed_now(ingestion, items))


async def _ingest_once(ingestion: Ingestion, items: list[Any]) -> list[EventResult]:
    request = _parsed_now(ingestion, items)
    _refuse_beyond_limits(request)
    return await _judged(ingestion, request)


def _parsed_now(ingestion: Ingestion, items: list[Any]) -> ParsedRequest:
    return parse(items, ingestion.secret_key, utcnow())


async def _judged(ingestion: Ingestion, request: ParsedRequest) -> list[EventResult]:
    answers: dict[int, Answer] = {}
    to_judge = request.parsed
    for _ in range(JUDGEMENTS):
        judged = rounds(to_judge, _event_id)
        for round_items in judged:
            answers |= await _ingest_round(ingestion, round_items)
        to_judge = judged_again(judged, answers)
        if not to_judge:
            break
    return results(request, answers)


JUDGEMENTS = 4
"""A request is judged at most this many times over (an item judged again may be a correction
that frees another): enough for any chain of corrections a sync pipeline sends in one request."""


def _event_id(item: Parsed) -> str:
    return item.event.event_id


def judged_again(judged: list[list[Parsed]], answers: dict[int, Answer]) -> list[Parsed]:
    """The items refused by their place in a dossier's history (409) whose dossier a later round of
    the request corrected or cancelled an event of: the refusal may have come from the event the
    correction moved or removed, and the outcome must not depend on how the events were batched
    (SPEC §4). They are judged again, after the whole request's corrections."""
    corrected_after: dict[str, int] = {}
    for number, round_items in enumerate(judged):
        for item in round_items:
            if answers[item.index].status is ResultStatus.updated:
                corrected_after[item.event.dossier_code] = number
    again: list[Parsed] = []
    for number, round_items in enumerate(judged):
        for item in round_items:
            answer = answers[item.index]
            if (
                answer.problem is not None
                and answer.problem.status == 409
                and corrected_after.get(item.event.dossier_code, -1) > number
            ):
                again.append(item)
    again.sort(key=lambda item: item.index)
    return again


MAX_SAME_EVENT_ID = 50
"""Items of one request that share an ``event_id`` (revisions): each is taken in a round of its own
(locks, its dossier replayed, a write), so they are bounded. A sync pipeline sends an event's latest
revision, or a few it queued; the 51st is that item's 422."""
MAX_SAME_DOSSIER = 200
"""Items of one request naming one ``dossier_code``: a dossier's whole history with 50 supplement
requests (the most a portal record may carry) is about 105 events; the 201st is that item's 422."""


def _refuse_beyond_limits(request: ParsedRequest) -> None:
    """The items past ``MAX_SAME_EVENT_ID`` of one event id, or past ``MAX_SAME_DOSSIER`` of one dossier,
    in the order sent, are each their own 422; the others are judged as usual (SPEC §4)."""
    per_event: Counter[str] = Counter()
    per_dossier: Counter[str] = Counter()
    kept: list[Parsed] = []
    for item in request.parsed:
        event_id, code = item.event.event_id, item.event.dossier_code
        problem = beyond_limit(per_event, event_id, MAX_SAME_EVENT_ID, "event_id") or beyond_limit(
            per_dossier, code, MAX_SAME_DOSSIER, "dossier_code"
        )
        if problem is not None:
            request.errors[item.index] = problem
            continue
        per_event[event_id] += 1
        per_dossier[code] += 1
        kept.append(item)
    request.parsed = kept


def beyond_limit(seen: Counter[str], key: str, limit: int, field: str) -> InvalidInput | None:
    """The 422 of an item when ``limit`` items of its request already named ``key`` in ``field``
    (each is a round of its own: the work of one request is bounded)."""
    if seen[key] < limit:
        return None
    return InvalidInput.for_field(
        field,
        f"At most {limit} items of one request may name the same {field}; send the others in another request",
        "too_many_in_request",
    )


def parse(items: list[Any], secret_key: str, now: datetime) -> ParsedRequest:
    """Validate each item on its own: a bad one is answered with its problem, the others go on."""
    request = ParsedRequest()
    for index, raw in enumerate(items):
        raw_id = raw.get("event_id") if isinstance(raw, dict) else getattr(raw, "event_id", None)
        request.event_ids.append(raw_id if isinstance(raw_id, str) and is_unicode_text(raw_id) else None)
        try:
            event = decode_event(raw)
        except ValidationError as exc:
            request.errors[index] = InvalidInput(
                "The event is invalid", errors=FieldError.from_pydantic(exc.errors(), whole="event")
            )
            continue
        problems = event_problems(event, now)
        if problems:
            request.errors[index] = InvalidInput("The event is invalid", errors=problems)
            continue
        request.parsed.append(Parsed(index, event, *canonical(event, secret_key)))
    return request


def results(request: ParsedRequest, answers: dict[int, Answer]) -> list[EventResult]:
    """One result per item of the request, in its order."""
    found: list[EventResult] = []
    for index, event_id in enumerate(request.event_ids):
        problem = request.errors.get(index) or answers[index].problem
        status = ResultStatus.error if index in request.errors else answers[index].status
        found.append(
            EventResult(event_id=event_id, status=status, problem=problem_of(problem) if problem else None)
        )
    return found


async def _ingest_round(ingestion: Ingestion, parsed: list[Parsed]) -> dict[int, Answer]:
    """One round through the pipeline: each event a resend of one this client sent before, or new."""
    opened = await open_round(ingestion, sorted({item.event.dossier_code for item in parsed}))
    known = await _sent_before(
        ingestion.session, ingestion.principal, {item.event.event_id for item in parsed}
    )
    catalogue = await load_catalogue(
        ingestion.session,
        {item.event.procedure_code for item in parsed if item.event.procedure_code},
        {item.event.unit_code for item in parsed if item.event.unit_code},
    )
    answers: dict[int, Answer] = {}
    arrivals: dict[str, list[Arrival]] = defaultdict(list)
    positions = arriving_positions()
    for item in parsed:
        stored = known.get(item.event.event_id)
        arrival = (
            _resent(ingestion, item, stored) if stored is not None else _arrived(ingestion, item, positions)
        )
        if isinstance(arrival, Answer):
            answers[item.index] = arrival
        else:
            arrivals[arrival.dossier_code].append(arrival)
    dossiers = [opened.dossier(code, mine) for code, mine in arrivals.items()]
    return answers | await settle(ingestion, dossiers, opened.context(ingestion, catalogue), LiveCounters())


def _resent(ingestion: Ingestion, item: Parsed, stored: Stored) -> Arrival | Answer:
    """An event id this client sent before: a resend, an older revision, or a correction."""
    event, revision = item.event, item.event.revision or 1
    if item.digest == stored.payload_hash or revision < stored.revision:
        return Answer(ResultStatus.duplicate)
    if revision == stored.revision:
        reused = InvalidInput.for_field(
            "event_id", "This event_id was already used for a different event", "event_id_reused"
        )
        return Answer(ResultStatus.error, reused)
    if stored.dossier_code != event.dossier_code:
        moved = InvalidInput.for_field(
            "dossier_code", "A correction cannot move an event to another dossier", "immutable"
        )
        return Answer(ResultStatus.error, moved)
    return Arrival(
        item.index,
        event.event_id,
        event.dossier_code,
        HistoryEvent.from_canonical(stored.id, ingestion.principal.client_id, item.payload),
        item.payload,
        item.digest,
        revision,
        target=stored,
        cancelled=bool(event.cancelled),
    )


def _arrived(ingestion: Ingestion, item: Parsed, positions: Iterator[int]) -> Arrival:
    """An event id new to this client."""
    event = item.event
    arriving = HistoryEvent.from_canonical(next(positions), ingestion.principal.client_id, item.payload)
    return Arrival(
        item.index,
        event.event_id,
        event.dossier_code,
        arriving,
        item.payload,
        item.digest,
        event.revision or 1,
        cancelled=bool(event.cancelled),
    )


async def _sent_before(session: AsyncSession, principal: Principal, event_ids: set[str]) -> dict[str, Stored]:
    if not event_ids:
        return {}
    mine = DossierEvent.client_id == principal.client_id
    rows = await session.execute(
        rows_of_each(session, DossierEvent.event_id, event_ids, STORED_COLUMNS, mine)
    )
    known: dict[str, Stored] = {}
    for row in rows:
        known[row.event_id] = Stored.of(row)
    return known
