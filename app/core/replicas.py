"""Hot standbys that answer reads (``TTHC_DATABASE_READ_URLS``): their health, their lag, and which
requests they may answer.

A standby is a PostgreSQL streaming replica of the primary. Every ``TTHC_REPLICA_CHECK_INTERVAL``
each worker samples the primary's WAL position and asks every standby how far it has replayed. A
standby's lag is how long it has been missing WAL the primary had at a sample — zero while it has
replayed everything sampled, so an idle primary does not make a standby look late (as the age of
``pg_last_xact_replay_timestamp()`` would). A standby that does not answer within the check's
timeout, is not in recovery, or lags beyond ``TTHC_REPLICA_MAX_LAG`` is skipped until a check finds
it well again; a request that cannot reach its standby marks it down at once and reads the primary.

Which reads a standby may serve is declared by the route (``StandbyReads``,
``AnonymousStandbyReads``): statistics and reports always — their ETags carry the data version, so a
poller is never sent back in time (``app.stats.deps``) — and the catalogue, units and the citizen
look-up when the request carries no credentials. A client with a key reads the primary: it may be
reading what it has just written, or the ETag it will send back in ``If-Match``.
"""

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from itertools import count

from fastapi import Request
from prometheus_client import CollectorRegistry, Counter, Gauge
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine
from sqlalchemy.pool import NullPool

from app.core.bounded_engine import answered, postgres_engine
from app.core.http_caching import Route

logger = logging.getLogger("tthc.replicas")

# A standby that does not answer a check within this long (or the check interval, if shorter) is
# skipped: with the default interval of 1 s, a standby that stops is skipped within 2 s.
LONGEST_CHECK = 1.0

READS_APPLICATION_NAME = "tthc-reads"
"""How the requests' connections to a standby show in its ``pg_stat_activity``."""

READ_FROM = "read_from"
"""``session.info`` key: the standby engine the session reads from (absent: the primary)."""


class ReadsFrom(StrEnum):
    primary = "primary"
    standby = "standby"
    standby_when_anonymous = "standby_when_anonymous"


class StandbyReads(Route):
    """A route whose GETs a standby answers: the answer is versioned and may lag by the bound."""

    reads_from = ReadsFrom.standby


class AnonymousStandbyReads(Route):
    """A route whose GETs a standby answers unless the request carries credentials."""

    reads_from = ReadsFrom.standby_when_anonymous


def _probe_engine(url: str, timeout: float) -> AsyncEngine:
    """A fresh connection per check, bounded in connecting and in waiting for its query."""
    return create_async_engine(
        url,
        poolclass=NullPool,
        connect_args={
            "timeout": timeout,
            "command_timeout": timeout,
            "server_settings": {"application_name": "tthc-check"},
        },
    )


def _position(engine_sql: str) -> str:
    # pg_lsn as a plain integer: bytes of WAL since the start, comparable across the cluster.
    return f"({engine_sql} - '0/0'::pg_lsn)::bigint"


_PRIMARY_POSITION = text(f"SELECT {_position('pg_current_wal_lsn()')}")
_STANDBY_POSITION = text(f"SELECT pg_is_in_recovery(), {_position('pg_last_wal_replay_lsn()')}")


@dataclass(eq=False)
class Standby:
    name: str
    engine: AsyncEngine
    """The pool requests read from."""
    probe: AsyncEngine
    """A connection per check, apart from the requests' pool: a busy pool is not a dead server."""
    usable: bool = False
    lag: float | None = None
    problem: str | None = "not checked yet"


@dataclass
class _Sample:
    at: float
    position: int


