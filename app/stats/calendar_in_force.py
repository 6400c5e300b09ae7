"""The figures follow the calendar in force (SPEC §3), and the rules of this version.

The calendar the stored due dates, deadlines and counters were computed on is kept beside them
(``calendar_in_force``). ``follow_calendar`` compares it with the calendar of the settings; when they
differ, the dossiers the change can touch are replayed on the new calendar, the feedback deadlines
counted again, the counters rebuilt and the data versions moved, in one transaction with the new
description. It runs before statistics are served: at start, or — when the database could not be
read then — before the first statistics answer (``CalendarGuard``), on a connection without the
requests' command timeout. Workers starting together: one does it, the others find it done.

The first start with the table also replays the dossiers that hold a supplement request kept
pending because the dossier already waited: such a request counts since this version (SPEC §3).
"""

import asyncio
import logging
import time as clock
from datetime import datetime, time, timedelta

from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from app.calendar.working_time import (
    CalendarChange,
    WorkingCalendar,
    calendar_change,
    calendar_description,
    calendar_fingerprint,
)
from app.core.config import Settings
from app.core.data_version import bump_version
from app.core.db import create_engine, create_sessionmaker, load_for_update
from app.core.errors import DomainError
from app.core.timezone import VIETNAM
from app.dossiers.counters import rebuild_counters
from app.dossiers.ingestion.work import Ingestion
from app.dossiers.models import CalendarInForce
from app.dossiers.recalendar import (
    NOBODY,
    hold_dossiers,
    replay_dossiers,
    touched_dossiers,
    waiting_further_requests,
)
from app.feedback.service import recount_deadlines

logger = logging.getLogger("tthc.calendar")

_ROW = 1
RETRY_AFTER = 30
"""Seconds before statistics try again after the calendar could not be followed."""


class CalendarNotFollowed(DomainError):
    status = 503
    slug = "calendar-change"


class CalendarGuard:
    """Follows the calendar once per process: at start, or, when the database could not be read
    then (not reachable, not migrated yet), before the first statistics answer; after a failure,
    statistics answer 503 for ``RETRY_AFTER`` seconds before it is tried again."""

    def __init__(self, settings: Settings, calendar: WorkingCalendar) -> None:
        self.settings, self.calendar = settings, calendar
        self.followed = False
        self.failed_at: float | None = None
        self._lock = asyncio.Lock()

    async def ensure(self) -> None:
        if self.followed:
            return
        async with self._lock:
            if self.followed:
                return
            if self.failed_at is not None and clock.monotonic() - self.failed_at < RETRY_AFTER:
                raise CalendarNotFollowed(
                    "The figures are being brought onto the working calendar in force; retry shortly",
                    headers={"Retry-After": str(RETRY_AFTER)},
                )
            try:
                await follow_calendar(self.settings, self.calendar)
            except Exception:
                self.failed_at = clock.monotonic()
                raise
            self.followed = True

    async def at_start(self) -> None:
        try:
            await self.ensure()
        except (SQLAlchemyError, OSError) as exc:
            logger.warning(
                "the calendar in force could not be checked at start (%s); statistics check it again "
                "before they answer",
                exc.__class__.__name__,
            )


async def follow_calendar(settings: Settings, calendar: WorkingCalendar) -> int | None:
    """Bring the stored figures onto ``calendar``; the number of dossiers replayed, or None when
    nothing was to do. Minutes on a large database: its statements run without a command timeout."""
    engine = create_engine(settings.model_copy(update={"database_command_timeout": None}))
    try:
        for _attempt in range(2):
            try:
                async with create_sessionmaker(engine)() as session, session.begin():
                    return await _follow(session, calendar, settings.secret_key)
            except IntegrityError:
                # Two workers recorded the first calendar at once: the other one's row stands.
                continue
        return None
    finally:
        await engine.dispose()


async def _follow(session: AsyncSession, calendar: WorkingCalendar, secret_key: str) -> int | None:
    description = calendar_description(calendar)
    fingerprint = calendar_fingerprint(description)
    stored = await load_for_update(session, CalendarInForce, _ROW)
    ingestion = Ingestion(session, NOBODY, calendar, secret_key)
    if stored is None:
        # The first start with this table: the figures were computed on the calendar of the settings.
        session.add(CalendarInForce(id=_ROW, fingerprint=fingerprint, description=description))
        await hold_dossiers(session)
        codes = await waiting_further_requests(session)
        if codes:
            logger.warning(
                "%d dossiers hold a further supplement request: replayed (it counts now)", len(codes)
            )
            await replay_dossiers(ingestion, codes, calendar_changed=False, progress=_replayed)
        return len(codes) or None
    if stored.fingerprint == fingerprint:
        return None
    change = calendar_change(stored.description, description)
    logger.warning(
        "the working calendar changed since the figures were computed (%s): recomputing due dates, "
        "deadlines and counters before statistics are served",
        "working hours or official holidays" if change.everywhere else f"days {change.first}..{change.last}",
    )
    await hold_dossiers(session)
    codes = await touched_dossiers(session, change)
    await replay_dossiers(ingestion, codes, calendar_changed=True, progress=_replayed)
    deadlines = await recount_deadlines(session, calendar, _received_before(change))
    await rebuild_counters(session, calendar, _rebuilt)
    stored.fingerprint, stored.description = fingerprint, description
    await bump_version(session)
    logger.warning(
        "calendar change applied: %d dossiers replayed, %d feedback deadlines counted again, "
        "counters rebuilt",
        len(codes),
        deadlines,
    )
    return len(codes)


def _received_before(change: CalendarChange) -> datetime | None:
    """Feedback received before this instant may have a deadline the change moves (None: all)."""
    if change.everywhere or change.last is None:
        return None
    return datetime.combine(change.last + timedelta(days=1), time(), VIETNAM)


def _replayed(done: int, total: int) -> None:
    logger.info("calendar change: %d of %d dossiers replayed", done, total)


def _rebuilt(done: int, total: int) -> None:
    if done == total or done % 100_000 < 2000:
        logger.info("calendar change: counters rebuilt for %d of %d dossiers", done, total)
