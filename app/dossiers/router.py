from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response, status

from app.calendar.deps import CalendarDep
from app.calendar.working_time import WorkingCalendar
from app.core.db import SessionDep
from app.core.errors import InvalidInput, problem_answer, problem_responses
from app.core.http_caching import TAGGED_READ, Route
from app.core.limits import pin_attempt
from app.core.links import API_PREFIX, CREATED_WITH_LOCATION, locate
from app.core.pagination import Page, PageDep
from app.core.replicas import AnonymousStandbyReads
from app.core.security import Principal
from app.core.timezone import utcnow
from app.dossiers import intake, service
from app.dossiers.deps import DossierListing, DossierWriter, ReadableDossier, ReadableUnits
from app.dossiers.dvcqg import MAX_RECORDS, SyncBody, SyncResult
from app.dossiers.ingestion.work import Ingestion
from app.dossiers.schemas import (
    MAX_BATCH,
    TIMELINE_SHOWN,
    BatchResult,
    DossierCode,
    DossierEventIn,
    DossierRead,
    DossierSummary,
    EventBatch,
    EventResult,
    PendingEvent,
    PublicDossier,
    ResultStatus,
    TimelineEntry,
)

events_router = APIRouter(prefix="/dossier-events", tags=["dossiers"], route_class=Route)
sync_router = APIRouter(prefix="/sync", tags=["dossiers"], route_class=Route)
dossiers_router = APIRouter(prefix="/dossiers", tags=["dossiers"], route_class=Route)
public_router = APIRouter(prefix="/public/dossiers", tags=["public"], route_class=AnonymousStandbyReads)

# Their items are answered one by one: a control character fails its item, not the request.
BATCH_PATHS = frozenset({f"{API_PREFIX}/dossier-events/batch", f"{API_PREFIX}/sync/dvcqg"})


_STATUS_CODES = {
    ResultStatus.created: 201,
    ResultStatus.updated: 200,
    ResultStatus.pending: 202,
    ResultStatus.duplicate: 200,
}


def _ingestion(
    session: SessionDep, writer: Principal, calendar: WorkingCalendar, request: Request
) -> Ingestion:
    return Ingestion(session, writer, calendar, request.app.state.settings.secret_key)


async def _ingest(
    session: SessionDep, writer: Principal, calendar: WorkingCalendar, request: Request, items: list[Any]
) -> list[EventResult]:
    ingestion = _ingestion(session, writer, calendar, request)
    results, counts = await intake.take_events(ingestion, items, request.state.request_id)
    for result_status, number in counts.items():
        request.app.state.metrics.events.labels(result_status).inc(number)
    return results


@events_router.post(
    "",
    operation_id="ingest_dossier_event",
    status_code=status.HTTP_201_CREATED,
    response_model=EventResult,
    responses={
        **CREATED_WITH_LOCATION,
        200: {"model": EventResult, "description": "A correction (`updated`), or a resend: nothing changed"},
        202: {"model": EventResult, "description": "Kept, waiting for its dossier's reception (`pending`)"},
        **problem_responses(403, 409, 422),
    },
    summary="Push one dossier event (tiếp nhận, bổ sung, trả kết quả …)",
)
async def ingest_dossier_event(
    session: SessionDep, writer: DossierWriter, calendar: CalendarDep, event: DossierEventIn, request: Request
) -> Response:
    (result,) = await _ingest(session, writer, calendar, request, [event])
    if result.status is ResultStatus.error:
        assert result.problem is not None
        # The event is the request's body here: its fields are named as the request's own.
        return problem_answer(result.problem.located("body"))
    response = Response(
        result.model_dump_json(exclude_none=True),
        status_code=_STATUS_CODES[result.status],
        media_type="application/json",
    )
    if result.status is ResultStatus.created:
        # An event has no URL of its own: it is read in its dossier's timeline, from the dossier.
        locate(request, response, "get_dossier", code=event.dossier_code)
    return response


@events_router.post(
    "/batch",
    operation_id="ingest_dossier_events",
    response_model=BatchResult,
    responses=problem_responses(422),
    summary=f"Push up to {MAX_BATCH} dossier events, in any order",
    description="Events take their place in each dossier's history by `occurred_at`, whatever order "
    "they arrive in. Each is answered `created`, `updated` (a correction), `pending` (kept until its "
    "dossier's reception arrives), `duplicate` (a resend; nothing changes) or `error` with its "
    "problem; a bad event does not stop the others and stores nothing.",
)
async def ingest_dossier_events(
    session: SessionDep, writer: DossierWriter, calendar: CalendarDep, batch: EventBatch, request: Request
) -> BatchResult:
    return BatchResult(results=await _ingest(session, writer, calendar, request, batch.events))


