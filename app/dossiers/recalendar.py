"""Dossiers on another working calendar, or under a changed rule: replayed from their stored events.

The calendar (working hours, extra days off, make-up days, the official holidays) is configuration,
and it changes when the government announces a swap; SPEC §3 wants due dates and every figure to
follow the calendar in force. ``touched_dossiers`` finds the dossiers a change of some days can
move, ``replay_dossiers`` replays them from their stored events (a reception's due date counted
again from the procedure's processing time; a due date the portal sent stays as sent). The caller
(app.stats.calendar_in_force) notices the change and rebuilds the counters afterwards.
"""

from collections.abc import Callable
from datetime import datetime, time, timedelta

from sqlalchemy import and_, literal_column, or_, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.calendar.working_time import CalendarChange
from app.core.db import take_write_lock
from app.core.security import Principal
from app.core.timezone import VIETNAM
from app.dossiers.ingestion.catalogue import load_catalogue
from app.dossiers.ingestion.pipeline import load_stored, open_round, settle
from app.dossiers.ingestion.work import Ingestion
from app.dossiers.ingestion.writes import DaySums, LiveCounters
from app.dossiers.lifecycle import EventType
from app.dossiers.models import Dossier, DossierEvent

CHUNK = 500
# Replays as no client: every stored event keeps the binding of the client that sent it.
NOBODY = Principal(client_id=0, name="calendar change")


async def hold_dossiers(session: AsyncSession) -> None:
    """Every writer of dossiers waits until this transaction ends: one table lock, rather than a
    lock per dossier (a replay of millions would fill PostgreSQL's lock table)."""
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(text("LOCK TABLE dossiers, dossier_events IN EXCLUSIVE MODE"))
    else:
        await take_write_lock(session)


async def touched_dossiers(session: AsyncSession, change: CalendarChange) -> list[str]:
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


async def waiting_further_requests(session: AsyncSession) -> list[str]:
    """Dossiers with a supplement request kept pending because the dossier already waited: stored
    before such a request counted (SPEC §3), they are replayed once under the rule."""
    found = await session.scalars(
        select(DossierEvent.dossier_code)
        .where(
            DossierEvent.status == literal_column("'pending'"),
            DossierEvent.type == EventType.supplement_requested.value,
        )
        .distinct()
        .order_by(DossierEvent.dossier_code)
    )
    return list(found)


async def replay_dossiers(
    ingestion: Ingestion, codes: list[str], *, calendar_changed: bool, progress: Callable[[int, int], None]
) -> None:
    """Replay these dossiers from their stored events and store what they become, a chunk at a time,
    in the caller's transaction (which holds the dossiers: ``hold_dossiers``).

    On a changed calendar a reception's due date is counted again and the counters are left to the
    caller's rebuild (each dossier's old marks cannot be taken back on a calendar that no longer
    makes them); otherwise the counters change by each dossier's new marks minus its old ones.
    """
    for start in range(0, len(codes), CHUNK):
        chunk = codes[start : start + CHUNK]
        opened = await open_round(ingestion, chunk, lock=False)
        states = opened.states.values()
        catalogue = await load_catalogue(
            ingestion.session, {s.procedure_code for s in states}, {s.unit_code for s in states}
        )
        histories = await load_stored(ingestion.session, chunk)
        dossiers = [opened.dossier(code, stored=histories[code], replayed=True) for code in chunk]
        context = opened.context(ingestion, catalogue, keeps_due_dates=not calendar_changed)
        # On a changed calendar the counters are rebuilt afterwards: the sums are dropped.
        await settle(ingestion, dossiers, context, DaySums() if calendar_changed else LiveCounters())
        progress(min(start + CHUNK, len(codes)), len(codes))
