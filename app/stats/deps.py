"""Request dependencies the statistics and the reports share: the unit, the period, the instant open
dossiers are judged at, and the ETag of the data an answer depends on."""

from datetime import datetime
from typing import Annotated

from fastapi import Depends, Query, Request

from app.calendar.periods import Period, Scheme, choose_period
from app.core.bounds import Day
from app.core.data_version import versions_of
from app.core.db import SessionDep
from app.core.http_caching import etag_from
from app.stats import service
from app.units.access import provinces_of

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
