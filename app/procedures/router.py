import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Header, Query, Request, Response, status
from fastapi.responses import StreamingResponse
from starlette.types import Message, Send

from app.clients.deps import require
from app.core.bounds import Day
from app.core.db import SessionDep
from app.core.downloads import DISPOSITION_HEADER, LabelsQuery, content_disposition, download_name
from app.core.errors import Forbidden, problem_responses
from app.core.http_caching import TAGGED_CREATED, TAGGED_READ, TAGGED_WRITE, require_match
from app.core.links import locate
from app.core.pagination import Page, PageDep
from app.core.replicas import AnonymousStandbyReads
from app.core.security import Principal, Scope
from app.core.timezone import today_in_vietnam
from app.procedures import exchange, importing, search, service, uploads
from app.procedures.deps import ProcedureDep, SectorDep
from app.procedures.schemas import (
    ImportResult,
    ProcedureCreate,
    ProcedureRead,
    ProcedureUpdate,
    ProcedureVersionRead,
    SectorCreate,
    SectorRead,
    SectorUpdate,
)

sectors_router = APIRouter(prefix="/sectors", tags=["catalogue"], route_class=AnonymousStandbyReads)
procedures_router = APIRouter(prefix="/procedures", tags=["catalogue"], route_class=AnonymousStandbyReads)

logger = logging.getLogger("tthc.procedures")


async def _national_writer(writer: Annotated[Principal, require(Scope.catalogue_write)]) -> Principal:
    """The catalogue is national (SPEC §7): a client bound to a unit may not change it for the country."""
    if writer.unit_code is not None:
        raise Forbidden(
            f"The catalogue is national: this client is bound to unit {writer.unit_code} and cannot change it"
        )
    return writer


CatalogueWriter = Annotated[Principal, Depends(_national_writer)]
JSON_LD = "application/ld+json"
# A procedure is answered as JSON or, asked for, as JSON-LD: caches keep each under its own tag.
_NEGOTIATED = {"Vary": "Accept"}


# --- sectors ---------------------------------------------------------------------------------


@sectors_router.post(
    "",
    operation_id="create_sector",
    status_code=status.HTTP_201_CREATED,
    response_model=SectorRead,
    responses={**TAGGED_CREATED, **problem_responses(400, 409, 422)},
    summary="Create a sector (lĩnh vực)",
)
async def create_sector(
    session: SessionDep, writer: CatalogueWriter, data: SectorCreate, request: Request, response: Response
) -> SectorRead:
    sector = await service.create_sector(session, data, writer)
    locate(request, response, "get_sector", code=sector.code)
    return SectorRead.model_validate(sector)


@sectors_router.get(
    "",
    operation_id="list_sectors",
    response_model=Page[SectorRead],
    responses=problem_responses(422),
    summary="List sectors",
)
async def list_sectors(session: SessionDep, page: PageDep) -> Page[SectorRead]:
    return (await service.list_sectors(session, page)).page(SectorRead.model_validate)


@sectors_router.get(
    "/{code}",
    operation_id="get_sector",
    response_model=SectorRead,
    responses={**TAGGED_READ, **problem_responses(404)},
    summary="Get a sector",
)
async def get_sector(sector: SectorDep) -> SectorRead:
    return SectorRead.model_validate(sector)


@sectors_router.patch(
    "/{code}",
    operation_id="update_sector",
    response_model=SectorRead,
    responses={**TAGGED_WRITE, **problem_responses(404, 412, 422)},
    summary="Rename a sector",
)
async def update_sector(
    session: SessionDep,
    writer: CatalogueWriter,
    sector: SectorDep,
    data: SectorUpdate,
    if_match: Annotated[str | None, Header()] = None,
) -> SectorRead:
    require_match(if_match, SectorRead.model_validate(sector))
    await service.update_sector(session, sector, data, writer)
    return SectorRead.model_validate(sector)


# --- procedures ------------------------------------------------------------------------------


async def procedure_filters(filters: Annotated[search.ProcedureFilters, Query()]) -> search.ProcedureFilters:
    """The filters of the query string. Taken through a dependency so that the API description
    keeps listing them after the page parameters and after an operation's own parameters."""
    return filters


FiltersDep = Annotated[search.ProcedureFilters, Depends(procedure_filters)]


