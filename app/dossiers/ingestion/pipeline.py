"""The one ingestion pipeline every way in goes through: open → decide → write.

A way in (``events``: single events and batches; ``records``: DongBoHoSoMC records; ``folding``:
the bulk import; app.dossiers.recalendar: a replay under a changed calendar) translates its input
into arrivals per dossier, and its answers back from the outcome; everything between is here:

1. **open** (``open_round``): the dossiers' writers serialised (``locks``), their stored states,
   which of them have events waiting, and the sender's reach (SPEC §4);
2. **decide** (``decide_round``): ``decide.decide`` per dossier, pure; the dossiers it cannot decide
   without their history get their stored events (one query), the bindings of the clients that
   sent them and whether they are rated, and are decided again;
3. **write** (``writes.write``): the decisions stored set-based and the counters' difference handed
   to the caller's sink.

``settle`` runs 2 and 3 and gives each group's answer.
"""

import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import TypeVar

from sqlalchemy import literal_column, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.clients.models import ApiClient
from app.core.db import one_of, plan_with_values, rows_of_each
from app.core.errors import Conflict, request_id_var
from app.core.timezone import utcnow
from app.dossiers.ingestion.catalogue import Catalogue
from app.dossiers.ingestion.decide import Context, Dossier, DossierDecision, HistoryNeeded, Reach, decide
from app.dossiers.ingestion.locks import lock_dossiers
from app.dossiers.ingestion.work import STORED_COLUMNS, Answer, Arrival, Ingestion, Stored
from app.dossiers.ingestion.writes import STATE_FIELDS, CounterSink, Stamp, write
from app.dossiers.lifecycle import DossierState
from app.dossiers.models import Dossier as DossierRow
from app.dossiers.models import DossierEvent, DossierRating
from app.units.access import subtree_codes

logger = logging.getLogger("tthc.dossiers")

_STATE_COLUMNS = [DossierRow.__table__.c[name] for name in STATE_FIELDS]
ATTEMPTS = 3
_T = TypeVar("_T")
_Item = TypeVar("_Item")


@dataclass(frozen=True)
class Opened:
    """The dossiers of a round as stored, and what the sender may reach."""

    states: dict[str, DossierState]
    waiting: frozenset[str]
    reach: Reach

    def dossier(
        self,
        code: str,
        arrivals: Iterable[Arrival] = (),
        *,
        stored: tuple[Stored, ...] | None = None,
        replayed: bool = False,
    ) -> Dossier:
        """The dossier as the round meets it, with its arrivals."""
        waiting = code in self.waiting
        return Dossier(code, self.states.get(code), tuple(arrivals), stored, waiting, replayed)

    def context(
        self,
        ingestion: Ingestion,
        catalogue: Catalogue,
        *,
        strict_groups: frozenset[int] = frozenset(),
        keeps_due_dates: bool = True,
    ) -> Context:
        return Context(
            catalogue,
            self.reach,
            ingestion.calendar,
            keeps_due_dates=keeps_due_dates,
            strict_groups=strict_groups,
        )


async def open_round(ingestion: Ingestion, codes: Sequence[str], *, lock: bool = True) -> Opened:
    """Lock the dossiers (in code order; ``lock=False`` when the caller holds them all), load their
    states, which have events waiting, and the sender's reach."""
    session = ingestion.session
    if lock:
        await lock_dossiers(session, codes)
    await plan_with_values(session)
    states: dict[str, DossierState] = {}
    waiting: set[str] = set()
    if codes:
        rows = await session.execute(select(*_STATE_COLUMNS).where(one_of(session, DossierRow.code, codes)))
        states = {row.code: DossierState(**row._mapping) for row in rows}
        found = await session.scalars(
            select(DossierEvent.dossier_code)
            # A literal, so that the partial index of pending events serves it on both backends.
            .where(
                one_of(session, DossierEvent.dossier_code, codes),
                DossierEvent.status == literal_column("'pending'"),
            )
            .distinct()
        )
        waiting = set(found)
    principal = ingestion.principal
    units = await subtree_codes(session, principal.unit_code) if principal.unit_code else None
    reach = Reach(principal.client_id, frozenset(units) if units is not None else None)
    return Opened(states, frozenset(waiting), reach)


