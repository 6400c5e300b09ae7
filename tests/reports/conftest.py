"""Kiến Thụy's 2023 data as the press release of its third quarter describes it."""

from collections.abc import AsyncIterator

import pytest
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient

from tests import snapshots
from tests.conftest import KeyFactory
from tests.proposals.test_reference_report import propose_the_report
from tests.stats.test_reference_report import load_the_quarter

SECTOR_NAMES = {
    "tu-phap": "Tư pháp",
    "vh-tttt": "văn hóa - thể thao và gia đình, thông tin và truyền thông",
    "xd-ct-gt": "xây dựng, công thương, giao thông vận tải",
    "noi-vu": "nội vụ",
    "y-te": "y tế",
    "vh-ttgd": "Văn hóa - thể thao và gia đình",
    "cong-thuong": "công thương",
    "ld-tbxh": "lao động - thương binh và xã hội",
}


# By database (backend) in this process: the loaded quarter's rows and the writer's key among them.
_LOADED: dict[str, tuple[snapshots.Rows, str]] = {}


@pytest.fixture
async def kien_thuy(
    app: FastAPI, database_url: str, api_key: KeyFactory, writer: AsyncClient
) -> AsyncIterator[None]:
    """The quarter loaded through the API the first time, then restored from its rows (the test
    of the load itself is tests/stats/test_reference_report.py); ``writer`` holds the key kept in
    them."""
    loaded = _LOADED.get(database_url)
    if loaded is not None:
        rows, authorization = loaded
        await snapshots.restore(app, rows)
        writer.headers["Authorization"] = authorization
        yield
        return
    await load_the_quarter(writer)
    for code, name in SECTOR_NAMES.items():
        assert (await writer.post("/api/v1/sectors", json={"code": code, "name": name})).status_code == 201
    headers = await api_key("proposals:write", unit="313", name="kien-thuy")
    async with AsyncClient(
        transport=ASGITransport(app=app), base_url="http://t", headers=headers
    ) as district:
        await propose_the_report(writer, district)
    _LOADED[database_url] = (await snapshots.take(app), writer.headers["Authorization"])
    yield
