"""Counters kept during ingestion == counters rebuilt from the dossiers == SPEC §5 computed directly."""

import asyncio
import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from random import Random
from typing import Any

import pytest
from httpx import ASGITransport, AsyncClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.calendar.periods import Scheme, choose_period
from app.calendar.working_time import TimeUnit, WorkingCalendar
from app.clients.schemas import ClientCreate
from app.clients.service import create_client, get_client_by_name
from app.core.base import Base
from app.core.config import Settings
from app.core.security import Principal
from app.core.timezone import VIETNAM
from app.dossiers.bulk import Source, import_file
from app.dossiers.counters import COUNTED_COLUMNS, load_facts
from app.dossiers.facts import Pause
from app.dossiers.history import HistoryEvent, facts_of, replay
from app.dossiers.ingestion.work import Ingestion
from app.dossiers.lifecycle import DossierState, Reception
from app.dossiers.models import Outcome
from app.main import create_app
from app.stats.service import unit_scope
from tests.conftest import TEST_WAITS, assert_counters_equal_a_rebuild
from tests.stats.reference import reference_counts

UNITS = [
    {"code": "31", "name": "Hải Phòng", "level": "province"},
    {"code": "313", "name": "Kiến Thụy", "level": "district", "parent_code": "31", "valid_to": "2025-06-30"},
    {"code": "314", "name": "Tiên Lãng", "level": "district", "parent_code": "31", "valid_to": "2025-06-30"},
    {"code": "11680", "name": "Núi Đối", "level": "commune", "parent_code": "313", "valid_to": "2025-06-30"},
    {
        "code": "11683",
        "name": "Thụy Hương",
        "level": "commune",
        "parent_code": "313",
        "valid_to": "2025-06-30",
    },
    {
        "code": "11737",
        "name": "Tiên Thắng",
        "level": "commune",
        "parent_code": "314",
        "valid_to": "2025-06-30",
    },
    {"code": "11999", "name": "Xã mới", "level": "commune", "parent_code": "31"},
]
PROCEDURES: dict[str, dict[str, Any]] = {
    "district": {"code": "2.000001", "value": 3, "unit": "working_days", "sector": "xay-dung"},
    "commune": {"code": "1.000001", "value": 6, "unit": "working_hours", "sector": "ho-tich"},
    "commune-days": {"code": "1.000002", "value": 2, "unit": "days", "sector": "tu-phap"},
}
LEVEL = {u["code"]: u["level"] for u in UNITS}
ORIGIN = datetime(2023, 6, 1, tzinfo=VIETNAM)

# (hours before the request, hours the papers take or None: still waiting, a further request while waiting)
pause = st.tuples(st.floats(0.1, 200), st.one_of(st.none(), st.floats(0.1, 300)), st.booleans())
dossier = st.fixed_dictionaries(
    {
        "unit": st.sampled_from(["313", "314", "11680", "11683", "11737", "11999"]),
        "days_procedure": st.booleans(),
        "received_minutes": st.integers(0, 150 * 24 * 60),
        "channel": st.sampled_from(["direct", "postal", "partial", "full"]),
        "due_hours": st.one_of(st.none(), st.floats(1, 400)),
        "refused": st.sampled_from([False] * 9 + [True]),
        "pauses": st.lists(pause, max_size=2),
        "ending": st.sampled_from(
            [None, "resolved", "stopped", "returned", "withdrawn", "resolved+returned"]
        ),
        "ending_hours": st.floats(0.1, 700),
    }
)
period_choice = st.one_of(
    st.tuples(
        st.sampled_from(["2023", "2023-H2", "2023-Q3", "2023-Q4", "2023-07", "2023-08", "2023-09"]),
        st.sampled_from(list(Scheme)),
    ),
    st.tuples(st.dates(date(2023, 5, 20), date(2023, 12, 31)), st.integers(0, 120)),
)


