"""The primary dies and nothing acknowledged is lost (issue 31), on a real pg_auto_failover cluster.

tests.failover starts a monitor and two PostgreSQL nodes on this machine; the service is given both
nodes in one URL (``?host=a&host=b``). Two senders ingest batches the whole time, resending a batch
that got a 503, as the portal does; the primary's keeper and postmaster are killed with SIGKILL;
pg_auto_failover promotes the synchronous secondary; the senders carry on by themselves. Then every
event that got a 2xx is stored exactly once, a resent batch was stored whole or not at all, and the
statistics equal a rebuild. The old primary rejoins as a secondary, and the cluster fails back.

These tests start servers of their own and time an outage: they run apart from the parallel run,
with the standby's (`make test`), and `make test-failover` runs them alone, printing the figures.
"""

import asyncio
import itertools
import statistics
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient, Response
from sqlalchemy import func, select

from app.core import migrations
from app.core.config import Settings
from app.core.replicas import ReadReplicas
from app.dossiers.models import DossierEvent
from app.main import create_app
from tests.conftest import REQUIRE_STANDBY, assert_counters_equal_a_rebuild, running_app
from tests.dossiers.conftest import BATCH, received
from tests.failover import Cluster, FailoverNotInstalled, Node, start_cluster
from tests.standby import _free_port, query

pytestmark = pytest.mark.failover

EVENTS_PER_BATCH = 50
# The bound: ingestion resumes by itself within 30 s of the primary's death.
RESUMES_WITHIN = 30.0


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    try:
        running = start_cluster()
    except FailoverNotInstalled as exc:
        message = f"no pg_auto_failover cluster can be started here (scripts/ensure-auto-failover): {exc}"
        if REQUIRE_STANDBY:
            pytest.fail(message)
        pytest.skip(message)
    try:
        migrations.upgrade(running.url)
        yield running
    finally:
        running.destroy()


def settings_for(cluster: Cluster, **overrides: Any) -> Settings:
    # The production waits (2 s): the subject here is what a client sees while there is no primary.
    return Settings(
        database_url=cluster.url,
        database_read_urls=[node.url() for node in cluster.nodes.values()],
        replica_check_interval=3600,  # checked when the test says so
        **overrides,
    )


@pytest.fixture
async def app(cluster: Cluster) -> AsyncIterator[FastAPI]:
    async with running_app(settings_for(cluster)) as application:
        yield application


@dataclass
class Ledger:
    """What the senders were told."""

    acknowledged: set[str] = field(default_factory=set)
    answered_at: list[float] = field(default_factory=list)
    unavailable: int = 0
    resent: Counter[str] = field(default_factory=Counter)
    """Batches that got a 2xx only after a 503, by what the 2xx said of their events."""

    def answered_since(self, moment: float) -> int:
        return sum(1 for at in self.answered_at if at > moment)

    def longest_silence(self, since: float) -> float:
        """The longest time without a 2xx to any sender, from ``since`` on."""
        moments = [since, *sorted(at for at in self.answered_at if at > since)]
        return max(later - earlier for earlier, later in itertools.pairwise(moments))


async def send_until(stop: asyncio.Event, client: AsyncClient, name: str, ledger: Ledger) -> None:
    """One sender: new dossiers in batches; a batch that gets a 503 is sent again, unchanged."""
    number = 0
    while not stop.is_set():
        number += 1
        events = [
            received(f"{name}-{number}-{item}", "2023-08-01T09:00:00+07:00")
            for item in range(EVENTS_PER_BATCH)
        ]
        response, tries = await send_acknowledged(client, events, ledger)
        said = {result["status"] for result in response.json()["results"]}
        # A batch is one transaction: cut off by the failover, it was stored whole (a resend is all
        # `duplicate`) or not at all (all `created`), never in part.
        assert said in ({"created"}, {"duplicate"}), said
        if tries > 1:
            ledger.resent[said.pop()] += 1
        ledger.acknowledged.update(event["event_id"] for event in events)
        ledger.answered_at.append(time.monotonic())


async def until(condition: Callable[[], bool], what: str, seconds: float = 120.0) -> None:
    try:
        async with asyncio.timeout(seconds):
            while not condition():  # noqa: ASYNC110 (what the senders' tasks change)
                await asyncio.sleep(0.05)
    except TimeoutError:
        pytest.fail(f"waited {seconds} s for {what}")


