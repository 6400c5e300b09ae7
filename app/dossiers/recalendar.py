"""A change of working calendar: due dates and every figure follow the calendar in force (SPEC §3).

The calendar (working hours, extra days off, make-up days, the official holidays) is configuration,
and it changes when the government announces a swap. The calendar the stored due dates and counters
were computed on is kept beside them (``calendar_in_force``). At start, before statistics are served,
``follow_calendar`` compares it with the calendar of the settings; when they differ, every dossier
whose due date or figures the changed days can touch is replayed from its stored events on the new
calendar (its reception's due date counted again from the procedure's processing time; a due date
the portal sent stays as sent), then the counters are rebuilt and the data versions moved, in one
transaction with the new fingerprint. Several workers starting together: one does it, the others
find it done.
"""

import asyncio
import logging
from datetime import datetime, time, timedelta

from sqlalchemy import and_, or_, select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.calendar.working_time import (
    CalendarChange,
    WorkingCalendar,
    calendar_change,
    calendar_description,
    calendar_fingerprint,
)
from app.core.data_version import bump_version
from app.core.db import load_for_update
from app.core.security import Principal
from app.core.timezone import VIETNAM
from app.dossiers.counters import rebuild_counters
from app.dossiers.ingestion.batch import Batch
from app.dossiers.ingestion.catalogue import load_catalogue
from app.dossiers.ingestion.work import Sender
from app.dossiers.ingestion.writes import write_batch
from app.dossiers.models import CalendarInForce, Dossier

logger = logging.getLogger("tthc.calendar")

CHUNK = 500
_ROW = 1
# Replays as no client: every stored event keeps the binding of the client that sent it.
_NOBODY = Principal(client_id=0, name="calendar change")


class CalendarGuard:
    """Follows the calendar once per process: at start, or, when the database could not be read
    then (not reachable, not migrated yet), before the first statistics answer."""

    def __init__(
        self, sessionmaker: async_sessionmaker[AsyncSession], calendar: WorkingCalendar, secret_key: str
    ) -> None:
        self.sessionmaker, self.calendar, self.secret_key = sessionmaker, calendar, secret_key
        self.followed = False
        self._lock = asyncio.Lock()

    async def ensure(self) -> None:
        if self.followed:
            return
        async with self._lock:
            if not self.followed:
                await follow_calendar(self.sessionmaker, self.calendar, self.secret_key)
                self.followed = True

    async def at_start(self) -> None:
        try:
            await self.ensure()
        except (SQLAlchemyError, OSError) as exc:
            logger.warning(
                "the calendar in force could not be checked at start; checked again before "
                "the first statistics answer: %s",
                exc.__class__.__name__,
            )


async def follow_calendar(
    sessionmaker: async_sessionmaker[AsyncSession], calendar: WorkingCalendar, secret_key: str
) -> int | None:
    """Bring the stored due dates and counters onto ``calendar``; the number of dossiers replayed,
    or None when the calendar had not changed (or was first recorded)."""
    for _attempt in range(2):
        try:
            async with sessionmaker() as session, session.begin():
                return await _follow(session, calendar, secret_key)
        except IntegrityError:
            # Two workers recorded the first calendar at once: the other one's row stands.
            continue
    return None


async def _follow(session: AsyncSession, calendar: WorkingCalendar, secret_key: str) -> int | None:
    description = calendar_description(calendar)
    fingerprint = calendar_fingerprint(description)
    stored = await load_for_update(session, CalendarInForce, _ROW)
    if stored is None:
        # The first start with this table: the data were computed on the calendar of the settings.
        session.add(CalendarInForce(id=_ROW, fingerprint=fingerprint, description=description))
        return None
    if stored.fingerprint == fingerprint:
        return None
    change = calendar_change(stored.description, description)
    logger.warning(
        "the working calendar changed since the figures were computed (%s): recomputing due dates and "
        "counters before statistics are served",
        "working hours or official holidays" if change.everywhere else f"days {change.first}..{change.last}",
    )
    codes = await _touched(session, change)
    sender = Sender(session, _NOBODY, calendar, secret_key)
    for start in range(0, len(codes), CHUNK):
        await _replay(sender, codes[start : start + CHUNK])
        logger.info("calendar change: %d of %d dossiers replayed", min(start + CHUNK, len(codes)), len(codes))

    def progress(done: int, total: int) -> None:
        if done == total or done % 100_000 < 2000:
            logger.info("calendar change: counters rebuilt for %d of %d dossiers", done, total)

    await rebuild_counters(session, calendar, progress)
    stored.fingerprint, stored.description = fingerprint, description
    await bump_version(session)
    logger.warning("calendar change applied: %d dossiers replayed, counters rebuilt", len(codes))
    return len(codes)


async def _touched(session: AsyncSession, change: CalendarChange) -> list[str]:
    """The dossiers whose due date or figures the changed days may move: received before the last
    changed day ends, and still open, or due or ended on or after the first changed day."""
    if change.none:
        return []
    query = select(Dossier.code).where(Dossier.received_at.is_not(None)).order_by(Dossier.code)
    if not change.everywhere:
        assert change.first is not None and change.last is not None
        first = datetime.combine(change.first, time(), VIETNAM)
        after_last = datetime.combine(change.last + timedelta(days=1), time(), VIETNAM)
        query = query.where(
            Dossier.received_at < after_last,
            or_(
                and_(Dossier.finished_at.is_(None), Dossier.withdrawn_at.is_(None)),
                Dossier.due_at >= first,
                Dossier.finished_at >= first,
                Dossier.withdrawn_at >= first,
            ),
        )
    return list(await session.scalars(query))


async def _replay(sender: Sender, codes: list[str]) -> None:
    batch = Batch(sender)
    batch.keeps_due_dates = False
    await batch.open(codes)
    states = [work.state for work in batch.work.values() if work.state is not None]
    batch.catalogue = await load_catalogue(
        sender.session, {s.procedure_code for s in states}, {s.unit_code for s in states}
    )
    for work in batch.work.values():
        work.replay = True
    await batch.load_histories()
    for work in batch.work.values():
        await batch.rework(work)
    # The counters are rebuilt from every dossier once all are replayed: the batch's own counter
    # changes (its old marks on the new calendar) would be wrong, so they are summed and dropped.
    await write_batch(batch, day_sums={})
