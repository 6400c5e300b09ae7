"""The Kiến Thụy Q3 2023 press release (shared/reference), reproduced through the public API."""

from collections.abc import Iterator
from datetime import date, datetime, timedelta
from typing import Any

from httpx import AsyncClient

from app.calendar.working_time import WorkingCalendar
from app.core.timezone import VIETNAM

BATCH = 1000
calendar = WorkingCalendar()

UNITS = [
    {"code": "31", "name": "Thành phố Hải Phòng", "level": "province"},
    {
        "code": "313",
        "name": "Huyện Kiến Thụy",
        "level": "district",
        "parent_code": "31",
        "valid_to": "2025-06-30",
    },
    *(
        {"code": code, "name": name, "level": "commune", "parent_code": "313", "valid_to": "2025-06-30"}
        for code, name in (
            ("11680", "Thị trấn Núi Đối"),
            ("11683", "Xã Thụy Hương"),
            ("11686", "Xã Đại Đồng"),
        )
    ),
]
PROCEDURES = [
    {
        "code": "2.000908",
        "name": "Cấp giấy phép xây dựng nhà ở riêng lẻ",
        "sector_code": "xay-dung",
        "levels": ["district"],
        "channels": ["direct", "online"],
        "processing_time": {"value": 5, "unit": "working_days"},
        "effective_from": "2020-01-01",
    },
    {
        "code": "1.000894",
        "name": "Đăng ký kết hôn",
        "sector_code": "ho-tich",
        "levels": ["commune"],
        "channels": ["direct", "online"],
        "processing_time": {"value": 1, "unit": "working_days"},
        "effective_from": "2020-01-01",
    },
]


def working_days(first: date, last: date) -> list[date]:
    days = [first + timedelta(days=n) for n in range((last - first).days + 1)]
    return [day for day in days if calendar.is_working_day(day)]


def at(day: date, hour: int, minute: int = 0) -> str:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=VIETNAM).isoformat()


