"""The statistics endpoints: query parameters in, answers (app.stats.answers) out as JSON or CSV."""

import json
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel

from app.calendar.periods import Interval, Period, Scheme, series
from app.core.bounds import Day
from app.core.db import SessionDep
from app.core.downloads import (
    DISPOSITION_HEADER,
    HeaderLabels,
    LabelsQuery,
    content_disposition,
    download_name,
)
from app.core.errors import InvalidInput, problem_responses
from app.core.http_caching import etag_of, versioned_etag
from app.core.replicas import StandbyReads
from app.stats import answers, service
from app.stats.answers import Table
from app.stats.caching import known_answer, polled_answer
from app.stats.csv import CSV_MEDIA_TYPE, stats_csv
from app.stats.deps import AnswerVersions, DataETag, NowDep, PeriodDep, SchemeQuery, UnitQuery, VersionsDep
from app.stats.feedback import FEEDBACK_GROUPS
from app.stats.proposals import PROPOSAL_GROUPS
from app.stats.schemas import (
    DossierSeries,
    DossierStats,
    FeedbackStats,
    Format,
    Index766Scorecard,
    ProposalStats,
)

router = APIRouter(prefix="/stats", tags=["statistics"], route_class=StandbyReads)

_POLLED_HEADERS = {"ETag": {"schema": {"type": "string"}}, "Cache-Control": {"schema": {"type": "string"}}}
_CSV_OR_JSON: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The statistics; `Accept: text/csv` or `format=csv` for a spreadsheet",
        "headers": {**_POLLED_HEADERS, **DISPOSITION_HEADER},
        "content": {"text/csv": {"schema": {"type": "string"}}},
    },
    304: {"description": "Not Modified"},
}
_CSV_DESCRIPTION = (
    "JSON, or CSV with `format=csv` or `Accept: text/csv`: UTF-8 with a byte order mark, one header row "
    "(the field names; the Vietnamese terms of the reports with `labels=vi`), a row per group and a "
    "`TOTAL` row, saved as `tthc-stats-<table>-<unit>-<period>[-report].csv` (`Content-Disposition`)."
)
_JSON: dict[int | str, dict[str, Any]] = {
    200: {"description": "The statistics", "headers": _POLLED_HEADERS},
    304: {"description": "Not Modified"},
}


def _group_by(text: str | None, allowed: tuple[str, ...]) -> list[str]:
    names = [name.strip() for name in (text or "").split(",") if name.strip()]
    if any(name not in allowed for name in names) or len(set(names)) != len(names):
        raise InvalidInput.for_field(
            "query.group_by", f"group_by takes distinct values among {', '.join(allowed)}", "group_by"
        )
    return names


def _wants_csv(request: Request, format: Format | None) -> bool:
    if format is not None:
        return format == "csv"
    return "text/csv" in request.headers.get("accept", "")


def _csv_name(table: str, unit: str | None, chosen: Period) -> str:
    # The calendar scheme is the usual one: only the other is worth a word in the name.
    scheme = "" if chosen.scheme is Scheme.calendar else chosen.scheme.value
    return download_name("tthc-stats", table, unit or "", chosen.label, scheme, extension="csv")


async def _table_answer(
    request: Request,
    etag: str,
    table: Callable[[], Awaitable[Table]],
    format: Format | None,
    labels: HeaderLabels,
    filename: str,
) -> Response:
    """The table as JSON, or as CSV saved as ``filename`` when asked for, kept under its ETag; computed
    only when neither the client (304) nor the memory of answers has this version of it."""
    as_csv = _wants_csv(request, format)
    response = known_answer(request, etag)
    if response is None:
        computed = await table()
        stats = computed.stats()
        if as_csv:
            response = polled_answer(
                request, stats_csv(stats, computed.columns, labels), CSV_MEDIA_TYPE, etag
            )
        else:
            response = polled_answer(request, stats, "application/json", etag)
    if as_csv and response.status_code == 200:
        response.headers["Content-Disposition"] = content_disposition(filename)
    return response


def _computed_answer(request: Request, body: BaseModel, versions: AnswerVersions) -> Response:
    """An answer known only once computed: JSON as these answers have always been written
    (``json.dumps``' spacing, UTF-8 as is), tagged by its bytes and the generation of its data."""
    content = json.dumps(body.model_dump(mode="json"), ensure_ascii=False).encode()
    etag = versioned_etag(versions.generation, etag_of(content))
    return polled_answer(request, content, "application/json", etag, keep=False)


