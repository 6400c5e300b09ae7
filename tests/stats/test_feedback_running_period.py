"""Feedback of a period still running is judged as of now (SPEC §8: E′ = min(E, now)): an item is
`overdue` only if its answer deadline lies before E′ — in /stats/feedback and in the report."""

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.calendar.working_time import TimeUnit, WorkingCalendar
from app.clients.schemas import ClientCreate
from app.clients.service import create_client
from app.core.timezone import VIETNAM
from tests.conftest import KeyFactory
from tests.feedback.test_feedback import feedback
from tests.stats.test_properties import _in_empty_app

world = pytest.mark.usefixtures("world")  # the examples below; the property test makes its own
QUARTER = {"unit": "313", "period": "2023-Q3"}
# Received on Monday 7 August 2023 at 09:00; 15 working days to answer: Monday 28 August, 09:00.
FRESH = feedback(external_ref="PAKN-FRESH", received_at="2023-08-07T09:00:00+07:00")


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


@pytest.fixture
async def desk(app: FastAPI, api_key: KeyFactory) -> AsyncIterator[AsyncClient]:
    headers = await api_key("feedback:write", unit="313", name="kien-thuy-desk")
    async with AsyncClient(transport=ASGITransport(app=app), base_url="http://t", headers=headers) as http:
        yield http


async def stats(client: AsyncClient, **extra: str) -> dict[str, Any]:
    response = await client.get("/api/v1/stats/feedback", params={**QUARTER, **extra})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def sentence(client: AsyncClient) -> str:
    """The report's sentence on feedback still open: how many, and how many of them overdue."""
    response = await client.get("/api/v1/reports/reform", params={**QUARTER, "format": "markdown"})
    assert response.status_code == 200, response.text
    text = response.text
    start = text.index("đến cuối kỳ còn")
    return text[start : text.index(")", start) + 1]


@world
async def test_an_item_received_an_hour_ago_is_not_overdue(
    app: FastAPI, desk: AsyncClient, client: AsyncClient
) -> None:
    app.state.clock = lambda: at("2023-08-07T10:00:30+07:00")  # an hour and a half later, in Q3
    created = await desk.post("/api/v1/feedback", json=FRESH)
    assert created.status_code == 201, created.text
    assert created.json()["answer_due_at"] == "2023-08-28T02:00:00Z"

    body = await stats(client)
    assert body["period"]["as_of"] == "2023-08-07T03:00:00Z"
    counts = body["total"]["counts"]
    assert (counts["received"], counts["open"], counts["overdue"]) == (1, 1, 0)
    by_channel = await stats(client, group_by="channel")
    assert [(row["key"], row["counts"]["overdue"]) for row in by_channel["rows"]] == [
        ({"channel": "portal"}, 0)
    ]
    assert await sentence(client) == "đến cuối kỳ còn 01 ý kiến đang xử lý (trong đó 00 quá hạn)"


@world
async def test_an_item_past_its_deadline_at_now_is_overdue(
    app: FastAPI, desk: AsyncClient, client: AsyncClient
) -> None:
    app.state.clock = lambda: at("2023-08-07T10:00:00+07:00")
    assert (await desk.post("/api/v1/feedback", json=FRESH)).status_code == 201
    first = await client.get("/api/v1/reports/reform", params={**QUARTER, "format": "markdown"})

    # Still in Q3, a day after the deadline: overdue now, and a poller revalidating the report learns it.
    app.state.clock = lambda: at("2023-08-29T10:00:00+07:00")
    counts = (await stats(client))["total"]["counts"]
    assert (counts["open"], counts["overdue"]) == (1, 1)
    later = await client.get(
        "/api/v1/reports/reform",
        params={**QUARTER, "format": "markdown"},
        headers={"If-None-Match": first.headers["etag"]},
    )
    assert later.status_code == 200
    assert await sentence(client) == "đến cuối kỳ còn 01 ý kiến đang xử lý (trong đó 01 quá hạn)"


@world
@pytest.mark.parametrize(
    ("now", "overdue"),
    [
        ("2023-08-28T09:00:59+07:00", 0),  # E′ is 09:00, the deadline itself: not before it
        ("2023-08-28T09:01:00+07:00", 1),
    ],
)
async def test_overdue_once_the_deadline_lies_before_now(
    app: FastAPI, desk: AsyncClient, client: AsyncClient, now: str, overdue: int
) -> None:
    assert (await desk.post("/api/v1/feedback", json=FRESH)).status_code == 201
    app.state.clock = lambda: at(now)
    assert (await stats(client))["total"]["counts"]["overdue"] == overdue


