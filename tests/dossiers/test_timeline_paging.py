"""A dossier's timeline is paged: `GET /dossiers/{code}` shows its first events and the cursor that
goes on with `GET /dossiers/{code}/timeline`, and each event shows its latest corrections only."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from httpx import AsyncClient
from sqlalchemy import select

from app.dossiers.models import DossierEvent
from app.dossiers.schemas import CORRECTIONS_SHOWN, TIMELINE_SHOWN
from tests.conftest import KeyFactory
from tests.core.test_forged_cursors import forge
from tests.core.test_list_statements import counted_statements
from tests.dossiers.conftest import dossier, received, send, step

pytestmark = pytest.mark.usefixtures("world")

LONG = "LONG-1"
EVENTS = 130
RECEIVED_AT = datetime(2023, 8, 7, 1, tzinfo=UTC)


def timeline_of(code: str) -> str:
    return f"/api/v1/dossiers/{code}/timeline"


def _long_history() -> list[dict[str, Any]]:
    """A reception and supplement requests and returns, three to an instant: page boundaries fall
    inside a tie, which the row id breaks."""
    events = [received(LONG, RECEIVED_AT.isoformat(), channel="direct")]
    for number in range(EVENTS - 1):
        at = RECEIVED_AT + timedelta(hours=1, minutes=number // 3)
        kind = "supplement_requested" if number % 2 == 0 else "supplement_received"
        events.append(step(LONG, kind, at.isoformat(), event_id=f"{LONG}-{number}"))
    return events


@pytest.fixture
async def long_dossier(portal: AsyncClient) -> None:
    # Latest first, so that arrival (row id) order is not time order.
    results = await send(portal, *reversed(_long_history()))
    assert {r["status"] for r in results} <= {"created", "pending"}, results


async def time_order(app: FastAPI, code: str) -> list[str]:
    """The dossier's event ids as the database orders them: by instant, ties by row id."""
    async with app.state.sessionmaker() as session:
        query = select(DossierEvent.event_id).where(DossierEvent.dossier_code == code)
        in_time = list(await session.scalars(query.order_by(DossierEvent.occurred_at, DossierEvent.id)))
        # Otherwise a list in row id order would pass for one in time order.
        assert in_time != list(await session.scalars(query.order_by(DossierEvent.id)))
        return in_time


async def page_of(client: AsyncClient, code: str, **params: Any) -> dict[str, Any]:
    response = await client.get(timeline_of(code), params=params)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def walk(client: AsyncClient, code: str, limit: int, cursor: str | None = None) -> list[dict[str, Any]]:
    """Every entry from ``cursor`` on, ``limit`` at a time."""
    entries: list[dict[str, Any]] = []
    while True:
        page = await page_of(client, code, limit=limit, **({"cursor": cursor} if cursor else {}))
        assert len(page["items"]) <= limit
        entries += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return entries
        assert len(page["items"]) == limit


@pytest.mark.usefixtures("long_dossier")
async def test_the_dossier_shows_its_first_events_and_the_cursor_to_the_rest(
    app: FastAPI, portal: AsyncClient
) -> None:
    expected = await time_order(app, LONG)
    assert len(expected) == EVENTS and len(set(expected)) == EVENTS
    body = await dossier(portal, LONG)
    assert [entry["event_id"] for entry in body["timeline"]] == expected[:TIMELINE_SHOWN]
    assert body["timeline_next_cursor"] is not None

    rest = await walk(portal, LONG, 7, body["timeline_next_cursor"])
    assert [entry["event_id"] for entry in rest] == expected[TIMELINE_SHOWN:]

    # From the start, by pages of 7 (boundaries inside ties): every event once, in time order, as
    # the dossier shows it.
    everything = await walk(portal, LONG, 7)
    assert [entry["event_id"] for entry in everything] == expected
    assert everything[:TIMELINE_SHOWN] == body["timeline"]
    assert everything[TIMELINE_SHOWN:] == rest
    instants = [datetime.fromisoformat(entry["occurred_at"]) for entry in everything]
    assert instants == sorted(instants)

    assert (await page_of(portal, LONG, limit=EVENTS))["next_cursor"] is None


@pytest.mark.usefixtures("long_dossier")
async def test_a_dossier_read_is_cached_with_its_cursor(portal: AsyncClient) -> None:
    first = await portal.get(f"/api/v1/dossiers/{LONG}")
    assert first.status_code == 200
    again = await portal.get(f"/api/v1/dossiers/{LONG}", headers={"If-None-Match": first.headers["ETag"]})
    assert again.status_code == 304


async def test_a_short_timeline_has_no_next_cursor(portal: AsyncClient) -> None:
    await send(portal, received("SHORT", RECEIVED_AT.isoformat()))
    body = await dossier(portal, "SHORT")
    assert ([entry["event_id"] for entry in body["timeline"]], body["timeline_next_cursor"]) == (
        ["SHORT-received"],
        None,
    )
    assert await page_of(portal, "SHORT") == {"items": body["timeline"], "next_cursor": None}


