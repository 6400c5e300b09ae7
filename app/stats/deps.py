"""Request dependencies the statistics and the reports share: the unit, the period, the instant open
dossiers are judged at, and the ETag of the data an answer depends on."""

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from fastapi import Depends, Query, Request

from app.calendar.periods import Period, Scheme, choose_period
from app.core.bounds import Day
from app.core.data_version import versions_of
from app.core.db import SessionDep
from app.core.http_caching import newest_generation_seen, versioned_etag
from app.core.replicas import reads_standby, use_primary
from app.stats import service
from app.stats.calendar_in_force import CalendarGuard
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


@dataclass(frozen=True)
class AnswerVersions:
    """The versions of the data an answer depends on: global, and its unit's province (all: none)."""

    versions: list[tuple[str, int]]

    @property
    def generation(self) -> int:
        """Their sum: versions only grow, and every standby replays the same history, so between any
        two states of the database the newer has the larger sum for the same answer."""
        return sum(version for _scope, version in self.versions)


async def answer_versions(session: SessionDep, request: Request, unit: UnitQuery = None) -> AnswerVersions:
    """The versions this answer depends on, read before anything else of the answer.

    On a standby behind what the client has already been shown (the generation of a tag in its
    ``If-None-Match``, given by another standby or the primary), the request reads the primary
    instead: a poller never sees the data go back in time as its requests move between servers.
    """
    guard: CalendarGuard = request.app.state.calendar_guard
    await guard.ensure()  # figures on the calendar in force (SPEC §3), if start could not see to it
    provinces = await provinces_of(session, [unit]) if unit is not None else None
    versions = AnswerVersions(await versions_of(session, provinces))
    if reads_standby(session) and versions.generation < newest_generation_seen(request):
        await use_primary(session)
        provinces = await provinces_of(session, [unit]) if unit is not None else None
        versions = AnswerVersions(await versions_of(session, provinces))
    return versions


VersionsDep = Annotated[AnswerVersions, Depends(answer_versions)]


async def data_etag(request: Request, versions: VersionsDep, chosen: PeriodDep, now: NowDep) -> str:
    """The tag of this statistics answer, known before computing it.

    The versions of the data it depends on (global, and its unit's province: app.core.data_version),
    the code's version and the request (path, query, CSV or JSON) determine the body — and, for a
    period still running, the minute it is judged at (SPEC §5: E′ = min(E, now)), so a poller gets
    the new count once a due date has passed. The versions are read before any statistics, so a
    write committed in between can only make the tag older, never newer than the body.
    """
    return versioned_etag(
        versions.generation,
        versions.versions,
        request.app.version,
        request.app.state.migration_head,
        request.url.path,
        request.url.query,
        "text/csv" in request.headers.get("accept", ""),
        service.as_of(chosen, now).isoformat(),
    )


DataETag = Annotated[str, Depends(data_etag)]