@dataclass
class ReplicaMetrics:
    up: Gauge
    lag: Gauge
    reads: Counter

    @classmethod
    def register(cls, registry: CollectorRegistry) -> "ReplicaMetrics":
        metrics = cls(
            up=Gauge(
                "tthc_standby_up",
                "1 while a standby serves reads, by standby",
                ["standby"],
                registry=registry,
            ),
            lag=Gauge(
                "tthc_standby_lag_seconds",
                "How long a standby has been missing WAL the primary had, at the last check",
                ["standby"],
                registry=registry,
            ),
            reads=Counter(
                "tthc_db_reads",
                "Requests that could read a standby, by the server that answered them",
                ["server"],
                registry=registry,
            ),
        )
        for server in ("standby", "primary"):
            metrics.reads.labels(server)
        return metrics


@dataclass(eq=False)
class ReadReplicas:
    """The standbys of one worker, checked in the background, chosen in turn."""

    primary: AsyncEngine
    """A connection per check to the primary, apart from the requests' pool (which may be full)."""
    standbys: list[Standby]
    max_lag: float
    check_timeout: float
    metrics: ReplicaMetrics | None = None
    clock: Callable[[], float] = time.monotonic
    """What "now" is for lag; tests put a clock of their own here instead of sleeping."""
    _samples: deque[_Sample] = field(default_factory=deque)
    _turn: "count[int]" = field(default_factory=count)
    _primary_answered: bool = True

    @classmethod
    def connect(
        cls,
        primary: AsyncEngine,
        urls: list[str],
        *,
        pool_size: int,
        max_lag: float,
        check_timeout: float,
        command_timeout: float | None,
        metrics: ReplicaMetrics | None = None,
    ) -> "ReadReplicas":
        standbys = []
        for url in urls:
            # Bounded as the primary's requests are; a standby that gives no connection within the
            # time a check allows is down, as the check would find it, and the primary answers.
            engine = postgres_engine(
                url,
                pool_size=pool_size,
                pool_timeout=check_timeout,
                connect_timeout=check_timeout,
                command_timeout=command_timeout,
                checkout_timeout=check_timeout,
                server_settings={"application_name": READS_APPLICATION_NAME},
            )
            probe = _probe_engine(url, check_timeout)
            name = engine.url.render_as_string(hide_password=True)
            standbys.append(Standby(name, engine, probe))
        primary_probe = _probe_engine(primary.url.render_as_string(hide_password=False), check_timeout)
        return cls(primary_probe, standbys, max_lag, check_timeout, metrics)

    def choose(self) -> Standby | None:
        """The next usable standby in turn, or None: read the primary."""
        usable = [standby for standby in self.standbys if standby.usable]
        if not usable:
            return None
        return usable[next(self._turn) % len(usable)]

    def mark_down(self, standby: Standby, problem: str) -> None:
        if standby.usable:
            logger.warning("standby %s skipped: %s", standby.name, problem)
        standby.usable = False
        standby.problem = problem
        if self.metrics is not None:
            self.metrics.up.labels(standby.name).set(0)

    def _mark_up(self, standby: Standby, lag: float) -> None:
        if not standby.usable:
            logger.info("standby %s serves reads (lag %.1f s)", standby.name, lag)
        standby.usable, standby.lag, standby.problem = True, lag, None
        if self.metrics is not None:
            self.metrics.up.labels(standby.name).set(1)
            self.metrics.lag.labels(standby.name).set(lag)

    def record(self, at: float, position: int) -> None:
        """Note the primary's WAL position at a moment; forget what can no longer decide a lag."""
        self._samples.append(_Sample(at, position))
        # The last sample before the horizon stays: a standby missing its WAL lags beyond the bound
        # however long the gap between checks was.
        horizon = at - 2 * self.max_lag - 2 * self.check_timeout
        while len(self._samples) > 1 and self._samples[1].at < horizon:
            self._samples.popleft()

    def lag_of(self, replayed: int, now: float) -> float:
        """Seconds since the earliest sample of the primary holding WAL beyond ``replayed``."""
        missing = next((sample for sample in self._samples if sample.position > replayed), None)
        return 0.0 if missing is None else max(0.0, now - missing.at)

    async def check(self) -> None:
        """One round: sample the primary's position, then ask every standby (at most the timeout)."""
        now = self.clock()
        try:
            async with asyncio.timeout(self.check_timeout), self.primary.connect() as connection:
                position = (await connection.execute(_PRIMARY_POSITION)).scalar_one()
        except (OSError, SQLAlchemyError, TimeoutError) as exc:
            # Without a fresh sample the standbys are judged against the last ones. Said once per
            # outage: the check runs every second.
            if self._primary_answered:
                logger.warning("could not read the primary's WAL position: %r", exc)
            self._primary_answered = False
        else:
            self._primary_answered = True
            self.record(now, position)
        await asyncio.gather(*(self._check(standby, now) for standby in self.standbys))

    async def _check(self, standby: Standby, now: float) -> None:
        try:
            async with asyncio.timeout(self.check_timeout), standby.probe.connect() as connection:
                in_recovery, replayed = (await connection.execute(_STANDBY_POSITION)).one()
        except (OSError, SQLAlchemyError, TimeoutError) as exc:
            self.mark_down(standby, f"unreachable: {type(exc).__name__}")
            return
        if not in_recovery:
            self.mark_down(standby, "not a standby (pg_is_in_recovery() is false)")
            return
        lag = self.lag_of(replayed, now)
        standby.lag = lag
        if lag > self.max_lag:
            self.mark_down(standby, f"lags {lag:.1f} s behind the primary (bound {self.max_lag:g} s)")
            if self.metrics is not None:
                self.metrics.lag.labels(standby.name).set(lag)
            return
        self._mark_up(standby, lag)

    async def watch(self, interval: float) -> None:
        """Check every ``interval`` seconds until cancelled."""
        while True:
            started = time.monotonic()
            try:
                await self.check()
            except Exception:  # a round that fails must not end the watch
                logger.exception("standby check failed")
            await asyncio.sleep(max(0.0, interval - (time.monotonic() - started)))

    async def dispose(self) -> None:
        await self.primary.dispose()
        for standby in self.standbys:
            await standby.engine.dispose()
            await standby.probe.dispose()

    def counted(self, server: str) -> None:
        if self.metrics is not None:
            self.metrics.reads.labels(server).inc()