def events_of(number: int, spec: dict[str, Any], *, processing: bool = False) -> list[dict[str, Any]]:
    code = f"P-{number:04d}"
    clock = ORIGIN + timedelta(minutes=spec["received_minutes"])
    level = LEVEL[spec["unit"]]
    procedure = PROCEDURES[
        "district" if level == "district" else "commune-days" if spec["days_procedure"] else "commune"
    ]
    first: dict[str, Any] = {
        "dossier_code": code,
        "type": "refused" if spec["refused"] else "received",
        "occurred_at": clock.isoformat(),
        "procedure_code": procedure["code"],
        "unit_code": spec["unit"],
        "channel": "online" if spec["channel"] in ("partial", "full") else spec["channel"],
    }
    if spec["channel"] in ("partial", "full"):
        first["online_level"] = spec["channel"]
    if spec["due_hours"] is not None and not spec["refused"]:
        first["due_at"] = (clock + timedelta(hours=spec["due_hours"])).replace(microsecond=0).isoformat()
    events = [first]
    if processing and not spec["refused"]:
        events.append(
            {
                "dossier_code": code,
                "type": "processing",
                "occurred_at": (clock + timedelta(minutes=1)).isoformat(),
            }
        )
    if not spec["refused"]:
        waiting = False
        for gap, length, again in spec["pauses"]:
            clock = (clock + timedelta(hours=gap)).replace(microsecond=0)
            events.append(
                {"dossier_code": code, "type": "supplement_requested", "occurred_at": clock.isoformat()}
            )
            waiting = True
            if again:  # SPEC §3: it counts, and the pause runs on from the first request
                clock = (clock + timedelta(hours=(length or 50) / 2)).replace(microsecond=0)
                events.append(
                    {"dossier_code": code, "type": "supplement_requested", "occurred_at": clock.isoformat()}
                )
            if length is None:
                break
            clock = (clock + timedelta(hours=length)).replace(microsecond=0)
            events.append(
                {"dossier_code": code, "type": "supplement_received", "occurred_at": clock.isoformat()}
            )
            waiting = False
        del waiting
        if spec["ending"]:
            for kind in spec["ending"].split("+"):
                clock = (clock + timedelta(hours=spec["ending_hours"])).replace(microsecond=0)
                events.append({"dossier_code": code, "type": kind, "occurred_at": clock.isoformat()})
    for position, event in enumerate(events):
        event["event_id"] = f"{code}-{position}"
    return events


async def _in_empty_app(database_url: str, check: Any, *args: Any) -> None:
    """Run ``check(application, *args)`` on an emptied database (hypothesis reuses the backend)."""
    application = create_app(
        Settings(
            database_url=database_url, rate_limit_client_writes="", rate_limit_ip_writes="", **TEST_WAITS
        )
    )
    async with application.router.lifespan_context(application):
        await _empty(application)
        try:
            await check(application, *args)
        finally:
            await _empty(application)


async def _empty(application: Any) -> None:
    async with application.state.engine.begin() as connection:
        for table in reversed(Base.metadata.sorted_tables):
            await connection.execute(table.delete())


async def _setup(application: Any) -> dict[str, str]:
    """A loader client, the units, sectors and procedures; returns the loader's headers."""
    async with application.state.sessionmaker() as session, session.begin():
        _client, secret = await create_client(
            session,
            ClientCreate.model_validate(
                {
                    "name": "loader",
                    "scopes": ["units:write", "catalogue:write", "dossiers:write", "dossiers:read"],
                }
            ),
            None,
        )
    headers = {"Authorization": f"Bearer {secret}"}
    async with AsyncClient(
        transport=ASGITransport(app=application), base_url="http://t", headers=headers
    ) as http:
        for unit in UNITS:
            assert (await http.post("/api/v1/units", json=unit)).status_code == 201
        for sector in ("xay-dung", "ho-tich", "tu-phap"):
            assert (
                await http.post("/api/v1/sectors", json={"code": sector, "name": sector})
            ).status_code == 201
        for level, p in PROCEDURES.items():
            body = {
                "code": p["code"],
                "name": p["code"],
                "sector_code": p["sector"],
                "levels": ["district" if level == "district" else "commune"],
                "channels": ["direct"],
                "processing_time": {"value": p["value"], "unit": p["unit"]},
            }
            assert (await http.post("/api/v1/procedures", json=body)).status_code == 201
    return headers


