"""The primary among several PostgreSQL servers: ``TTHC_DATABASE_URL`` naming more than one host,
the way a failover engine (pg_auto_failover, Patroni) hands its clients a cluster.

Every new connection of the service's pool goes to a server that is a primary, tried in the
order the URL names them; a standby is passed over (asyncpg reads ``in_hot_standby`` from the
server's greeting, so this costs nothing). A server that has just been promoted works on a new
timeline, so the pool also refuses a primary whose timeline is behind the highest this process has
written to: an old primary started again by hand, after the cluster failed over without it, holds
writes the others never saw (a diverged timeline), and a write to it would be lost when it is
rewound. The first connection of the process asks every server, and takes the primary on the
highest timeline. When no server qualifies the connection fails as ``NoPrimary`` (a 503 with
``Retry-After``), which names each server and why it was passed over; ``/readyz`` says the same.

What this cannot see: a process started while the only server up is such an old primary has seen
no newer timeline. The failover engine is what keeps a demoted node from starting as a primary
(pg_auto_failover's keeper asks its monitor first); docs/deployment.md.
"""

import logging
import time
from collections.abc import Sequence
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, Dialect, Engine, make_url
from sqlalchemy.pool import ConnectionPoolEntry

logger = logging.getLogger("tthc.primary")

# On a primary, the timeline of the WAL it writes (the first 8 hex digits of the segment's name);
# NULL on a standby (where pg_walfile_name() is refused) and on a server made read-only.
_TIMELINE = (
    "SELECT CASE WHEN pg_is_in_recovery() OR current_setting('default_transaction_read_only')::bool "
    "THEN NULL "
    "ELSE ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int END"
)

# A standby, or a server the failover engine has made read-only while it promotes another
# (pg_auto_failover's stop_replication state sets default_transaction_read_only for that).
_NOT_WRITABLE = "not taking writes (a standby, or read-only)"

# Only a primary takes writes; read-write is libpq's older name for the same wish.
PRIMARY_SESSION_ATTRS = ("primary", "read-write")


class NoPrimary(ConnectionError):
    """None of the servers named is a primary this service may write to."""


def hosts_of(url: str | URL) -> list[str]:
    """The servers a PostgreSQL URL names, as ``host:port`` (one, or the ``?host=`` list)."""
    parsed = make_url(url)
    listed = parsed.query.get("host")
    if listed is None:
        return [f"{parsed.host or 'localhost'}:{parsed.port or 5432}"]
    hosts = [listed] if isinstance(listed, str) else list(listed)
    return [host if ":" in host else f"{host}:{parsed.port or 5432}" for host in hosts]


class PrimaryFence:
    """Chooses the server each new connection goes to (see the module's docstring)."""

    def __init__(self) -> None:
        self.timeline = 0
        """The highest timeline of a primary this process has connected to (0: none yet)."""

    def connect(self, dialect: Dialect, cargs: Sequence[Any], cparams: dict[str, Any]) -> Any:
        hosts: list[str] = list(cparams["host"])
        ports: list[int | None] = list(cparams.get("port") or [None] * len(hosts))
        deadline = time.monotonic() + float(cparams.get("timeout") or 60)
        passed: list[tuple[str, str]] = []
        primaries: list[tuple[int, str, Any]] = []
        for host, port in zip(hosts, ports, strict=True):
            server = f"{host}:{port or 5432}"
            left = deadline - time.monotonic()
            if left <= 0:
                passed.append((server, "not tried: the connect timeout ran out"))
                continue
            one = {
                **cparams,
                "host": host,
                "port": port,
                "timeout": left,
                "target_session_attrs": "read-write",
            }
            try:
                connection = dialect.connect(*cargs, **one)
            except Exception as exc:
                passed.append((server, _reason(exc)))
                continue
            timeline = _timeline_of(connection)
            if timeline is None:
                passed.append((server, _NOT_WRITABLE))
                connection.close()
                continue
            primaries.append((timeline, server, connection))
            # Once this process knows the cluster's newest timeline, the first primary at it will do;
            # until then every server is asked, so that an old primary listed first is not taken.
            if self.timeline and timeline >= self.timeline:
                break
        newest = max((timeline for timeline, _, _ in primaries), default=0)
        chosen = next((found for found in primaries if found[0] == newest >= self.timeline), None)
        for found in primaries:
            if found is not chosen:
                why = _diverged(found[0], max(newest, self.timeline))
                logger.error("not writing to %s: %s", found[1], why)
                passed.append((found[1], why))
                found[2].close()
        if chosen is None:
            raise NoPrimary(
                "no primary among the database servers: "
                + "; ".join(f"{server} is {why}" for server, why in passed)
            )
        if chosen[0] > self.timeline:
            if self.timeline:
                logger.warning("writing to %s, the primary now, on timeline %d", chosen[1], chosen[0])
            self.timeline = chosen[0]
        return chosen[2]


def _timeline_of(connection: Any) -> int | None:
    async def read(driver: Any) -> int | None:
        value: int | None = await driver.fetchval(_TIMELINE)
        return value

    result: int | None = connection.run_async(read)
    return result


def _diverged(timeline: int, newest: int) -> str:
    if timeline == newest:
        return f"a second primary on timeline {timeline}: the cluster has split"
    return f"a primary on timeline {timeline}, behind timeline {newest}: diverged from the cluster"


def _reason(exc: Exception) -> str:
    if "target attribute" in str(exc):
        return _NOT_WRITABLE
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return f"unreachable ({text})"


def fence_primaries(engine: Engine) -> PrimaryFence:
    """Make every new connection of ``engine`` (several hosts in its URL) go to the cluster's primary."""
    fence = PrimaryFence()

    def connect(dialect: Dialect, _record: ConnectionPoolEntry, cargs: Any, cparams: dict[str, Any]) -> Any:
        if not isinstance(cparams.get("host"), list):
            return None
        return fence.connect(dialect, cargs, cparams)

    event.listen(engine, "do_connect", connect)
    return fence