@world
async def test_an_ended_quarter_is_judged_at_its_end(
    app: FastAPI, desk: AsyncClient, client: AsyncClient
) -> None:
    assert (await desk.post("/api/v1/feedback", json=FRESH)).status_code == 201
    # Received on 25 September, answer due in mid-October: still within its deadline when Q3 ends.
    late_september = feedback(external_ref="PAKN-SEPT", received_at="2023-09-25T09:00:00+07:00")
    assert (await desk.post("/api/v1/feedback", json=late_september)).status_code == 201

    for now in ("2023-10-20T10:00:00+07:00", "2026-11-27T10:00:00+07:00"):  # both past its deadline
        app.state.clock = lambda now=now: at(now)
        body = await stats(client)
        assert body["period"]["as_of"] == body["period"]["end"]
        counts = body["total"]["counts"]
        assert (counts["received"], counts["open"], counts["overdue"]) == (2, 2, 1)
        assert await sentence(client) == "đến cuối kỳ còn 02 ý kiến đang xử lý (trong đó 01 quá hạn)"


# --- property: random feedback, an injected now, against SPEC §8 computed directly ---------------

NAMES = ("received", "answered_on_time", "answered_late", "rejected", "open", "overdue")
MINUTE = timedelta(minutes=1)
# (running quarter, its first day, the first day after it, the quarter before it, that one's first day)
QUARTERS = [
    ("2023-Q3", date(2023, 7, 1), date(2023, 10, 1), "2023-Q2", date(2023, 4, 1)),
    ("2024-Q1", date(2024, 1, 1), date(2024, 4, 1), "2023-Q4", date(2023, 10, 1)),  # Tết in February
    ("2024-Q2", date(2024, 4, 1), date(2024, 7, 1), "2024-Q1", date(2024, 1, 1)),  # 30 April, 1 May
]
item = st.fixed_dictionaries(
    {
        # recent: within 25 days before now, mostly still within its 15 working days to answer;
        # previous_end: the last 25 days of the quarter before; before: carried into that quarter.
        "when": st.sampled_from(["recent"] * 3 + ["previous_end"] * 2 + ["anywhere", "before"]),
        "offset": st.floats(0, 1),
        "fate": st.sampled_from(["open"] * 3 + ["answered", "answered", "rejected", "published"]),
        "via": st.sampled_from([None, "processing", "info_requested"]),
        "close": st.floats(0, 1),
        "channel": st.sampled_from(["portal", "direct", "hotline", "mail"]),
        "subject": st.sampled_from(["unit", "officer"]),
    }
)
scenario = st.fixed_dictionaries(
    {
        "quarter": st.sampled_from(QUARTERS),
        "now": st.floats(0, 1),
        # now pinned a minute before, at, or a minute after the answer deadline of an open item
        # (received in the running quarter), or (None) anywhere in the quarter
        "pin": st.tuples(st.floats(0, 1), st.sampled_from([None, None, 0, 0, -1, 1])),
        "items": st.lists(item, min_size=1, max_size=15),
        "range": st.tuples(st.floats(0, 1), st.integers(0, 100)),
    }
)


def midnight(day: date) -> datetime:
    return datetime.combine(day, time.min, VIETNAM)


def minutes_into(start: datetime, end: datetime, fraction: float) -> datetime:
    """A whole minute in [start, end], ``fraction`` of the way."""
    span = int((end - start) / MINUTE)
    return start + MINUTE * min(span, int(fraction * span))


@dataclass
class Item:
    received: datetime
    due: datetime
    channel: str
    subject: str
    moves: list[tuple[str, datetime]] = field(default_factory=list)
    answered: datetime | None = None
    rejected: datetime | None = None


def resolve(spec: dict[str, Any], calendar: WorkingCalendar) -> tuple[datetime, list[Item]]:
    """The injected now and the items, as instants; every event lies strictly before now."""
    _label, first, after, _previous, previous_first = spec["quarter"]
    start, end = midnight(first), midnight(after)
    pinned: list[Item] = []
    fraction, shift = spec["pin"]
    if shift is not None:
        received = minutes_into(start, end - timedelta(days=40), fraction)
        due = calendar.due_at(received, 15, TimeUnit.working_days)
        now = due + MINUTE * shift
        pinned.append(Item(received, due, "portal", "unit"))
    else:
        now = minutes_into(start, end - MINUTE, spec["now"])
    assert start <= now < end
    windows = {
        "recent": (now - timedelta(days=25), now - MINUTE),
        "previous_end": (start - timedelta(days=25), start - MINUTE),
        "anywhere": (midnight(previous_first) - timedelta(days=20), now - MINUTE),
        "before": (midnight(previous_first) - timedelta(days=40), midnight(previous_first) - MINUTE),
    }
    items = pinned
    for one in spec["items"]:
        received = minutes_into(*windows[one["when"]], one["offset"])
        found = Item(
            received, calendar.due_at(received, 15, TimeUnit.working_days), one["channel"], one["subject"]
        )
        closed = minutes_into(received, now - MINUTE, one["close"])  # never at now itself
        if one["via"] is not None:
            found.moves.append((one["via"], received + (closed - received) / 2))
        if one["fate"] == "rejected":
            found.rejected = closed
            found.moves.append(("rejected", closed))
        elif one["fate"] in ("answered", "published"):
            found.answered = closed
            found.moves.append(("answered", closed))
            if one["fate"] == "published":
                found.moves.append(("published", minutes_into(closed, now - MINUTE, 0.5)))
        items.append(found)
    return now, items


