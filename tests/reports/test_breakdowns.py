"""Every "trong đó" breakdown of the report sums to the total it breaks down, on random data."""

import asyncio
import re
from typing import Any

from httpx import ASGITransport, AsyncClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.stats.test_properties import _in_empty_app, _setup, dossier, events_of

NUMBER = r"(\d[\d.]*)"
LEVEL = re.compile(
    rf"tổng số hồ sơ là {NUMBER} hồ sơ \(gồm {NUMBER} hồ sơ tiếp nhận trong kỳ, {NUMBER} hồ sơ chuyển sang "
    rf"từ kỳ trước\), trong đó: giải quyết đúng hạn là {NUMBER} hồ sơ \(đạt tỷ lệ [^)]*\), giải quyết quá "
    rf"hạn là {NUMBER} hồ sơ, đang giải quyết là {NUMBER} hồ sơ(?:, công dân rút hồ sơ là {NUMBER} hồ sơ)?\."
)
ONLINE = re.compile(
    rf"trực tuyến [^:]*? là {NUMBER} hồ sơ \(đạt tỷ lệ [^)]*\), trong đó: mức độ 3 \(một phần\) là {NUMBER} "
    rf"hồ sơ, mức độ 4 \(toàn trình\) là {NUMBER} hồ sơ"
)


def number(text: str | None) -> int:
    return int(text.replace(".", "")) if text else 0


async def _check(application: Any, dossiers: list[dict[str, Any]]) -> None:
    headers = await _setup(application)
    events = [e for n, spec in enumerate(dossiers) for e in events_of(n, spec)]
    async with AsyncClient(
        transport=ASGITransport(app=application), base_url="http://t", headers=headers
    ) as http:
        results = (await http.post("/api/v1/dossier-events/batch", json={"events": events})).json()["results"]
        assert {r["status"] for r in results} <= {"created"}
        for period in ("2023-Q3", "2023-Q4", "2023"):
            response = await http.get("/api/v1/reports/reform", params={"unit": "31", "period": period})
            assert response.status_code == 200, response.text
            text = response.text
            levels = LEVEL.findall(text)
            if "chưa tiếp nhận hồ sơ" not in text:
                assert levels, text
            for total, received, carried, on_time, late, open_, withdrawn in levels:
                assert number(received) + number(carried) == number(total), text
                assert number(on_time) + number(late) + number(open_) + number(withdrawn) == number(total), (
                    text
                )
            for online, partial, full in ONLINE.findall(text):
                assert number(partial) + number(full) == number(online), text
            assert "từ chối) là" not in text


@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(dossiers=st.lists(dossier, min_size=1, max_size=40))
def test_every_breakdown_sums_to_its_total(database_url: str, dossiers: list[dict[str, Any]]) -> None:
    asyncio.run(_in_empty_app(database_url, _check, dossiers))