class History:
    """Writes dossiers' events, numbering codes and event ids."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.count = 0

    def dossier(
        self, unit: str, procedure: str, channel: str, received: str, finished: str | None = None
    ) -> None:
        self.count += 1
        code = f"KT-{self.count:06d}"
        event: dict[str, Any] = {
            "event_id": f"{code}-1",
            "dossier_code": code,
            "type": "received",
            "occurred_at": received,
            "procedure_code": procedure,
            "unit_code": unit,
            "channel": "online" if channel != "direct" else "direct",
        }
        if channel != "direct":
            event["online_level"] = channel
        self.events.append(event)
        if finished:
            self.events.append(
                {"event_id": f"{code}-2", "dossier_code": code, "type": "resolved", "occurred_at": finished}
            )

    def many(
        self, count: int, unit: str | Iterator[str], procedure: str, channel: str, days: list[date]
    ) -> None:
        """``count`` dossiers received in the quarter and resolved on time, two hours later."""
        for number in range(count):
            day = days[number % len(days)]
            place = unit if isinstance(unit, str) else next(unit)
            self.dossier(place, procedure, channel, at(day, 8, number % 50), at(day, 10, number % 50))


def cycle(codes: list[str]) -> Iterator[str]:
    while True:
        yield from codes


def quarter_history() -> list[dict[str, Any]]:
    history = History()
    quarter = working_days(date(2023, 7, 3), date(2023, 9, 22))
    # District level (unit 313, 5 working days): 10 carried over from June, resolved on time in July.
    for number in range(10):
        history.dossier(
            "313", "2.000908", "full", at(date(2023, 6, 28), 9, number), at(date(2023, 7, 3), 9, number)
        )
    history.many(553, "313", "2.000908", "partial", quarter)
    history.many(899 - 3 - 5, "313", "2.000908", "full", quarter)
    history.many(11, "313", "2.000908", "direct", quarter)
    for number in range(3):  # late: due 10 July 08:00, resolved 20 July
        history.dossier(
            "313", "2.000908", "full", at(date(2023, 7, 3), 8, number), at(date(2023, 7, 20), 9, number)
        )
    for number in range(5):  # still in progress at the end of the quarter, not yet due
        history.dossier("313", "2.000908", "full", at(date(2023, 9, 28), 9, number))
    # Commune level (1 working day): 37 carried over from Friday 30 June, resolved on Monday.
    communes = cycle(["11680", "11683", "11686"])
    for number in range(37):
        unit = next(communes)
        history.dossier(
            unit, "1.000894", "direct", at(date(2023, 6, 30), 15, number), at(date(2023, 7, 3), 9, number)
        )
    history.many(16509, communes, "1.000894", "partial", quarter)
    history.many(2253 - 9 - 2, communes, "1.000894", "full", quarter)
    history.many(698, communes, "1.000894", "direct", quarter)
    for number in range(9):  # late
        history.dossier(
            next(communes),
            "1.000894",
            "full",
            at(date(2023, 8, 1), 8, number),
            at(date(2023, 8, 3), 9, number),
        )
    for number in range(2):  # in progress
        history.dossier(next(communes), "1.000894", "full", at(date(2023, 9, 29), 16, number))
    return history.events


async def load_the_quarter(writer: AsyncClient) -> None:
    """Units, two procedures and the 20,970 dossiers of Kiến Thụy's third quarter of 2023."""
    for unit in UNITS:
        assert (await writer.post("/api/v1/units", json=unit)).status_code == 201
    for code, name in (("xay-dung", "Xây dựng"), ("ho-tich", "Hộ tịch")):
        assert (await writer.post("/api/v1/sectors", json={"code": code, "name": name})).status_code == 201
    for procedure in PROCEDURES:
        assert (await writer.post("/api/v1/procedures", json=procedure)).status_code == 201
    events = quarter_history()
    for start in range(0, len(events), BATCH):
        response = await writer.post(
            "/api/v1/dossier-events/batch", json={"events": events[start : start + BATCH]}
        )
        assert response.status_code == 200
        assert {r["status"] for r in response.json()["results"]} == {"created"}


async def test_kien_thuy_q3_2023_report_is_reproduced(writer: AsyncClient, client: AsyncClient) -> None:
    await load_the_quarter(writer)

    response = await client.get(
        "/api/v1/stats/dossiers", params={"unit": "313", "period": "2023-Q3", "group_by": "unit_level"}
    )
    assert response.status_code == 200
    body = response.json()
    assert body["period"] == {
        "label": "2023-Q3",
        "scheme": "calendar",
        "start": "2023-07-01T00:00:00+07:00",
        "end": "2023-10-01T00:00:00+07:00",
        "as_of": "2023-10-01T00:00:00+07:00",
    }
    rows = {row["key"]["unit_level"]: row for row in body["rows"]}
    district, commune = rows["district"], rows["commune"]

    def pick(counts: dict[str, int], *names: str) -> tuple[int, ...]:
        return tuple(counts[name] for name in names)

    names = ("carried_over", "received", "total", "resolved_on_time", "resolved_late", "in_progress")
    assert pick(district["counts"], *names) == (10, 1463, 1473, 1465, 3, 5)
    assert pick(district["counts"], "online", "online_partial", "online_full") == (1462, 553, 909)
    assert district["rates"]["on_time"] == 99.46
    assert district["rates"]["online"] == 99.25
    assert pick(commune["counts"], "total", "resolved_on_time", "resolved_late", "in_progress") == (
        19497,
        19486,
        9,
        2,
    )
    assert pick(commune["counts"], "online", "online_partial", "online_full") == (18762, 16509, 2253)
    assert commune["rates"]["on_time"] == 99.94
    assert commune["rates"]["online"] == 96.23
    assert body["total"]["counts"]["total"] == 1473 + 19497
    assert district["counts"]["in_progress_overdue"] == commune["counts"]["in_progress_overdue"] == 0
    assert district["rates"]["on_time_766"] == 99.80  # (1465 + 5) / 1473