@procedures_router.post(
    "",
    operation_id="create_procedure",
    status_code=status.HTTP_201_CREATED,
    response_model=ProcedureRead,
    responses={**TAGGED_CREATED, **problem_responses(400, 409, 422)},
    summary="Add a procedure (thủ tục hành chính) to the catalogue",
)
async def create_procedure(
    session: SessionDep, writer: CatalogueWriter, data: ProcedureCreate, request: Request, response: Response
) -> ProcedureRead:
    procedure = await service.create_procedure(session, data, writer)
    locate(request, response, "get_procedure", code=procedure.code)
    return service.to_read(procedure)


@procedures_router.get(
    "",
    operation_id="list_procedures",
    response_model=Page[ProcedureRead],
    responses=problem_responses(422),
    summary="Search and filter the catalogue",
    description="With `q`, results are ranked: exact code, then names starting with the words, "
    "then names containing them, then codes starting with `q`.",
)
async def list_procedures(
    session: SessionDep, page: PageDep, filters: FiltersDep, response: Response
) -> Response:
    window = await search.list_procedures(session, filters, page)
    # The hot path of every citizen app: stored JSON is spliced in rather than re-validated. As
    # `Page[ProcedureRead]`, like the other lists, a page of 500 took 21–28 ms to serialise instead
    # of 3.5, and the route 1.5–3 times as long, over a catalogue of 10,000 procedures (issue 32).
    body = (
        '{"items":['
        + ",".join(item.json() for item in window.items)
        + '],"next_cursor":'
        + json.dumps(window.next_cursor)
        + "}"
    )
    # Answered with a Response of its own: the headers set on the injected one (the next page's
    # Link) go with it by hand.
    return Response(body.encode(), media_type="application/json", headers=response.headers)


@procedures_router.get(
    "/export",
    operation_id="export_procedures",
    responses={
        200: {
            "description": "The catalogue, streamed",
            "headers": DISPOSITION_HEADER,
            "content": {
                "text/csv": {"schema": {"type": "string"}},
                "application/json": {
                    "schema": {"type": "array", "items": {"$ref": "#/components/schemas/ProcedureCreate"}}
                },
            },
        },
        **problem_responses(422),
    },
    response_class=StreamingResponse,
    summary="Export the (filtered) catalogue as CSV (UTF-8 with BOM, for Excel) or JSON",
    description="CSV has one header row: the column names the import reads, or their Vietnamese terms "
    "with `labels=vi` (which the import reads too). Saved as `tthc-procedures-<day>.csv` or `.json`.",
)
async def export_procedures(
    request: Request,
    filters: FiltersDep,
    format: Literal["csv", "json"] = "csv",
    labels: LabelsQuery = "names",
) -> StreamingResponse:
    chunks = search.chunks_apart(request.app.state.sessionmaker, filters)
    # Read before the answer starts, so that a database out of reach is a 503 problem, not a cut.
    first = await anext(chunks, None)
    send_timeout: float = request.app.state.settings.export_send_timeout
    headers = {
        "Content-Disposition": content_disposition(
            download_name("tthc-procedures", today_in_vietnam().isoformat(), extension=format)
        )
    }
    if format == "csv":
        return PacedStreamingResponse(
            exchange.csv_stream(_starting_with(first, chunks), labels),
            send_timeout=send_timeout,
            media_type="text/csv; charset=utf-8",
            headers=headers,
        )
    return PacedStreamingResponse(
        exchange.json_stream(_starting_with(first, chunks)),
        send_timeout=send_timeout,
        media_type="application/json",
        headers=headers,
    )


async def _starting_with(
    first: list[ProcedureRead] | None, rest: AsyncIterator[list[ProcedureRead]]
) -> AsyncIterator[list[ProcedureRead]]:
    if first is None:
        return
    yield first
    async for chunk in rest:
        yield chunk


# Each piece is due within TTHC_EXPORT_SEND_TIMEOUT: with the default 30 s, a client that keeps
# reading 8 KB a second or more is never cut.
_PIECE = 64 * 1024


class _ClientStoppedReading(Exception):
    pass