async def in_thread(function: Callable[..., Any], *args: Any) -> Any:
    # The cluster's controls block (pg_ctl, pg_autoctl) or run an event loop of their own.
    return await asyncio.to_thread(function, *args)


def other(cluster: Cluster, node: Node) -> Node:
    return next(candidate for candidate in cluster.nodes.values() if candidate is not node)


async def stored_times(app: FastAPI, event_ids: set[str]) -> Counter[str]:
    async with app.state.sessionmaker() as session:
        rows = await session.execute(
            select(DossierEvent.event_id, func.count())
            .where(DossierEvent.event_id.in_(sorted(event_ids)))
            .group_by(DossierEvent.event_id)
        )
        return Counter({event_id: times for event_id, times in rows})


async def fail_over(
    app: FastAPI, cluster: Cluster, portal: AsyncClient, round_name: str, *, planned: bool
) -> dict[str, Any]:
    """Kill the primary (or switch over, ``planned``) while two senders ingest; the outage's figures."""
    old = await in_thread(cluster.primary)
    new = other(cluster, old)
    ledger = Ledger()
    stop = asyncio.Event()
    senders = [
        asyncio.create_task(send_until(stop, portal, f"{round_name}-{sender}", ledger)) for sender in "xy"
    ]
    try:
        await until(lambda: len(ledger.answered_at) >= 6, "ingestion to be under way")
        killed_at = time.monotonic()
        if planned:
            await in_thread(cluster.switch_over)
        else:
            await in_thread(cluster.kill, old)
        await in_thread(cluster.wait_for, lambda: cluster.primary() is new, f"{new.name} to be promoted")
        promoted_after = time.monotonic() - killed_at
        await until(lambda: ledger.answered_since(killed_at + promoted_after) >= 6, "ingestion to resume")
    finally:
        stop.set()
        outcomes = await asyncio.gather(*senders, return_exceptions=True)
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome
    silence = ledger.longest_silence(killed_at)
    assert silence < RESUMES_WITHIN, f"no write acknowledged for {silence:.1f} s"
    stored = await stored_times(app, ledger.acknowledged)
    assert set(stored) == ledger.acknowledged, "an acknowledged event was lost"
    assert set(stored.values()) == {1}
    return {
        "how": "switchover" if planned else "kill -9",
        "from": old.name,
        "to": new.name,
        "promoted after (s)": round(promoted_after, 1),
        "longest time without a 2xx (s)": round(silence, 1),
        "503 answers": ledger.unavailable,
        "batches resent": dict(ledger.resent),
        "events acknowledged": len(ledger.acknowledged),
        "events found": sum(stored.values()),
    }


async def test_the_primary_dies_and_every_acknowledged_event_is_kept(
    app: FastAPI, cluster: Cluster, portal: AsyncClient
) -> None:
    replicas: ReadReplicas = app.state.replicas
    figures = []
    for round_name, planned in (("there", False), ("back", False), ("planned", True)):
        old = await in_thread(cluster.primary)
        figures.append(await fail_over(app, cluster, portal, round_name, planned=planned))
        await assert_counters_equal_a_rebuild(app)

        # Acknowledged means on two servers: while the old primary is away the new one is alone,
        # and once it is back as a synchronous secondary the cluster is whole again. A switched
        # over primary follows by itself; a killed one rejoins when its keeper starts again.
        if not planned:
            await in_thread(cluster.rejoin, old)
        await in_thread(cluster.wait_until_in_sync)
        primary = await in_thread(cluster.primary)
        standbys = await in_thread(query, primary.url(), "SHOW synchronous_standby_names")
        assert standbys[0][0] != ""

        # The read replicas' checks find the old primary again, now a standby, and not the new one.
        await replicas.check()
        usable = {standby.name.split("@")[1].split("/")[0] for standby in replicas.standbys if standby.usable}
        assert usable == {old.server}
    print("\nfailover figures:", *figures, sep="\n  ")
    pauses = [figure["longest time without a 2xx (s)"] for figure in figures]
    assert statistics.mean(pauses) < RESUMES_WITHIN