async def route_reads(request: Request, session: AsyncSession) -> None:
    """Point a safe request's session at a standby when its route allows one and one is usable.

    The standby is reached before the request reads anything, so one that went down since its last
    check costs the request no error: it is marked down and the primary is used. Reaching it takes at
    most the check's timeout (its engine's ``checkout_timeout``): a read whose standby fails there
    waits that long, then up to the primary's own bound for its first answer.
    """
    replicas: ReadReplicas | None = getattr(request.app.state, "replicas", None)
    if replicas is None:
        return
    policy = getattr(request.scope.get("route"), "reads_from", ReadsFrom.primary)
    if policy is ReadsFrom.primary:
        return
    if policy is ReadsFrom.standby_when_anonymous and "authorization" in request.headers:
        replicas.counted("primary")
        return
    standby = replicas.choose()
    if standby is not None:
        session.info[READ_FROM] = standby.engine
        try:
            await session.connection()
        except PoolTimeout:
            # A standby whose pool is busy is well, only full: this request reads the primary.
            await use_primary(session)
        except (OSError, SQLAlchemyError, TimeoutError) as exc:
            # The primary, not the next standby: each one tried could take the request another
            # check timeout before the primary's wait even begins.
            await use_primary(session)
            replicas.mark_down(standby, f"unreachable: {type(exc).__name__}")
        else:
            # Reached: the connect or the pre-ping was its answer. The request's first statement
            # may come after other work (the calendar guard, say), and waits on its own.
            answered()
            replicas.counted("standby")
            return
    replicas.counted("primary")


def reads_standby(session: AsyncSession) -> bool:
    return READ_FROM in session.info


async def use_primary(session: AsyncSession) -> None:
    """Read the primary from here on (ends the transaction begun on the standby)."""
    if session.info.pop(READ_FROM, None) is not None:
        await session.rollback()
