"""Reading dossiers: filters, binding, and the citizen's look-up."""

from typing import Any

import pytest
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient

from app.core.config import Settings
from app.main import create_app
from tests.conftest import TEST_WAITS, KeyFactory
from tests.dossiers.conftest import dossier, received, send, step

pytestmark = pytest.mark.usefixtures("world")


@pytest.fixture
async def dossiers(portal: AsyncClient) -> None:
    results = await send(
        portal,
        received("KT-1", "2023-07-03T09:00:00+07:00", lookup_secret="482913"),
        step("KT-1", "resolved", "2023-07-04T09:00:00+07:00"),
        received("KT-2", "2023-08-01T09:00:00+07:00", procedure="2.000001", unit="313"),
        received("KT-3", "2023-08-15T09:00:00+07:00"),
        step("KT-3", "supplement_requested", "2023-08-16T09:00:00+07:00"),
        received("TL-1", "2023-09-20T09:00:00+07:00", unit="11737", lookup_secret="111111"),
    )
    assert {r["status"] for r in results} == {"created"}


async def codes(client: AsyncClient, **params: Any) -> list[str]:
    response = await client.get("/api/v1/dossiers", params=params)
    assert response.status_code == 200, response.text
    return [item["code"] for item in response.json()["items"]]


@pytest.mark.usefixtures("dossiers")
async def test_list_filters(portal: AsyncClient) -> None:
    assert await codes(portal) == ["KT-1", "KT-2", "KT-3", "TL-1"]
    assert await codes(portal, unit="313") == ["KT-1", "KT-2", "KT-3"]
    assert await codes(portal, unit="11737") == ["TL-1"]
    assert await codes(portal, procedure="2.000001") == ["KT-2"]
    assert await codes(portal, status="waiting_supplement") == ["KT-3"]
    assert await codes(portal, status="resolved") == ["KT-1"]
    assert await codes(portal, received_from="2023-08-01", received_to="2023-08-15") == ["KT-2", "KT-3"]
    # Open, not waiting, and past due now (these are all from 2023).
    assert await codes(portal, overdue="true") == ["KT-2", "TL-1"]
    assert await codes(portal, due_before="2023-08-09T00:00:00+07:00") == ["KT-2"]  # due 8 August 09:00
    assert await codes(portal, due_before="2023-08-08T09:00:00+07:00") == []
    assert (await portal.get("/api/v1/dossiers", params={"status": "lost"})).status_code == 422
    page = (await portal.get("/api/v1/dossiers", params={"limit": 3})).json()
    rest = (await portal.get("/api/v1/dossiers", params={"cursor": page["next_cursor"]})).json()
    assert [d["code"] for d in page["items"] + rest["items"]] == ["KT-1", "KT-2", "KT-3", "TL-1"]


@pytest.mark.usefixtures("dossiers")
async def test_dossier_detail(portal: AsyncClient) -> None:
    body = await dossier(portal, "KT-3")
    assert (body["status"], body["status_name"], body["waiting_supplement"], body["overdue"]) == (
        5,
        "waiting_supplement",
        True,
        False,
    )
    assert [(e["type"], e["occurred_at"]) for e in body["timeline"]] == [
        ("received", "2023-08-15T02:00:00Z"),
        ("supplement_requested", "2023-08-16T02:00:00Z"),
    ]
    assert body["procedure_code"] == "1.000894" and body["unit_code"] == "11680"


@pytest.mark.usefixtures("dossiers")
async def test_bound_reader_sees_only_its_units(app: FastAPI, api_key: KeyFactory) -> None:
    headers = await api_key("dossiers:read", unit="313", name="kien-thuy-reader")
    async with AsyncClient(transport=ASGITransport(app=app), base_url="http://t", headers=headers) as reader:
        assert await codes(reader) == ["KT-1", "KT-2", "KT-3"]
        assert (await reader.get("/api/v1/dossiers/KT-1")).status_code == 200
        hidden = await reader.get("/api/v1/dossiers/TL-1")
        missing = await reader.get("/api/v1/dossiers/NOPE")
        assert hidden.status_code == missing.status_code == 404
        assert hidden.json()["detail"] == "Not found"
        assert (await reader.get("/api/v1/dossiers", params={"unit": "314"})).status_code == 403


async def test_reading_dossiers_needs_the_read_scope(client: AsyncClient, api_key: KeyFactory) -> None:
    writer_only = await api_key("dossiers:write")
    assert (await client.get("/api/v1/dossiers", headers=writer_only)).status_code == 403
    assert (await client.get("/api/v1/dossiers")).status_code == 401


@pytest.mark.usefixtures("dossiers")
async def test_citizen_looks_up_a_dossier_with_the_receipt_pin(client: AsyncClient) -> None:
    found = await client.get("/api/v1/public/dossiers/KT-1", params={"secret": "482913"})
    assert found.status_code == 200
    assert found.json() == {
        "code": "KT-1",
        "status": 9,
        "status_name_vi": "Đã xử lý xong",
        "due_at": "2023-07-06T02:00:00Z",
        "new_return_at": None,
        "result_ready": True,
    }
    wrong = await client.get("/api/v1/public/dossiers/KT-1", params={"secret": "000000"})
    unknown = await client.get("/api/v1/public/dossiers/NOPE", params={"secret": "482913"})
    no_pin = await client.get("/api/v1/public/dossiers/KT-2", params={"secret": "482913"})
    assert wrong.status_code == unknown.status_code == no_pin.status_code == 404
    assert {r.json()["detail"] for r in (wrong, unknown, no_pin)} == {"No dossier matches this code and PIN"}
    assert (await client.get("/api/v1/public/dossiers/KT-1")).status_code == 422
    open_one = (await client.get("/api/v1/public/dossiers/TL-1", params={"secret": "111111"})).json()
    assert (open_one["status"], open_one["result_ready"]) == (2, False)


@pytest.mark.usefixtures("dossiers")
async def test_citizen_look_up_is_rate_limited(database_url: str) -> None:
    application = create_app(Settings(database_url=database_url, rate_limit_lookup="3/minute", **TEST_WAITS))
    async with (
        application.router.lifespan_context(application),
        AsyncClient(transport=ASGITransport(app=application), base_url="http://t") as http,
    ):
        statuses = [
            (await http.get("/api/v1/public/dossiers/KT-1", params={"secret": f"{n:06d}"})).status_code
            for n in range(4)
        ]
    assert statuses == [404, 404, 404, 429]


@pytest.mark.usefixtures("dossiers")
async def test_dossier_carries_an_etag(portal: AsyncClient) -> None:
    first = await portal.get("/api/v1/dossiers/KT-3")
    again = await portal.get("/api/v1/dossiers/KT-3", headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304
    await send(portal, step("KT-3", "supplement_received", "2023-08-17T09:00:00+07:00"))
    changed = await portal.get("/api/v1/dossiers/KT-3", headers={"If-None-Match": first.headers["etag"]})
    assert changed.status_code == 200