class PacedStreamingResponse(StreamingResponse):
    """A streamed answer sent in pieces of at most 64 KiB, each of which the client must take
    within ``send_timeout`` seconds; a client that stops reading is cut off.

    Cut off means the connection is closed before the end of the body (the server logs that the
    answer was not completed): the client sees a truncated transfer, never a file that looks
    whole.
    """

    def __init__(
        self,
        content: AsyncIterator[bytes],
        *,
        send_timeout: float,
        media_type: str,
        headers: dict[str, str],
    ) -> None:
        super().__init__(_pieces(content), media_type=media_type, headers=headers)
        self.send_timeout = send_timeout

    async def stream_response(self, send: Send) -> None:
        async def bounded(message: Message) -> None:
            try:
                async with asyncio.timeout(self.send_timeout):
                    await send(message)
            except TimeoutError as exc:
                raise _ClientStoppedReading from exc

        try:
            await super().stream_response(bounded)
        except _ClientStoppedReading:
            logger.warning("streamed answer cut: the client took nothing for %s s", self.send_timeout)


async def _pieces(content: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    async for block in content:
        for start in range(0, len(block), _PIECE):
            yield block[start : start + _PIECE]


_IMPORT_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {"type": "array", "items": {"$ref": "#/components/schemas/ProcedureCreate"}}
            },
            "text/csv": {"schema": {"type": "string"}},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {"file": {"type": "string", "format": "binary"}},
                    "required": ["file"],
                }
            },
        },
    }
}


@procedures_router.post(
    "/import",
    operation_id="import_procedures",
    response_model=ImportResult,
    responses=problem_responses(415, 422),
    openapi_extra=_IMPORT_BODY,
    summary="Import procedures from a JSON array or a CSV file: all rows or none",
    description=f"At most {importing.MAX_IMPORT_ROWS} rows. Every row is validated first; if any is "
    "invalid, nothing changes and the 422 problem lists each bad row and field. New codes are "
    "created; existing ones get a new version in force from today when a field differs.",
)
async def import_procedures(session: SessionDep, writer: CatalogueWriter, request: Request) -> ImportResult:
    rows = await uploads.uploaded_rows(request)
    return await importing.import_procedures(session, rows, writer)


@procedures_router.get(
    "/{code}",
    operation_id="get_procedure",
    response_model=ProcedureRead,
    responses={
        **TAGGED_READ,
        200: {
            **TAGGED_READ[200],
            "content": {JSON_LD: {"schema": {"type": "object", "description": "CPSV-AP PublicService"}}},
        },
        **problem_responses(404),
    },
    summary="Get a procedure: its latest version, or the one in force on a date",
    description="`Accept: application/ld+json` gives the procedure as a CPSV-AP `PublicService`.",
)
async def get_procedure(
    session: SessionDep,
    procedure: ProcedureDep,
    request: Request,
    response: Response,
    as_of: Annotated[Day | None, Query(description="The version in force on this day")] = None,
) -> ProcedureRead | Response:
    found = await service.procedure_as_of(session, procedure, as_of) if as_of else service.to_read(procedure)
    if JSON_LD in request.headers.get("accept", ""):
        sector_name = await service.sector_name(session, found.sector_code)
        document = exchange.to_cpsv(found, sector_name, str(request.base_url))
        body = json.dumps(document, ensure_ascii=False).encode()
        return Response(body, media_type=JSON_LD, headers=_NEGOTIATED)
    response.headers.update(_NEGOTIATED)
    return found


@procedures_router.patch(
    "/{code}",
    operation_id="update_procedure",
    response_model=ProcedureRead,
    responses={**TAGGED_WRITE, **problem_responses(404, 412, 422, 428)},
    summary="Change a procedure, making a new version (needs If-Match)",
)
async def update_procedure(
    session: SessionDep,
    writer: CatalogueWriter,
    procedure: ProcedureDep,
    patch: ProcedureUpdate,
    response: Response,
    if_match: Annotated[str | None, Header(description="ETag of the version you read; required")] = None,
) -> ProcedureRead:
    require_match(if_match, service.to_read(procedure), required=True)
    await service.update_procedure(session, procedure, patch, writer)
    response.headers.update(_NEGOTIATED)
    return service.to_read(procedure)


@procedures_router.get(
    "/{code}/history",
    operation_id="list_procedure_versions",
    response_model=Page[ProcedureVersionRead],
    responses=problem_responses(404, 422),
    summary="The versions of a procedure, newest first: who changed what, and from when it applies",
)
async def list_procedure_versions(
    session: SessionDep, procedure: ProcedureDep, page: PageDep
) -> Page[ProcedureVersionRead]:
    return (await service.history(session, procedure, page)).page(ProcedureVersionRead.model_validate)
