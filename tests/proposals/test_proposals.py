"""Reform proposals: the workflow of SPEC §7, its effects on the catalogue, and its statistics."""

from collections.abc import AsyncIterator
from typing import Any

import pytest
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient

from tests.conftest import KeyFactory
from tests.dossiers.conftest import UNITS as HISTORICAL_UNITS

PROPOSALS = "/api/v1/proposals"


def procedure(code: str, sector: str, levels: list[str] | None = None, fee: int = 50000) -> dict[str, Any]:
    return {
        "code": code,
        "name": f"Thủ tục {code}",
        "sector_code": sector,
        "levels": levels or ["district", "commune"],
        "channels": ["direct"],
        "processing_time": {"value": 5, "unit": "working_days"},
        "fees": [{"name": "Lệ phí", "amount_vnd": fee}],
        "effective_from": "2020-01-01",
    }


SECTORS = ["tu-phap", "vh-tttt", "xd-ct-gt", "noi-vu", "y-te", "vh-ttgd", "cong-thuong", "ld-tbxh"]


@pytest.fixture
async def catalogue(writer: AsyncClient) -> None:
    units = [unit for unit in HISTORICAL_UNITS if unit["code"] != "11737"]
    for unit in units:
        assert (await writer.post("/api/v1/units", json=unit)).status_code == 201
    for sector in SECTORS:
        assert (
            await writer.post("/api/v1/sectors", json={"code": sector, "name": sector})
        ).status_code == 201
    assert (await writer.post("/api/v1/procedures", json=procedure("P-1", "tu-phap"))).status_code == 201
    assert (
        await writer.post("/api/v1/procedures", json=procedure("P-2", "tu-phap", ["commune"]))
    ).status_code == 201


@pytest.fixture
async def district(app: FastAPI, api_key: KeyFactory, catalogue: None) -> AsyncIterator[AsyncClient]:
    headers = await api_key("proposals:write", unit="313", name="kien-thuy")
    async with AsyncClient(transport=ASGITransport(app=app), base_url="http://t", headers=headers) as http:
        yield http


@pytest.fixture
async def province(app: FastAPI, api_key: KeyFactory, catalogue: None) -> AsyncIterator[AsyncClient]:
    headers = await api_key("proposals:decide", unit="31", name="hai-phong")
    async with AsyncClient(transport=ASGITransport(app=app), base_url="http://t", headers=headers) as http:
        yield http


def proposal(kind: str, code: str = "P-1", level: str = "district", **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "kind": kind,
        "procedure_code": code,
        "level": level,
        "unit_code": "313",
        "title": f"{kind} {code}",
        "rationale": "Giảm thủ tục cho người dân",
        "change": {},
        **extra,
    }
    if kind == "reduce_fee" and "change" not in extra:
        body["change"] = {"fees": [{"name": "Lệ phí", "amount_vnd": 20000}]}
    if kind == "simplify" and "change" not in extra:
        body["change"] = {"processing_time": {"value": 3, "unit": "working_days"}}
    return body