@router.get(
    "/dossiers",
    operation_id="get_dossier_stats",
    response_model=DossierStats,
    responses={**_CSV_OR_JSON, **problem_responses(404, 422)},
    summary="Dossier statistics for a unit and period (SPEC §5), in total and by group",
    description=_CSV_DESCRIPTION,
)
async def get_dossier_stats(
    session: SessionDep,
    request: Request,
    etag: DataETag,
    chosen: PeriodDep,
    now: NowDep,
    unit: UnitQuery = None,
    group_by: Annotated[
        str | None, Query(description="Comma-separated: `unit_level`, `unit`, `sector`, `procedure`")
    ] = None,
    format: Annotated[Format | None, Query(description="`csv` instead of JSON")] = None,
    labels: LabelsQuery = "names",
) -> Response:
    groups = _group_by(group_by, service.GROUPINGS)
    return await _table_answer(
        request,
        etag,
        lambda: answers.dossier_table(session, unit, chosen, groups, now),
        format,
        labels,
        _csv_name("dossiers", unit, chosen),
    )


@router.get(
    "/proposals",
    operation_id="get_proposal_stats",
    response_model=ProposalStats,
    responses={**_CSV_OR_JSON, **problem_responses(404, 422)},
    summary="Reform proposals submitted in a period: `count` and summed yearly `savings_vnd`",
    description=_CSV_DESCRIPTION,
)
async def get_proposal_stats(
    session: SessionDep,
    request: Request,
    etag: DataETag,
    chosen: PeriodDep,
    unit: UnitQuery = None,
    group_by: Annotated[
        str | None, Query(description="Comma-separated: `kind`, `level`, `sector`, `state`")
    ] = None,
    format: Annotated[Format | None, Query()] = None,
    labels: LabelsQuery = "names",
) -> Response:
    groups = _group_by(group_by, PROPOSAL_GROUPS)
    return await _table_answer(
        request,
        etag,
        lambda: answers.proposal_table(session, unit, chosen, groups),
        format,
        labels,
        _csv_name("proposals", unit, chosen),
    )


@router.get(
    "/feedback",
    operation_id="get_feedback_stats",
    response_model=FeedbackStats,
    responses={**_JSON, **problem_responses(404, 422)},
    summary="Feedback received, answered on time or late, open and overdue; and dossier satisfaction",
)
async def get_feedback_stats(
    session: SessionDep,
    request: Request,
    versions: VersionsDep,
    chosen: PeriodDep,
    now: NowDep,
    unit: UnitQuery = None,
    group_by: Annotated[str | None, Query(description="Comma-separated: `subject`, `channel`")] = None,
) -> Response:
    groups = _group_by(group_by, FEEDBACK_GROUPS)
    body = await answers.feedback_stats(session, unit, chosen, groups, now)
    return _computed_answer(request, body, versions)


@router.get(
    "/index-766",
    operation_id="get_index_766",
    response_model=Index766Scorecard,
    responses={**_JSON, **problem_responses(404, 422)},
    summary="The Decision 766 scorecard of a unit: each group's score, maximum, inputs and formula",
)
async def get_index_766(
    session: SessionDep,
    request: Request,
    versions: VersionsDep,
    chosen: PeriodDep,
    now: NowDep,
    unit: UnitQuery = None,
) -> Response:
    weights = request.app.state.settings.index_766
    body = await answers.index_766(session, unit, chosen, now, weights)
    return _computed_answer(request, body, versions)


@router.get(
    "/dossiers/series",
    operation_id="get_dossier_stats_series",
    response_model=DossierSeries,
    responses={**_JSON, **problem_responses(404, 422)},
    summary="The same counts month by month or quarter by quarter, for charts",
)
async def get_dossier_stats_series(
    session: SessionDep,
    request: Request,
    etag: DataETag,
    now: NowDep,
    first: Annotated[Day, Query(alias="from")],
    last: Annotated[Day, Query(alias="to")],
    unit: UnitQuery = None,
    interval: Interval = Interval.month,
    scheme: SchemeQuery = Scheme.calendar,
) -> Response:
    periods = series(first, last, interval, scheme)
    if (known := known_answer(request, etag)) is not None:
        return known
    body = await answers.dossier_series(session, unit, periods, interval, scheme, now)
    return polled_answer(request, body, "application/json", etag)