def expected_counts(items: list[Item], start: datetime, end: datetime, now: datetime) -> dict[str, int]:
    """SPEC §8 over [S, E): received, answered on time or late, rejected in it; open at E′ = min(E, now)
    (received before E′, not answered or rejected before it), and overdue when the answer deadline
    lies before E′."""
    judged = min(end, now)
    counts = dict.fromkeys(NAMES, 0)
    for one in items:
        counts["received"] += start <= one.received < end
        if one.answered is not None and start <= one.answered < end:
            counts["answered_on_time" if one.answered <= one.due else "answered_late"] += 1
        counts["rejected"] += one.rejected is not None and start <= one.rejected < end
        closed = one.answered or one.rejected
        if one.received < judged and (closed is None or closed >= judged):
            counts["open"] += 1
            counts["overdue"] += one.due < judged
    return counts


def utc_text(instant: datetime) -> str:
    return instant.astimezone(UTC).isoformat().replace("+00:00", "Z")


async def _check_feedback(application: Any, spec: dict[str, Any]) -> None:
    async with application.state.sessionmaker() as session, session.begin():
        _client, secret = await create_client(
            session,
            ClientCreate.model_validate({"name": "desk", "scopes": ["units:write", "feedback:write"]}),
            None,
        )
    now, items = resolve(spec, application.state.calendar)
    async with AsyncClient(
        transport=ASGITransport(app=application),
        base_url="http://t",
        headers={"Authorization": f"Bearer {secret}"},
    ) as http:
        unit = {"code": "31", "name": "Hải Phòng", "level": "province"}
        assert (await http.post("/api/v1/units", json=unit)).status_code == 201
        for number, one in enumerate(items):
            body = {
                **feedback(external_ref=f"PAKN-{number}", received_at=one.received.isoformat()),
                "unit_code": "31",
                "channel": one.channel,
                "subject": one.subject,
                "procedure_code": None,
                "officer": "Cán bộ A" if one.subject == "officer" else None,
            }
            created = await http.post("/api/v1/feedback", json=body)
            assert created.status_code == 201, created.text
            assert created.json()["answer_due_at"] == utc_text(one.due), one
            for to, when in one.moves:
                moved = await http.post(
                    f"/api/v1/feedback/{created.json()['id']}/transitions",
                    json={"to": to, "occurred_at": when.isoformat()},
                )
                assert moved.status_code == 200, moved.text

        application.state.clock = lambda: now.astimezone(UTC)
        label, first, after, previous, previous_first = spec["quarter"]
        fraction, days = spec["range"]
        since = minutes_into(midnight(previous_first), now, fraction).date()
        periods = [
            ({"period": label}, midnight(first), midnight(after)),
            ({"period": previous}, midnight(previous_first), midnight(first)),
            (
                {"from": since.isoformat(), "to": (since + timedelta(days=days)).isoformat()},
                midnight(since),
                midnight(since + timedelta(days=days + 1)),
            ),
        ]
        answers = []
        for params, start, end in periods:
            response = await http.get("/api/v1/stats/feedback", params={**params, "unit": "31"})
            assert response.status_code == 200, response.text
            answer = response.json()
            assert datetime.fromisoformat(answer["period"]["as_of"]) == min(end, now), params
            assert answer["total"]["counts"] == expected_counts(items, start, end, now), (params, now)
            by_channel = await http.get(
                "/api/v1/stats/feedback", params={**params, "unit": "31", "group_by": "channel"}
            )
            rows = {row["key"]["channel"]: row["counts"] for row in by_channel.json()["rows"]}
            wanted = {
                channel: expected_counts([i for i in items if i.channel == channel], start, end, now)
                for channel in {i.channel for i in items}
            }
            assert {k: v for k, v in rows.items() if any(v.values())} == {
                k: v for k, v in wanted.items() if any(v.values())
            }, params
            answers.append(answer["total"]["counts"])
        # What was open when the quarter before ended, plus what came in, less what was closed.
        running, before = answers[0], answers[1]
        closed = running["answered_on_time"] + running["answered_late"] + running["rejected"]
        assert running["open"] == before["open"] + running["received"] - closed


@settings(
    max_examples=10,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(spec=scenario)
def test_feedback_counts_of_a_running_quarter_agree_with_spec(
    database_url: str, spec: dict[str, Any]
) -> None:
    asyncio.run(_in_empty_app(database_url, _check_feedback, spec))