async def _check(application: Any, dossiers: list[dict[str, Any]], periods: list[Any]) -> None:
    headers = await _setup(application)
    async with AsyncClient(
        transport=ASGITransport(app=application), base_url="http://t", headers=headers
    ) as http:
        events = [e for number, spec in enumerate(dossiers) for e in events_of(number, spec)]
        results = (await http.post("/api/v1/dossier-events/batch", json={"events": events})).json()["results"]
        assert {r["status"] for r in results} <= {"created"}, [r for r in results if r["status"] != "created"]

        async def answers() -> list[dict[str, Any]]:
            found = []
            for choice, unit in periods:
                params: dict[str, Any] = {"unit": unit, "group_by": "unit"}
                if isinstance(choice[0], str):
                    params |= {"period": choice[0], "scheme": choice[1].value}
                else:
                    params |= {
                        "from": choice[0].isoformat(),
                        "to": (choice[0] + timedelta(days=choice[1])).isoformat(),
                    }
                response = await http.get("/api/v1/stats/dossiers", params=params)
                assert response.status_code == 200, response.text
                found.append(response.json())
            return found

        incremental = await answers()
        await assert_counters_equal_a_rebuild(application)

        async with application.state.sessionmaker() as session:
            facts = await load_facts(session, (await session.execute(select(*COUNTED_COLUMNS))).all())
            for body, (choice, unit) in zip(incremental, periods, strict=True):
                scope = await unit_scope(session, unit)
                if isinstance(choice[0], str):
                    period = choose_period(choice[0], None, None, choice[1])
                else:
                    period = choose_period(
                        None, choice[0], choice[0] + timedelta(days=choice[1]), Scheme.calendar
                    )
                calendar = application.state.calendar
                mine = [f for f in facts if f.unit_code in scope]
                assert body["total"]["counts"] == reference_counts(
                    mine, period.start_at, period.end_at, calendar
                )
                for row in body["rows"]:
                    code = row["key"]["unit"]
                    expected = reference_counts(
                        [f for f in mine if f.unit_code == code], period.start_at, period.end_at, calendar
                    )
                    assert row["counts"] == expected, (code, period)


units = st.sampled_from(["31", "313", "314", "11680", "11999"])


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    dossiers=st.lists(dossier, min_size=1, max_size=40),
    periods=st.lists(st.tuples(period_choice, units), min_size=1, max_size=4),
)
def test_counters_agree_with_the_reference_calculation(
    database_url: str, dossiers: list[dict[str, Any]], periods: list[Any]
) -> None:
    asyncio.run(_in_empty_app(database_url, _check, dossiers, periods))


# --- late, out-of-order, resent and corrected delivery -------------------------------------------


def _reception(event: dict[str, Any]) -> Reception:
    procedure = next(p for p in PROCEDURES.values() if p["code"] == event["procedure_code"])
    return Reception(
        unit_level=LEVEL[event["unit_code"]],
        sector_code=procedure["sector"],
        procedure_levels=(LEVEL[event["unit_code"]],),
        processing_value=procedure["value"],
        processing_unit=TimeUnit(procedure["unit"]),
        procedure_abolished=False,
    )


def expected_dossiers(
    events: list[dict[str, Any]], calendar: WorkingCalendar
) -> dict[str, tuple[DossierState, list[Pause]]]:
    """Each dossier as its true events make it, taken in time order: the yardstick of any delivery."""
    by_dossier: dict[str, list[HistoryEvent]] = {}
    receptions: dict[str, dict[str, Any]] = {}
    for position, event in enumerate(events):
        if event["type"] in ("received", "refused"):
            receptions[event["dossier_code"]] = event
        by_dossier.setdefault(event["dossier_code"], []).append(
            HistoryEvent.from_payload(position, 1, {**event, "occurred_at": event["occurred_at"]})
        )
    found = {}
    for code, history in by_dossier.items():
        replayed = replay(
            code,
            history,
            reception_of=lambda _event, code=code: _reception(receptions[code]),  # type: ignore[misc]
            may_act=lambda _event, _unit: None,
            calendar=calendar,
        )
        assert replayed.state is not None
        assert all(v.outcome is Outcome.applied for v in replayed.verdicts.values()), code
        found[code] = (replayed.state, replayed.pauses)
    return found


