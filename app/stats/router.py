import csv
import io
import json
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response

from app.core.bounds import Day
from app.core.data_version import versions_of
from app.core.db import SessionDep
from app.core.errors import InvalidInput, problem_responses
from app.core.export import safe_row
from app.core.http_caching import AnswerCache, cached_json, etag_from, not_modified
from app.stats import service
from app.stats.definitions import COUNT_NAMES, RATE_NAMES, VIETNAMESE, percentage, rates
from app.stats.periods import Interval, Period, Scheme, choose_period, series
from app.stats.schemas import (
    DossierSeries,
    DossierStats,
    Format,
    PeriodRead,
    SeriesPoint,
    StatsRow,
    StatsTotal,
)
from app.units.access import provinces_of

router = APIRouter(prefix="/api/v1/stats", tags=["statistics"])

# Polled by dashboards and portals: let caches keep an answer briefly, then revalidate by ETag.
CACHE_CONTROL = "public, max-age=60, must-revalidate"
CSV_MEDIA_TYPE = "text/csv; charset=utf-8"
_CSV_OR_JSON: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The statistics; `Accept: text/csv` or `format=csv` for a spreadsheet",
        "headers": {"ETag": {"schema": {"type": "string"}}, "Cache-Control": {"schema": {"type": "string"}}},
        "content": {"text/csv": {"schema": {"type": "string"}}},
    },
    304: {"description": "Not Modified"},
}

UnitQuery = Annotated[
    str | None, Query(max_length=32, description="This unit and its descendants; all when absent")
]
SchemeQuery = Annotated[
    Scheme, Query(description="`report`: months run from the 15th to the 14th (Decree 09/2019)")
]


async def period_query(
    period: Annotated[str | None, Query(description="`2023`, `2023-H1`, `2023-Q3` or `2023-07`")] = None,
    first: Annotated[Day | None, Query(alias="from", description="First day (instead of `period`)")] = None,
    last: Annotated[Day | None, Query(alias="to", description="Last day, included")] = None,
    scheme: SchemeQuery = Scheme.calendar,
) -> Period:
    return choose_period(period, first, last, scheme)


PeriodDep = Annotated[Period, Depends(period_query)]


async def judging_instant(request: Request) -> datetime:
    """Now, to the minute (from the app's clock, which tests set): a running period's open
    dossiers are judged at E′ = min(E, this instant), and its answers change once a minute."""
    now: datetime = request.app.state.clock()
    return now.replace(second=0, microsecond=0)


NowDep = Annotated[datetime, Depends(judging_instant)]


async def data_etag(
    session: SessionDep, request: Request, chosen: PeriodDep, now: NowDep, unit: UnitQuery = None
) -> str:
    """The tag of this statistics answer, known before computing it.

    The versions of the data it depends on (global, and its unit's province: app.core.data_version),
    the code's version and the request (path, query, CSV or JSON) determine the body — and, for a
    period still running, the minute it is judged at (SPEC §5: E′ = min(E, now)), so a poller gets
    the new count once a due date has passed. The versions are read before any statistics, so a
    write committed in between can only make the tag older, never newer than the body.
    """
    provinces = await provinces_of(session, [unit]) if unit is not None else None
    return etag_from(
        await versions_of(session, provinces),
        request.app.version,
        request.app.state.migration_head,
        request.url.path,
        request.url.query,
        "text/csv" in request.headers.get("accept", ""),
        service.as_of(chosen, now).isoformat(),
    )


DataETag = Annotated[str, Depends(data_etag)]


def _group_by(text: str | None, allowed: tuple[str, ...]) -> list[str]:
    names = [name.strip() for name in (text or "").split(",") if name.strip()]
    if any(name not in allowed for name in names) or len(set(names)) != len(names):
        raise InvalidInput.for_field(
            "query.group_by", f"group_by takes distinct values among {', '.join(allowed)}", "group_by"
        )
    return names