async def load_stored(session: AsyncSession, codes: Sequence[str]) -> dict[str, tuple[Stored, ...]]:
    """The stored events of these dossiers, each in arrival order, in one query."""
    if not codes:
        return {}
    found = rows_of_each(session, DossierEvent.dossier_code, codes, STORED_COLUMNS)
    rows = await session.execute(found.order_by(found.selected_columns.id))
    stored: dict[str, list[Stored]] = defaultdict(list)
    for row in rows:
        stored[row.dossier_code].append(Stored.of(row))
    return {code: tuple(stored.get(code, ())) for code in codes}


async def settle(
    ingestion: Ingestion, dossiers: Sequence[Dossier], context: Context, sink: CounterSink
) -> dict[int, Answer]:
    """Decide the dossiers, write the decisions, and answer each group."""
    decisions = await decide_round(ingestion.session, dossiers, context)
    await write(
        ingestion.session,
        decisions,
        Stamp(ingestion.principal.client_id, request_id_var.get(), utcnow()),
        sink,
    )
    answers: dict[int, Answer] = {}
    for decision in decisions:
        answers |= decision.answers
    return answers


async def decide_round(
    session: AsyncSession, dossiers: Sequence[Dossier], context: Context
) -> list[DossierDecision]:
    """Each dossier's decision; those that need their history get it (one query for all)."""
    decided: dict[str, DossierDecision] = {}
    to_replay: list[Dossier] = []
    for dossier in dossiers:
        if dossier.stored is not None:
            to_replay.append(dossier)
            continue
        try:
            decided[dossier.code] = decide(dossier, context)
        except HistoryNeeded:
            to_replay.append(dossier)
    if to_replay:
        stored = await load_stored(session, [d.code for d in to_replay if d.stored is None])
        to_replay = [d if d.stored is not None else replace(d, stored=stored[d.code]) for d in to_replay]
        context = await _for_histories(session, context, to_replay)
        for dossier in to_replay:
            decided[dossier.code] = decide(dossier, context)
    return [decided[dossier.code] for dossier in dossiers]


async def _for_histories(session: AsyncSession, context: Context, dossiers: list[Dossier]) -> Context:
    """The context completed for replays: the units of the other clients whose events the
    histories hold, and which of the dossiers have a citizen's rating."""
    reach = context.reach
    others = {s.client_id for d in dossiers for s in d.stored or ()} - {reach.client_id} - set(reach.bindings)
    bindings = dict(reach.bindings)
    if others:
        rows = await session.execute(
            select(ApiClient.id, ApiClient.unit_code).where(ApiClient.id.in_(others))
        )
        for client_id, unit_code in rows:
            bindings[client_id] = frozenset(await subtree_codes(session, unit_code)) if unit_code else None
    received = [d.code for d in dossiers if d.state is not None]
    rated: set[str] = set()
    if received:
        rated = set(
            await session.scalars(
                select(DossierRating.dossier_code).where(DossierRating.dossier_code.in_(received))
            )
        )
    return replace(context, reach=replace(reach, bindings=bindings), rated=context.rated | rated)


async def with_retries(session: AsyncSession, attempt: Callable[[], Awaitable[_T]]) -> _T:
    """When two requests store the same event id at the same moment, the loser's transaction fails
    on a unique key: it is rolled back and replayed (it then sees the winner's rows)."""
    for number in range(1, ATTEMPTS + 1):
        try:
            return await attempt()
        except IntegrityError:
            await session.rollback()
            logger.warning("concurrent ingestion of the same events; replaying (attempt %d)", number)
    raise Conflict("The same events are being ingested concurrently; retry the request")


def rounds(items: list[_Item], key: Callable[[_Item], str]) -> list[list[_Item]]:
    """Items split so that each round holds one item per key, in the order sent: a key sent twice
    in one request is then taken after its first occurrence was stored, like a later request."""
    split: list[list[_Item]] = []
    seen: dict[str, int] = defaultdict(int)
    for item in items:
        occurrence = seen[key(item)]
        seen[key(item)] += 1
        if occurrence == len(split):
            split.append([])
        split[occurrence].append(item)
    return split