_COMPARED = ("status", "due_at", "original_due_at", "finished_at", "on_time", "early", "supplement_count")


async def assert_history_in_time_order(
    http: AsyncClient, application: Any, events: list[dict[str, Any]]
) -> None:
    """Every dossier, every total of several periods and every counter is what the true events,
    taken in time order, make — whatever way and order they were delivered in."""
    calendar = application.state.calendar
    expected = expected_dossiers(events, calendar)
    for code, (state, _pauses) in expected.items():
        body = (await http.get(f"/api/v1/dossiers/{code}")).json()
        for name in _COMPARED:
            value = getattr(state, name)
            wanted = (
                value.astimezone(UTC).isoformat().replace("+00:00", "Z")
                if isinstance(value, datetime)
                else value
            )
            assert body[name] == wanted, (code, name)
    facts = [facts_of(state, pauses) for state, pauses in expected.values()]
    for label in ("2023-Q2", "2023-Q3", "2023-Q4", "2023-08", "2023"):
        period = choose_period(label, None, None, Scheme.calendar)
        response = await http.get("/api/v1/stats/dossiers", params={"period": label})
        assert response.json()["total"]["counts"] == reference_counts(
            facts, period.start_at, period.end_at, calendar
        ), label
    await assert_counters_equal_a_rebuild(application)


def wrong_reception(event: dict[str, Any], rng: Random) -> dict[str, Any]:
    """The reception as first sent wrong, before its correction (SPEC §4: a correction replaces the
    event whole): local time sent as UTC (7 hours late), a due date the true event does not carry,
    a refusal, or the true event's due date dropped."""
    mistakes = ["offset", "refusal", "due_at"]
    local_as_utc = datetime.fromisoformat(event["occurred_at"]).replace(tzinfo=UTC)
    if event["type"] == "refused":
        return {**event, "occurred_at": local_as_utc.isoformat()}
    mistake = rng.choice(mistakes)
    if mistake == "offset":
        wrong = {**event, "occurred_at": local_as_utc.isoformat()}
        if "due_at" in event:  # the same mistake in the due date, which stays after the reception
            wrong["due_at"] = datetime.fromisoformat(event["due_at"]).replace(tzinfo=UTC).isoformat()
        return wrong
    if mistake == "refusal":
        return {key: value for key, value in event.items() if key != "due_at"} | {"type": "refused"}
    if "due_at" in event:
        return {key: value for key, value in event.items() if key != "due_at"}
    bogus_due = datetime.fromisoformat(event["occurred_at"]) + timedelta(days=rng.randint(1, 60))
    return {**event, "due_at": bogus_due.isoformat()}