@sync_router.post(
    "/dvcqg",
    operation_id="sync_dvcqg_records",
    response_model=SyncResult,
    responses=problem_responses(422),
    summary=f"Sync up to {MAX_RECORDS} dossier states as the national portal takes them (DongBoHoSoMC)",
    description="The body one-stop systems send the national public-service portal. Each record is a "
    "dossier's whole state; it is mapped onto the dossier's history (reception, supplement pauses, "
    "finish, return, refusal), so a record sent again with a later state replaces the earlier one. "
    "Each record is answered `created`, `updated`, `unchanged` or `error` (nothing of it applied).",
)
async def sync_dvcqg_records(
    session: SessionDep, writer: DossierWriter, calendar: CalendarDep, body: SyncBody, request: Request
) -> SyncResult:
    ingestion = _ingestion(session, writer, calendar, request)
    return SyncResult(results=await intake.take_records(ingestion, body.data, request.state.request_id))


@events_router.get(
    "",
    operation_id="list_dossier_events",
    response_model=Page[PendingEvent],
    responses=problem_responses(422),
    summary="Events kept but not applied yet (pending), oldest first, with their age",
)
async def list_dossier_events(
    session: SessionDep,
    units: ReadableUnits,
    page: PageDep,
    pending: Annotated[
        bool,
        Query(description="Only `true` is supported: events waiting for their reception or a missing event"),
    ],
) -> Page[PendingEvent]:
    if not pending:
        raise InvalidInput.for_field("query.pending", "Only pending=true is supported", "unsupported")
    return (await service.waiting_events(session, units, page)).page(lambda item: item)


@dossiers_router.get(
    "",
    operation_id="list_dossiers",
    response_model=Page[DossierSummary],
    responses=problem_responses(422),
    summary="List dossiers: by unit subtree, procedure, status, reception dates, overdue or due soon",
)
async def list_dossiers(session: SessionDep, listing: DossierListing, page: PageDep) -> Page[DossierSummary]:
    window = await service.list_dossiers(session, listing.filters, listing.units, page)
    now = utcnow()
    return window.page(lambda dossier: DossierSummary.model_validate(service.summary(dossier, now)))


@dossiers_router.get(
    "/{code}",
    operation_id="get_dossier",
    response_model=DossierRead,
    responses={**TAGGED_READ, **problem_responses(404)},
    summary="A dossier with its status, due date, classification and the start of its timeline",
)
async def get_dossier(session: SessionDep, dossier: ReadableDossier, request: Request) -> DossierRead:
    timeline_path = request.url_for("list_dossier_timeline", code=dossier.code).path
    return await service.dossier_with_timeline(session, dossier, timeline_path)


@dossiers_router.get(
    "/{code}/timeline",
    operation_id="list_dossier_timeline",
    response_model=Page[TimelineEntry],
    responses=problem_responses(404, 422),
    summary="A dossier's stored events in time order, page by page, each with its latest corrections",
    description=f"The dossier's `timeline` goes on here: its first {TIMELINE_SHOWN} events come with "
    "`GET /dossiers/{code}`, whose `timeline_next_cursor` is this list's `cursor`.",
)
async def list_dossier_timeline(
    session: SessionDep, dossier: ReadableDossier, page: PageDep
) -> Page[TimelineEntry]:
    return (await service.timeline(session, dossier.code, page)).page(lambda entry: entry)


@public_router.get(
    "/{code}",
    operation_id="lookup_dossier",
    response_model=PublicDossier,
    responses=problem_responses(404, 422, 429),
    summary="Citizen look-up with the PIN from the receipt (tra cứu hồ sơ)",
    description="A wrong PIN and an unknown code give the same 404. Rate-limited per address.",
)
async def lookup_dossier(
    session: SessionDep,
    request: Request,
    code: DossierCode,
    secret: Annotated[str, Query(min_length=1, max_length=64, description="The PIN on the receipt")],
) -> PublicDossier:
    async with pin_attempt(request, code):
        return await service.public_lookup(session, request.app.state.settings.secret_key, code, secret)