async def create(client: AsyncClient, body: dict[str, Any]) -> dict[str, Any]:
    response = await client.post(PROPOSALS, json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def move(client: AsyncClient, proposal_id: int, to: str, **extra: Any) -> Any:
    return await client.post(f"{PROPOSALS}/{proposal_id}/transitions", json={"to": to, **extra})


async def test_the_workflow_and_who_may_move_it(district: AsyncClient, province: AsyncClient) -> None:
    made = await create(district, proposal("reduce_fee", cost_before_vnd=1_000_000, cost_after_vnd=400_000))
    assert (made["state"], made["savings_vnd"], made["sector_code"]) == ("draft", 600_000, "tu-phap")
    number = made["id"]
    assert (await move(province, number, "submitted")).status_code == 403  # deciding is not drafting
    assert (await move(district, number, "approved")).status_code == 409  # not from draft
    assert (await move(district, number, "submitted", comment="Gửi tỉnh")).status_code == 200
    assert (await move(district, number, "approved")).status_code == 403  # drafting is not deciding
    assert (await move(province, number, "implemented")).status_code == 409
    assert (await move(province, number, "approved", comment="Đồng ý")).status_code == 200
    for forbidden in ("draft", "submitted", "rejected", "withdrawn"):
        assert (await move(province, number, forbidden)).status_code in (403, 409)
    implemented = (await move(province, number, "implemented")).json()
    assert implemented["state"] == "implemented"
    assert [(t["from_state"], t["to_state"], t["client_name"]) for t in implemented["transitions"]] == [
        ("draft", "submitted", "kien-thuy"),
        ("submitted", "approved", "hai-phong"),
        ("approved", "implemented", "hai-phong"),
    ]
    assert implemented["transitions"][0]["comment"] == "Gửi tỉnh"
    for state in ("submitted", "approved", "rejected", "implemented", "withdrawn", "draft"):
        assert (await move(province, number, state)).status_code in (403, 409)


@pytest.mark.parametrize(
    ("path", "final"),
    [
        (["withdrawn"], "withdrawn"),
        (["submitted", "withdrawn"], "withdrawn"),
        (["submitted", "rejected"], "rejected"),
    ],
)
async def test_other_endings(
    district: AsyncClient, province: AsyncClient, path: list[str], final: str
) -> None:
    number = (await create(district, proposal("simplify")))["id"]
    for state in path:
        mover = province if state == "rejected" else district
        assert (await move(mover, number, state)).status_code == 200
    body = (await district.get(f"{PROPOSALS}/{number}")).json()
    assert body["state"] == final
    assert (await move(province, number, "approved")).status_code == 409


async def test_a_fee_cut_makes_a_catalogue_version_from_its_date(
    district: AsyncClient, province: AsyncClient, client: AsyncClient
) -> None:
    number = (await create(district, proposal("reduce_fee", effective_from="2024-01-01")))["id"]
    await move(district, number, "submitted", occurred_at="2023-07-10T09:00:00+07:00")
    await move(province, number, "approved", occurred_at="2023-08-10T09:00:00+07:00")
    done = (await move(province, number, "implemented", occurred_at="2023-12-01T09:00:00+07:00")).json()
    assert done["implemented_version"] == 2
    old = (await client.get("/api/v1/procedures/P-1", params={"as_of": "2023-12-31"})).json()
    new = (await client.get("/api/v1/procedures/P-1", params={"as_of": "2024-01-01"})).json()
    assert (old["fees"][0]["amount_vnd"], new["fees"][0]["amount_vnd"]) == (50000, 20000)
    history = (await client.get("/api/v1/procedures/P-1/history")).json()["items"]
    assert history[0]["changed_by"] == "hai-phong"


async def test_abolishing_refuses_later_dossiers(
    district: AsyncClient, province: AsyncClient, api_key: KeyFactory, app: FastAPI
) -> None:
    number = (await create(district, proposal("abolish", effective_from="2024-01-01")))["id"]
    assert (await district.post(PROPOSALS, json=proposal("abolish"))).status_code == 409  # one open at a time
    for mover, state in ((district, "submitted"), (province, "approved"), (province, "implemented")):
        assert (await move(mover, number, state)).status_code == 200
    assert (await district.post(PROPOSALS, json=proposal("abolish"))).status_code == 409  # already abolished
    headers = await api_key("dossiers:write", name="portal")
    event = {
        "dossier_code": "X",
        "type": "received",
        "procedure_code": "P-1",
        "unit_code": "313",
        "channel": "direct",
    }
    async with AsyncClient(transport=ASGITransport(app=app), base_url="http://t", headers=headers) as portal:
        before = await portal.post(
            "/api/v1/dossier-events",
            json={**event, "event_id": "1", "occurred_at": "2023-12-29T09:00:00+07:00"},
        )
        after = await portal.post(
            "/api/v1/dossier-events",
            json={**event, "dossier_code": "Y", "event_id": "2", "occurred_at": "2024-01-02T09:00:00+07:00"},
        )
    assert before.status_code == 201
    assert after.status_code == 422
    assert after.json()["errors"][0]["type"] == "procedure_abolished"


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (proposal("simplify", code="P-2", level="district"), 422),  # P-2 is commune-level only
        (proposal("reduce_fee", change={"fees": [{"name": "Lệ phí", "amount_vnd": 50000}]}), 422),
        (proposal("reduce_fee", change={"fees": [{"name": "Lệ phí", "amount_vnd": -1}]}), 422),
        (proposal("simplify", change={"processing_time": {"value": 0, "unit": "days"}}), 422),
        (proposal("simplify", change={}), 422),
        (proposal("abolish", change={"name": "x"}), 422),
        (proposal("simplify", code="NOPE"), 422),
        (proposal("simplify", unit_code="314"), 403),  # outside the district's binding
        (proposal("simplify", cost_before_vnd=-5), 422),
    ],
)
async def test_bad_proposals_change_nothing(district: AsyncClient, body: dict[str, Any], status: int) -> None:
    response = await district.post(PROPOSALS, json=body)
    assert response.status_code == status, response.text
    assert (await district.get(PROPOSALS)).json()["items"] == []


async def test_only_drafts_are_edited_and_with_if_match(district: AsyncClient) -> None:
    made = await district.post(PROPOSALS, json=proposal("simplify"))
    number, etag = made.json()["id"], made.headers["etag"]
    url = f"{PROPOSALS}/{number}"
    assert (await district.patch(url, json={"title": "Mới"})).status_code == 428
    edited = await district.patch(url, json={"title": "Mới"}, headers={"If-Match": etag})
    assert edited.status_code == 200 and edited.json()["title"] == "Mới"
    assert (await district.patch(url, json={"title": "Cũ"}, headers={"If-Match": etag})).status_code == 412
    await move(district, number, "submitted")
    fresh = (await district.get(url)).headers["etag"]
    assert (await district.patch(url, json={"title": "Muộn"}, headers={"If-Match": fresh})).status_code == 409


async def test_proposals_need_a_key_and_stay_in_the_binding(
    client: AsyncClient, district: AsyncClient, app: FastAPI, api_key: KeyFactory
) -> None:
    number = (await create(district, proposal("simplify")))["id"]
    assert (await client.get(PROPOSALS)).status_code == 401
    headers = await api_key("proposals:write", unit="314", name="tien-lang")
    async with AsyncClient(transport=ASGITransport(app=app), base_url="http://t", headers=headers) as other:
        assert (await other.get(f"{PROPOSALS}/{number}")).status_code == 404
        assert (await other.get(PROPOSALS)).json()["items"] == []
        assert (await move(other, number, "withdrawn")).status_code == 404