def field_delivery(events: list[dict[str, Any]], rng: Random) -> tuple[list[list[dict[str, Any]]], set[str]]:
    """The true events as a sync pipeline delivers them: shuffled, some first sent wrong and then
    corrected (revision 2), some bogus and then cancelled, some resent. Returns the packets (the
    messages a packet holds travel in one request) and the keys of the messages that must never
    be refused (the true events and their corrections).

    A reception sent wrong travels with its correction, and sometimes with the events that lie
    between the wrong instant and the true one: the outcome must not depend on the batching."""
    last_of: dict[str, str] = {}
    for event in events:
        last_of[event["dossier_code"]] = event["event_id"]
    packets: list[list[dict[str, Any]]] = []
    trusted: set[str] = set()
    between: dict[str, tuple[datetime, datetime, list[dict[str, Any]]]] = {}

    def key(message: dict[str, Any]) -> str:
        return f"{message['event_id']}@{message.get('revision', 1)}"

    for event in events:
        kind = event["type"]
        roll = rng.random()
        span = between.get(event["dossier_code"])
        packet = [event]
        if kind in ("received", "refused") and roll < 0.3:
            wrong = wrong_reception(event, rng)
            event = {**event, "revision": 2}
            packet = [wrong, event]
            low, high = sorted(datetime.fromisoformat(e["occurred_at"]) for e in (wrong, event))
            if low != high and rng.random() < 0.5:
                between[event["dossier_code"]] = (low, high, packet)
        elif roll < 0.2 and kind in ("processing", "supplement_requested", "supplement_received"):
            shifted = datetime.fromisoformat(event["occurred_at"]) + timedelta(hours=rng.uniform(-60, 60))
            packets.append([{**event, "occurred_at": shifted.isoformat()}])
            event = {**event, "revision": 2}
            packet = [event]
        elif (
            roll < 0.3
            and kind in ("resolved", "stopped", "withdrawn")
            and last_of[event["dossier_code"]] == event["event_id"]
        ):
            other = rng.choice([t for t in ("resolved", "stopped", "withdrawn") if t != kind])
            packets.append([{**event, "type": other}])
            event = {**event, "revision": 2}
            packet = [event]
        if span is not None and span[0] <= datetime.fromisoformat(event["occurred_at"]) <= span[1]:
            span[2].append(event)  # in the request of the wrong reception and its correction
        else:
            packets.append(packet)
        trusted.add(key(event))
        if rng.random() < 0.1:
            at = datetime.fromisoformat(event["occurred_at"]) + timedelta(hours=rng.uniform(-30, 30))
            bogus = {
                "event_id": f"{event['event_id']}-bogus",
                "dossier_code": event["dossier_code"],
                "type": "processing",
                "occurred_at": at.isoformat(),
            }
            packets += [[bogus], [{**bogus, "revision": 2, "cancelled": True}]]
            trusted.add(key(packets[-1][0]))
    for packet in packets:
        rng.shuffle(packet)
    rng.shuffle(packets)
    packets += rng.sample(packets, k=len(packets) // 5)
    return packets, trusted


async def send_in_batches(http: AsyncClient, packets: list[list[Any]], rng: Random) -> list[Any]:
    """The packets sent a random number (1–20) per batch request; every message's answer."""
    answers: list[Any] = []
    start = 0
    while start < len(packets):
        size = rng.randint(1, 20)
        chunk = [message for packet in packets[start : start + size] for message in packet]
        response = await http.post("/api/v1/dossier-events/batch", json={"events": chunk})
        assert response.status_code == 200, response.text
        answers += response.json()["results"]
        start += size
    return answers


async def _check_field_delivery(application: Any, dossiers: list[dict[str, Any]], rng: Random) -> None:
    headers = await _setup(application)
    events = [e for number, spec in enumerate(dossiers) for e in events_of(number, spec, processing=True)]
    packets, trusted = field_delivery(events, rng)
    messages = [message for packet in packets for message in packet]
    async with AsyncClient(
        transport=ASGITransport(app=application), base_url="http://t", headers=headers
    ) as http:
        answers = await send_in_batches(http, packets, rng)
        for message, answer in zip(messages, answers, strict=True):
            if f"{message['event_id']}@{message.get('revision', 1)}" in trusted:
                assert answer["status"] != "error", (message, answer)

        await assert_history_in_time_order(http, application, events)
        pending = (await http.get("/api/v1/dossier-events", params={"pending": "true"})).json()
        assert [e for e in pending["items"] if not e["event_id"].endswith("-bogus")] == []

        # The whole delivery again: every message is a duplicate.
        response = await http.post("/api/v1/dossier-events/batch", json={"events": messages[:1000]})
        assert {r["status"] for r in response.json()["results"]} == {"duplicate"}


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(dossiers=st.lists(dossier, min_size=1, max_size=25), seed=st.integers(0, 2**32 - 1))
def test_late_shuffled_and_corrected_delivery_equals_the_history_in_time_order(
    database_url: str, dossiers: list[dict[str, Any]], seed: int
) -> None:
    asyncio.run(_in_empty_app(database_url, _check_field_delivery, dossiers, Random(seed)))


async def _check_bulk_delivery(
    application: Any, dossiers: list[dict[str, Any]], rng: Random, folder: Path
) -> None:
    """The field delivery as a file for `tthc dossiers import`: what the events API gives."""
    await _setup(application)
    events = [e for number, spec in enumerate(dossiers) for e in events_of(number, spec, processing=True)]
    packets, trusted = field_delivery(events, rng)
    messages = [message for packet in packets for message in packet]
    path = folder / f"delivery-{rng.randrange(1 << 30)}.jsonl"
    path.write_text("".join(json.dumps(message) + "\n" for message in messages))
    async with application.state.sessionmaker() as session:
        client = await get_client_by_name(session, "loader")
    principal = Principal(client.id, client.name, frozenset(client.scopes), client.unit_code)

    def ingestion_of(session: AsyncSession) -> Ingestion:
        return Ingestion(
            session, principal, application.state.calendar, application.state.settings.secret_key
        )

    source = Source.of(path)
    await import_file(application.state.sessionmaker, ingestion_of, source, chunk_size=rng.randint(5, 80))
    rejected = [json.loads(line) for line in source.rejects.read_text().splitlines()]
    for reject in rejected:
        message = messages[reject["line"] - 1]
        assert f"{message['event_id']}@{message.get('revision', 1)}" not in trusted, (message, reject)
    async with AsyncClient(
        transport=ASGITransport(app=application), base_url="http://t", headers=await _reader(application)
    ) as http:
        await assert_history_in_time_order(http, application, events)
        pending = (await http.get("/api/v1/dossier-events", params={"pending": "true"})).json()
        assert [e for e in pending["items"] if not e["event_id"].endswith("-bogus")] == []


async def _reader(application: Any) -> dict[str, str]:
    async with application.state.sessionmaker() as session, session.begin():
        _client, secret = await create_client(
            session, ClientCreate.model_validate({"name": "reader", "scopes": ["dossiers:read"]}), None
        )
    return {"Authorization": f"Bearer {secret}"}


@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(dossiers=st.lists(dossier, min_size=1, max_size=25), seed=st.integers(0, 2**32 - 1))
def test_the_bulk_import_of_a_field_delivery_equals_the_history_in_time_order(
    database_url: str, tmp_path_factory: pytest.TempPathFactory, dossiers: list[dict[str, Any]], seed: int
) -> None:
    folder = tmp_path_factory.mktemp("delivery")
    asyncio.run(_in_empty_app(database_url, _check_bulk_delivery, dossiers, Random(seed), folder))


# --- the same histories as DVCQG whole-state records, mid-way and final --------------------------


def portal_time(instant: str) -> str:
    return datetime.fromisoformat(instant).astimezone(VIETNAM).strftime("%Y%m%d%H%M%S")


def record_of(code: str, events: list[dict[str, Any]]) -> dict[str, Any]:
    """The DongBoHoSoMC record a one-stop system sends for a dossier after these events."""
    if not events:
        return {"MaHoSo": code, "TrangThaiHoSo": 1}
    first = events[0]
    record: dict[str, Any] = {
        "MaHoSo": code,
        "MaTTHC": first["procedure_code"],
        "DonViXuLy": first["unit_code"],
        "KenhThucHien": {"direct": 1, "online": 2, "postal": 3}[first["channel"]],
        "DanhSachHoSoBoSung": [],
    }
    if first.get("online_level"):
        record["MucDo"] = {"partial": 3, "full": 4}[first["online_level"]]
    if first["type"] == "refused":
        return {**record, "TrangThaiHoSo": 3, "NgayTuChoi": portal_time(first["occurred_at"])}
    record |= {"TrangThaiHoSo": 2, "NgayTiepNhan": portal_time(first["occurred_at"])}
    pauses = record["DanhSachHoSoBoSung"]
    for event in events[1:]:
        at = portal_time(event["occurred_at"])
        kind = event["type"]
        if kind == "processing":
            record["TrangThaiHoSo"] = 4
        elif kind == "supplement_requested":
            pauses.append({"HoSoBoSungId": str(len(pauses) + 1), "NgayBoSung": at})
            record["TrangThaiHoSo"] = 5
        elif kind == "supplement_received":
            pauses[-1]["NgayTiepNhanBoSung"] = at
            record["TrangThaiHoSo"] = 4
        elif kind == "returned":
            record.setdefault("NgayKetThucXuLy", at)
            record |= {"NgayTra": at, "TrangThaiHoSo": 10}
        else:
            record |= {
                "NgayKetThucXuLy": at,
                "TrangThaiHoSo": {"withdrawn": 7, "stopped": 8, "resolved": 9}[kind],
            }
    if first.get("due_at"):
        record["NgayHenTra"] = portal_time(first["due_at"])
        if pauses:
            pauses[0]["NgayHenTraTruoc"] = record["NgayHenTra"]
    return record


_OPTIONAL = ("MucDo", "NgayHenTra", "NgayKetThucXuLy", "NgayTra", "NgayTuChoi", "NgayNopHoSo")


def loosened(record: dict[str, Any], rng: Random) -> dict[str, Any]:
    """The record as portals really send it (SPEC §4): absent optional fields as empty strings or
    nulls, status 10 with `NgayTra` and no `NgayKetThucXuLy` when the two are the same instant."""
    loose = {**record}
    for name in _OPTIONAL:
        if name not in loose and rng.random() < 0.3:
            loose[name] = rng.choice(["", None])
    same_end = loose.get("NgayKetThucXuLy") == loose.get("NgayTra")
    if loose.get("TrangThaiHoSo") == 10 and same_end and rng.random() < 0.5:
        loose["NgayKetThucXuLy"] = rng.choice(["", None, "absent"])
        if loose["NgayKetThucXuLy"] == "absent":
            del loose["NgayKetThucXuLy"]
    requests = loose.get("DanhSachHoSoBoSung")
    if requests == [] and rng.random() < 0.3:
        loose["DanhSachHoSoBoSung"] = rng.choice(["", None])
    elif requests:
        loose["DanhSachHoSoBoSung"] = [
            {**request, "NgayTiepNhanBoSung": rng.choice(["", None])}
            if "NgayTiepNhanBoSung" not in request and rng.random() < 0.5
            else request
            for request in requests
        ]
    return loose


async def _check_records(application: Any, dossiers: list[dict[str, Any]], rng: Random) -> None:
    headers = await _setup(application)
    histories = [events_of(number, spec, processing=True) for number, spec in enumerate(dossiers)]
    cuts = []
    for events in histories:
        start = datetime.fromisoformat(events[0]["occurred_at"]) - timedelta(hours=1)
        end = datetime.fromisoformat(events[-1]["occurred_at"])
        cuts.append(start + (end - start) * rng.random())
    mid_way = [
        [e for e in events if datetime.fromisoformat(e["occurred_at"]) <= cut]
        for events, cut in zip(histories, cuts, strict=True)
    ]

    async def deliver(http: AsyncClient, stage: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
        records = [loosened(record_of(f"P-{n:04d}", events), rng) for n, events in enumerate(stage)]
        rng.shuffle(records)
        response = await http.post(
            "/api/v1/sync/dvcqg", json={"service": "DongBoHoSoMC", "isUpdating": True, "data": records}
        )
        assert response.status_code == 200, response.text
        results = response.json()["results"]
        sent = {record["MaHoSo"]: record for record in records}
        assert [(r, sent[r["MaHoSo"]]) for r in results if r["status"] == "error"] == []
        return list(results)

    async with AsyncClient(
        transport=ASGITransport(app=application), base_url="http://t", headers=headers
    ) as http:
        await deliver(http, mid_way)
        await assert_history_in_time_order(http, application, [e for events in mid_way for e in events])
        await deliver(http, histories)
        await assert_history_in_time_order(http, application, [e for events in histories for e in events])
        assert {r["status"] for r in await deliver(http, histories)} == {"unchanged"}


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(dossiers=st.lists(dossier, min_size=1, max_size=25), seed=st.integers(0, 2**32 - 1))
def test_records_sent_mid_way_and_final_equal_the_history_in_time_order(
    database_url: str, dossiers: list[dict[str, Any]], seed: int
) -> None:
    asyncio.run(_in_empty_app(database_url, _check_records, dossiers, Random(seed)))
