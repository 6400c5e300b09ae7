"""A reproducible province: districts, communes, procedures, and dossiers with full lifecycles.

Dossiers spread over two years (2023–2024) with supplements, late ones, withdrawals and returns,
as the events a one-stop system would push.
"""

import random
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from typing import Any

from app.core.timezone import VIETNAM
from bench.catalogue import SECTORS

PROVINCE = {"code": "31", "name": "Thành phố Hải Phòng", "level": "province"}
DISTRICT_NAMES = ["Kiến Thụy", "Tiên Lãng", "Vĩnh Bảo", "An Lão", "Thủy Nguyên", "Cát Hải"]
COMMUNES_PER_DISTRICT = 10
START = date(2023, 1, 1)
DAYS = 730


def units() -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = [PROVINCE]
    for number, name in enumerate(DISTRICT_NAMES):
        district = f"{311 + number}"
        rows.append(
            {
                "code": district,
                "name": f"Huyện {name}",
                "level": "district",
                "parent_code": "31",
                "valid_to": "2025-06-30",
            }
        )
        for commune in range(COMMUNES_PER_DISTRICT):
            rows.append(
                {
                    "code": f"{11600 + number * 100 + commune:05d}",
                    "name": f"Xã {name} {commune + 1}",
                    "level": "commune",
                    "parent_code": district,
                    "valid_to": "2025-06-30",
                }
            )
    return rows


def procedures(count: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    rows = []
    for number in range(count):
        level = "commune" if number % 3 else "district"
        rows.append(
            {
                "code": f"9.{number:06d}",
                "name": f"Thủ tục thử nghiệm {number}",
                "sector_code": rng.choice(SECTORS)[0],
                "levels": [level],
                "channels": ["direct", "online", "postal"],
                "processing_time": {"value": rng.choice([1, 2, 3, 5, 7, 10, 15]), "unit": "working_days"},
                "online_service": rng.choice(["partial", "full"]),
                "effective_from": "2020-01-01",
            }
        )
    return rows


def _instant(rng: random.Random, day: date) -> datetime:
    return datetime(day.year, day.month, day.day, rng.randint(7, 17), rng.randint(0, 59), tzinfo=VIETNAM)


def dossier_events(
    count: int, procedure_rows: list[dict[str, Any]], seed: int
) -> Iterator[list[dict[str, Any]]]:
    """The events of each dossier, in order, one list per dossier."""
    rng = random.Random(seed)
    unit_rows = units()
    districts = [u["code"] for u in unit_rows if u["level"] == "district"]
    communes = [u["code"] for u in unit_rows if u["level"] == "commune"]
    by_level: dict[str, list[str]] = {"district": [], "commune": []}
    for procedure in procedure_rows:
        by_level[procedure["levels"][0]].append(procedure["code"])
    for number in range(count):
        code = f"H56-{number:08d}"
        level = "commune" if rng.random() < 0.9 else "district"
        unit = rng.choice(communes if level == "commune" else districts)
        received_at = _instant(rng, START + timedelta(days=rng.randrange(DAYS)))
        channel = rng.choices(["online", "direct", "postal"], [0.7, 0.28, 0.02])[0]
        received: dict[str, Any] = {
            "event_id": f"{code}-1",
            "dossier_code": code,
            "type": "received",
            "occurred_at": received_at.isoformat(),
            "procedure_code": rng.choice(by_level[level]),
            "unit_code": unit,
            "channel": channel,
            "fee_payable": rng.random() < 0.4,
            "digitized": rng.random() < 0.8,
            "lookup_secret": f"{rng.randrange(10**6):06d}",
        }
        if channel == "online":
            received["online_level"] = rng.choice(["partial", "full"])
            received["paid_online"] = rng.random() < 0.5
        events = [received]
        clock = received_at

        def later(hours: float) -> str:
            nonlocal clock
            clock = clock + timedelta(hours=hours)
            return clock.isoformat()

        if rng.random() < 0.15:
            events.append({"type": "supplement_requested", "occurred_at": later(rng.uniform(2, 30))})
            events.append({"type": "supplement_received", "occurred_at": later(rng.uniform(4, 60))})
        roll = rng.random()
        if roll < 0.03:
            events.append({"type": "withdrawn", "occurred_at": later(rng.uniform(1, 48))})
        elif roll < 0.98:
            # Mostly within a few days; now and then weeks late.
            hours = rng.uniform(1, 60) if rng.random() < 0.97 else rng.uniform(200, 600)
            events.append({"type": "resolved", "occurred_at": later(hours), "e_result": rng.random() < 0.3})
            if rng.random() < 0.6:
                events.append({"type": "returned", "occurred_at": later(rng.uniform(1, 72))})
        for position, event in enumerate(events[1:], start=2):
            event["event_id"] = f"{code}-{position}"
            event["dossier_code"] = code
        yield events