def _answer(
    request: Request,
    format: Format | None,
    unit: str | None,
    period: PeriodRead,
    groups: list[str],
    rows: dict[Any, dict[str, int]],
    total: dict[str, int],
    count_names: tuple[str, ...] = COUNT_NAMES,
    rate_names: tuple[str, ...] = RATE_NAMES,
    etag: str | None = None,
) -> Response:
    """The statistics body (or its CSV) with the polling headers; rates only where there are some."""

    def rates_of(counts: dict[str, int]) -> dict[str, float | None]:
        return rates(counts) if rate_names else {}

    stats = DossierStats(
        unit=unit,
        period=period,
        group_by=groups,
        # Without group_by there is only the total.
        rows=[
            StatsRow(key=dict(key), counts=counts, rates=rates_of(counts))
            for key, counts in rows.items()
            if key
        ],
        total=StatsTotal(counts=total, rates=rates_of(total)),
    )
    if _wants_csv(request, format):
        return _polled(request, _csv(stats, count_names, rate_names), CSV_MEDIA_TYPE, etag)
    return _polled(request, stats, "application/json", etag)


def _wants_csv(request: Request, format: Format | None) -> bool:
    if format is not None:
        return format == "csv"
    return "text/csv" in request.headers.get("accept", "")


def _csv(
    stats: DossierStats, count_names: tuple[str, ...] = COUNT_NAMES, rate_names: tuple[str, ...] = RATE_NAMES
) -> bytes:
    """One row per group and a total row; English headers, then the Vietnamese terms."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    rate_headers = [f"{name}_rate" if name == "online" else name for name in rate_names]
    writer.writerow(["period", "scheme", *stats.group_by, *count_names, *rate_headers])
    vietnamese_keys = {
        "unit_level": "Cấp",
        "unit": "Đơn vị",
        "sector": "Lĩnh vực",
        "procedure": "Thủ tục",
        "kind": "Loại phương án",
        "level": "Cấp thực hiện",
        "state": "Trạng thái",
    }
    writer.writerow(
        ["Kỳ báo cáo", "Cách tính kỳ", *(vietnamese_keys[g] for g in stats.group_by)]
        + [VIETNAMESE[name] for name in (*count_names, *rate_headers)]
    )
    lines = [(row.key, row.counts, row.rates) for row in stats.rows]
    # Keys name units, sectors and procedures: text a spreadsheet must not run (app.core.export).
    lines.append(({name: "TOTAL" for name in stats.group_by}, stats.total.counts, stats.total.rates))
    for key, counts, row_rates in lines:
        writer.writerow(
            safe_row(
                [stats.period.label, stats.period.scheme.value, *(key.get(g, "") for g in stats.group_by)]
                + [counts[name] for name in count_names]
                + ["" if row_rates[name] is None else f"{row_rates[name]:.2f}" for name in rate_names]
            )
        )
    return ("\ufeff" + buffer.getvalue()).encode()


def _polled(
    request: Request, body: DossierStats | DossierSeries | bytes, media_type: str, etag: str | None = None
) -> Response:
    content = body if isinstance(body, bytes) else body.model_dump_json().encode()
    response = cached_json(request, content, media_type=media_type, vary="Accept", etag=etag)
    response.headers["Cache-Control"] = CACHE_CONTROL
    cache: AnswerCache | None = request.app.state.stats_cache
    if etag is not None and cache is not None:
        cache[etag] = (content, media_type)
    return response


def _known(request: Request, etag: str) -> Response | None:
    """Answer from what is already known of this data version: a 304, or the answer kept in memory."""
    headers = {"Vary": "Accept", "Cache-Control": CACHE_CONTROL}
    counter = request.app.state.metrics.stats_cache
    if (unchanged := not_modified(request, etag, headers)) is not None:
        counter.labels("not_modified").inc()
        return unchanged
    cache: AnswerCache | None = request.app.state.stats_cache
    if cache is not None and (answer := cache.get(etag)) is not None:
        counter.labels("hit").inc()
        content, media_type = answer
        return Response(content, media_type=media_type, headers={**headers, "ETag": etag})
    counter.labels("miss").inc()
    return None


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
    if (known := _known(request, etag)) is not None:
        return known
    units = await service.unit_scope(session, unit)
    rows, total = await service.period_counts(session, units, chosen, groups, now)
    return _answer(request, format, unit, PeriodRead.of(chosen, now), groups, rows, total, etag=etag)


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
    from app.proposals.service import PROPOSAL_GROUPS, proposal_counts

    groups = _group_by(group_by, PROPOSAL_GROUPS)
    if (known := _known(request, etag)) is not None:
        return known
    units = await service.unit_scope(session, unit)
    rows, total = await proposal_counts(session, set(units), chosen, groups)
    return _answer(
        request,
        format,
        unit,
        PeriodRead.of(chosen),
        groups,
        rows,
        total,
        ("count", "savings_vnd"),
        (),
        etag=etag,
    )


@router.get(
    "/feedback",
    operation_id="get_feedback_stats",
    responses={**_CSV_OR_JSON, **problem_responses(404, 422)},
    summary="Feedback received, answered on time or late, open and overdue; and dossier satisfaction",
)
async def get_feedback_stats(
    session: SessionDep,
    request: Request,
    chosen: PeriodDep,
    now: NowDep,
    unit: UnitQuery = None,
    group_by: Annotated[str | None, Query(description="Comma-separated: `subject`, `channel`")] = None,
) -> Response:
    from app.feedback.service import FEEDBACK_GROUPS, SATISFIED, feedback_counts, satisfaction_counts

    groups = _group_by(group_by, FEEDBACK_GROUPS)
    units = set(await service.unit_scope(session, unit))
    rows, total = await feedback_counts(session, units, chosen, groups)
    ratings = await satisfaction_counts(session, units, chosen)
    satisfied = sum(ratings["by_level"][level] for level in SATISFIED)
    body = {
        "unit": unit,
        "period": PeriodRead.of(chosen, now).model_dump(mode="json"),
        "group_by": groups,
        "rows": [{"key": dict(key), "counts": counts} for key, counts in rows.items() if key],
        "total": {"counts": total},
        "satisfaction": {**ratings, "satisfied_share": percentage(satisfied, ratings["ratings"])},
    }
    return _polled(request, json.dumps(body, ensure_ascii=False).encode(), "application/json")


@router.get(
    "/index-766",
    operation_id="get_index_766",
    responses={**_CSV_OR_JSON, **problem_responses(404, 422)},
    summary="The Decision 766 scorecard of a unit: each group's score, maximum, inputs and formula",
)
async def get_index_766(
    session: SessionDep,
    request: Request,
    chosen: PeriodDep,
    now: NowDep,
    unit: UnitQuery = None,
) -> Response:
    from app.feedback.service import index_inputs
    from app.stats.index766 import scorecard

    units = await service.unit_scope(session, unit)
    _rows, total = await service.period_counts(session, units, chosen, [], now)
    inputs = await index_inputs(session, set(units), chosen, total)
    settings = request.app.state.settings.index_766
    groups = scorecard(inputs, settings)
    computable = [g for g in groups if g["computable"]]
    body = {
        "unit": unit,
        "period": PeriodRead.of(chosen, now).model_dump(mode="json"),
        "groups": groups,
        "total": {
            "score": round(sum(g["score"] for g in computable), 2),
            "max_computable": sum(g["max"] for g in computable),
            "max": sum(g["max"] for g in groups),
        },
    }
    return _polled(request, json.dumps(body, ensure_ascii=False).encode(), "application/json")


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
    if (known := _known(request, etag)) is not None:
        return known
    units = await service.unit_scope(session, unit)
    points = []
    for period in periods:
        _rows, total = await service.period_counts(session, units, period, [], now)
        points.append(SeriesPoint(period=PeriodRead.of(period, now), counts=total, rates=rates(total)))
    body = DossierSeries(unit=unit, interval=interval, scheme=scheme, points=points)
    return _polled(request, body, "application/json", etag)