async def test_no_primary_among_the_servers_fails_readiness_with_the_reason(cluster: Cluster) -> None:
    secondary = other(cluster, await in_thread(cluster.primary))
    nowhere = _free_port()
    url = f"postgresql+asyncpg://postgres@/tthc?host={secondary.server}&host=127.0.0.1:{nowhere}"
    application = create_app(Settings(database_url=url))
    async with (
        application.router.lifespan_context(application),
        AsyncClient(transport=ASGITransport(app=application), base_url="http://t") as client,
    ):
        ready = await client.get("/readyz")
        read = await client.get("/api/v1/units")
    assert ready.status_code == 503
    assert ready.headers["retry-after"]
    detail = ready.json()["detail"]
    assert f"{secondary.server} is not taking writes (a standby, or read-only)" in detail
    assert f"127.0.0.1:{nowhere} is unreachable" in detail
    assert read.status_code == 503
    assert read.json()["type"] == "urn:tthc:problem:database-unavailable"
    assert read.headers["retry-after"]


async def test_an_old_primary_started_again_by_hand_is_never_written_to(
    app: FastAPI, cluster: Cluster, portal: AsyncClient
) -> None:
    old = await in_thread(cluster.primary)
    new = other(cluster, old)
    await in_thread(cluster.kill, old)
    await in_thread(cluster.wait_for, lambda: cluster.primary() is new, f"{new.name} to be promoted")
    await send_retrying(portal, "after-the-failover")

    # Started without its keeper, the old primary comes up as a primary on its old timeline: it
    # holds what the cluster had when it died, and would take writes the cluster never sees.
    await in_thread(cluster.pg_ctl, old, "-l", str(cluster.directory / "by-hand.log"), "-w", "start")
    try:
        assert (await in_thread(query, old.url(), "SELECT pg_is_in_recovery()"))[0][0] is False
        before = (await in_thread(query, old.url(), "SELECT count(*) FROM dossier_events"))[0][0]

        await app.state.engine.dispose()  # every connection from here on is a new one
        await send_retrying(portal, "beside-a-diverged-primary")

        # A process that has not seen the newer timeline asks every server and takes the newest.
        fresh = create_app(settings_for(cluster))
        async with fresh.router.lifespan_context(fresh):
            async with AsyncClient(transport=ASGITransport(app=fresh), base_url="http://t") as client:
                assert (await client.get("/readyz")).status_code == 200
            async with fresh.state.sessionmaker() as session:
                server = (await session.execute(select(func.inet_server_port()))).scalar_one()
        assert server == new.port

        assert (await in_thread(query, old.url(), "SELECT count(*) FROM dossier_events"))[0][0] == before
        beside = "SELECT count(*) FROM dossier_events WHERE event_id LIKE 'beside-%'"
        on_new = await in_thread(query, new.url(), beside)
        assert on_new[0][0] == EVENTS_PER_BATCH
    finally:
        await in_thread(cluster.pg_ctl, old, "-m", "fast", "-w", "stop")
    # Its keeper rewinds it onto the new timeline and it follows as a secondary.
    await in_thread(cluster.rejoin, old)
    await in_thread(cluster.wait_until_in_sync)


async def send_acknowledged(
    client: AsyncClient, events: list[dict[str, Any]], ledger: Ledger | None = None
) -> tuple[Response, int]:
    """Send the batch until it is acknowledged, again after each 503 (within a minute); the answer
    and how many sends it took."""
    tries = 0
    async with asyncio.timeout(60):
        while True:
            tries += 1
            response = await client.post(BATCH, json={"events": events})
            if response.status_code == 200:
                return response, tries
            assert response.status_code == 503, response.text
            assert response.headers["content-type"] == "application/problem+json"
            assert int(response.headers["retry-after"]) > 0
            if ledger is not None:
                ledger.unavailable += 1
            await asyncio.sleep(0.2)


async def send_retrying(client: AsyncClient, name: str) -> None:
    """One batch of new dossiers, sent until it is acknowledged."""
    await send_acknowledged(
        client, [received(f"{name}-{item}", "2023-08-02T09:00:00+07:00") for item in range(EVENTS_PER_BATCH)]
    )