async def test_an_event_shows_its_latest_corrections_and_how_many_there_are(portal: AsyncClient) -> None:
    many, few = 25, 2
    results = await send(
        portal,
        received("COR", RECEIVED_AT.isoformat(), channel="direct"),
        *[
            step(
                "COR", "processing", (RECEIVED_AT + timedelta(hours=1, minutes=n)).isoformat(), revision=n + 1
            )
            | {"event_id": "cor-processing"}
            for n in range(many + 1)
        ],
        *[
            step("COR", "supplement_requested", f"2023-08-08T0{n}:00:00Z", revision=n + 1)
            | {"event_id": "cor-supplement"}
            for n in range(few + 1)
        ],
    )
    assert [r["status"] for r in results] == ["created"] + (
        ["created"] + ["updated"] * many + ["created"] + ["updated"] * few
    ), results

    shown = {entry["event_id"]: entry for entry in (await dossier(portal, "COR"))["timeline"]}
    assert shown["cor-processing"]["corrections_total"] == many
    # The latest 20 (revisions 6→7 … 25→26), oldest first.
    assert [(c["from_revision"], c["to_revision"]) for c in shown["cor-processing"]["corrections"]] == [
        (revision, revision + 1) for revision in range(many - CORRECTIONS_SHOWN + 1, many + 1)
    ]
    assert shown["cor-processing"]["revision"] == many + 1
    assert shown["cor-supplement"]["corrections_total"] == few
    assert [c["to_revision"] for c in shown["cor-supplement"]["corrections"]] == [2, 3]
    assert (shown["COR-received"]["corrections_total"], shown["COR-received"]["corrections"]) == (0, [])

    # The timeline's own pages show the same, one event at a time.
    assert {entry["event_id"]: entry for entry in await walk(portal, "COR", 1)} == shown


async def test_a_timeline_page_costs_the_same_statements_at_any_size(
    app: FastAPI, portal: AsyncClient
) -> None:
    """Corrections are read for the page's events in one statement, not one per event."""
    events = [received("COST", RECEIVED_AT.isoformat(), channel="direct")]
    for number in range(6):
        at = (RECEIVED_AT + timedelta(hours=number + 1)).isoformat()
        events += [
            step("COST", "processing", at, event_id=f"cost-{number}", revision=revision)
            for revision in (1, 2, 3)
        ]
    await send(portal, *events)
    await page_of(portal, "COST")  # the key's last use is touched once, here
    counts = []
    for size in (2, 6):
        with counted_statements(app) as statements:
            page = await page_of(portal, "COST", limit=size)
        assert [entry["corrections_total"] for entry in page["items"]][1:] == [2] * (size - 1)
        counts.append(len(statements))
    assert counts[0] == counts[1], counts


@pytest.mark.usefixtures("long_dossier")
async def test_a_cursor_is_good_for_its_own_dossiers_timeline_only(app: FastAPI, portal: AsyncClient) -> None:
    await send(portal, received("OTHER", RECEIVED_AT.isoformat()))
    cursor = (await dossier(portal, LONG))["timeline_next_cursor"]
    listed = (await portal.get("/api/v1/dossiers", params={"limit": 1})).json()["next_cursor"]
    for code, foreign in (("OTHER", cursor), (LONG, listed), (LONG, "bm90IG91cnM.AAAA"), (LONG, "x")):
        response = await portal.get(timeline_of(code), params={"cursor": foreign})
        assert response.status_code == 422, (code, foreign, response.text)
        assert [error["field"] for error in response.json()["errors"]] == ["query.cursor"]

    # Signed with the key, the sort key's instant is read with its offset, as UTC: 09:01 in Vietnam
    # is 02:01Z, the supplements' second instant; past all its rows (no row id is larger) is the third.
    secret = app.state.settings.secret_key
    after = forge(secret, timeline_of(LONG), ["2023-08-07T09:01:00+07:00", 2**31 - 1])
    page = await page_of(portal, LONG, cursor=after, limit=1)
    assert page["items"][0]["occurred_at"] == "2023-08-07T02:02:00Z"
    # The calendar's ends, in UTC, are instants like any other.
    for instant, first in (
        ("0001-01-01T00:00:00+00:00", "2023-08-07T01:00:00Z"),
        ("9999-12-31T23:59:59Z", None),
    ):
        page = await page_of(portal, LONG, cursor=forge(secret, timeline_of(LONG), [instant, 0]), limit=1)
        assert (page["items"][0]["occurred_at"] if page["items"] else None) == first


async def test_the_timeline_is_hidden_where_the_dossier_is(portal: AsyncClient, api_key: KeyFactory) -> None:
    await send(portal, received("HIDDEN", RECEIVED_AT.isoformat()))  # in commune 11680, district 313
    for unit, status in (("314", 404), ("313", 200)):
        headers = await api_key("dossiers:read", unit=unit)
        for path in ("/api/v1/dossiers/HIDDEN", timeline_of("HIDDEN")):
            response = await portal.get(path, headers=headers)
            assert response.status_code == status, (unit, path, response.text)
    for path in ("/api/v1/dossiers/NOWHERE", timeline_of("NOWHERE")):
        assert (await portal.get(path)).status_code == 404, path
