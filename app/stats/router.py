"""The statistics endpoints: query parameters in, answers (app.stats.answers) out as JSON or CSV."""

import json
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel

from app.calendar.periods import Interval, Scheme, series
from app.core.bounds import Day
from app.core.db import SessionDep
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
from app.stats.schemas import DossierSeries, DossierStats, FeedbackStats, Format, Index766Scorecard

router = APIRouter(prefix="/api/v1/stats", tags=["statistics"], route_class=StandbyReads)

_POLLED_HEADERS = {"ETag": {"schema": {"type": "string"}}, "Cache-Control": {"schema": {"type": "string"}}}
_CSV_OR_JSON: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The statistics; `Accept: text/csv` or `format=csv` for a spreadsheet",
        "headers": _POLLED_HEADERS,
        "content": {"text/csv": {"schema": {"type": "string"}}},
    },
    304: {"description": "Not Modified"},
}
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


def _table(request: Request, table: Table, format: Format | None, etag: str) -> Response:
    """The table as JSON, or as CSV when asked for, kept under its ETag."""
    stats = table.stats()
    if _wants_csv(request, format):
        return polled_answer(request, stats_csv(stats, table.columns), CSV_MEDIA_TYPE, etag)
    return polled_answer(request, stats, "application/json", etag)


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
) -> Response:
    groups = _group_by(group_by, service.GROUPINGS)
    if (known := known_answer(request, etag)) is not None:
        return known
    return _table(request, await answers.dossier_table(session, unit, chosen, groups, now), format, etag)


@router.get(
    "/proposals",
    operation_id="get_proposal_stats",
    response_model=DossierStats,
    responses={**_CSV_OR_JSON, **problem_responses(404, 422)},
    summary="Reform proposals submitted in a period: `count` and summed yearly `savings_vnd`",
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
) -> Response:
    groups = _group_by(group_by, PROPOSAL_GROUPS)
    if (known := known_answer(request, etag)) is not None:
        return known
    return _table(request, await answers.proposal_table(session, unit, chosen, groups), format, etag)


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
    responses={304: {"description": "Not Modified"}, **problem_responses(404, 422)},
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
