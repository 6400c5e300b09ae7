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


@pytest.fixture
async def national(app: FastAPI, api_key: KeyFactory, catalogue: None) -> AsyncIterator[AsyncClient]:
    """A decider bound to no unit: the only kind that may implement (SPEC §7)."""
    headers = await api_key("proposals:decide", name="cuc-kiem-soat-tthc")
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


async def test_the_workflow_and_who_may_move_it(
    district: AsyncClient, province: AsyncClient, national: AsyncClient
) -> None:
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
    refused = await move(province, number, "implemented")  # bound to a unit: no national reach
    assert refused.status_code == 403, refused.text
    implemented = (await move(national, number, "implemented")).json()
    assert implemented["state"] == "implemented"
    assert [(t["from_state"], t["to_state"], t["client_name"]) for t in implemented["transitions"]] == [
        ("draft", "submitted", "kien-thuy"),
        ("submitted", "approved", "hai-phong"),
        ("approved", "implemented", "cuc-kiem-soat-tthc"),
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
    district: AsyncClient, province: AsyncClient, national: AsyncClient, client: AsyncClient
) -> None:
    number = (await create(district, proposal("reduce_fee", effective_from="2024-01-01")))["id"]
    await move(district, number, "submitted", occurred_at="2023-07-10T09:00:00+07:00")
    await move(province, number, "approved", occurred_at="2023-08-10T09:00:00+07:00")
    done = (await move(national, number, "implemented", occurred_at="2023-12-01T09:00:00+07:00")).json()
    assert done["implemented_version"] == 2
    old = (await client.get("/api/v1/procedures/P-1", params={"as_of": "2023-12-31"})).json()
    new = (await client.get("/api/v1/procedures/P-1", params={"as_of": "2024-01-01"})).json()
    assert (old["fees"][0]["amount_vnd"], new["fees"][0]["amount_vnd"]) == (50000, 20000)
    history = (await client.get("/api/v1/procedures/P-1/history")).json()["items"]
    assert history[0]["changed_by"] == "cuc-kiem-soat-tthc"


async def test_abolishing_refuses_later_dossiers(
    district: AsyncClient, province: AsyncClient, national: AsyncClient, api_key: KeyFactory, app: FastAPI
) -> None:
    number = (await create(district, proposal("abolish", effective_from="2024-01-01")))["id"]
    assert (await district.post(PROPOSALS, json=proposal("abolish"))).status_code == 409  # one open at a time
    for mover, state in ((district, "submitted"), (province, "approved"), (national, "implemented")):
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
        # A change outside the binding is refused and says why (a read there stays a 404).
        withdrawn = await move(other, number, "withdrawn")
        assert withdrawn.status_code == 403
        assert "bound to unit 314" in withdrawn.json()["detail"]
        edit = await other.patch(f"{PROPOSALS}/{number}", json={"title": "x"}, headers={"If-Match": "*"})
        assert edit.status_code == 403
    assert (await district.get(f"{PROPOSALS}/{number}")).json()["state"] == "draft"


async def received(app: FastAPI, api_key: KeyFactory, code: str, unit: str, on: str) -> Any:
    """A dossier of P-1 received at ``unit`` on the day ``on``, sent by an unbound portal."""
    headers = await api_key("dossiers:write", name=f"portal-{code}")
    event = {
        "event_id": code,
        "dossier_code": code,
        "type": "received",
        "procedure_code": "P-1",
        "unit_code": unit,
        "channel": "direct",
        "occurred_at": f"{on}T09:00:00+07:00",
    }
    async with AsyncClient(transport=ASGITransport(app=app), base_url="http://t", headers=headers) as portal:
        return await portal.post("/api/v1/dossier-events", json=event)


@pytest.mark.parametrize("kind", ["abolish", "reduce_fee", "simplify"])
async def test_a_decider_bound_to_a_unit_cannot_implement(
    kind: str,
    app: FastAPI,
    api_key: KeyFactory,
    province: AsyncClient,
    national: AsyncClient,
    client: AsyncClient,
) -> None:
    """Issue 27, item 10: a client bound to district 313 with proposals:decide drafted, approved and
    implemented the abolition of a national procedure, and every commune lost it. Implementing is
    for a decider bound to no unit; a bound one approves within its subtree and the catalogue waits."""
    headers = await api_key("proposals:write", "proposals:decide", unit="313", name="kien-thuy-decides")
    catalogue_before = (await client.get("/api/v1/procedures/P-1")).json()
    async with AsyncClient(transport=ASGITransport(app=app), base_url="http://t", headers=headers) as own:
        number = (await create(own, proposal(kind, effective_from="2024-01-01")))["id"]
        assert (await move(own, number, "submitted")).status_code == 200
        assert (await move(own, number, "approved")).status_code == 200  # its own subtree: it decides
        for bound, unit in ((own, "313"), (province, "31")):
            refused = await move(bound, number, "implemented", comment="Bãi bỏ toàn quốc")
            assert refused.status_code == 403, refused.text
            assert refused.headers["content-type"].startswith("application/problem+json")
            problem = refused.json()
            assert "national" in problem["detail"] and f"bound to unit {unit}" in problem["detail"]
    kept = (await national.get(f"{PROPOSALS}/{number}")).json()
    assert (kept["state"], kept["implemented_version"], len(kept["transitions"])) == ("approved", None, 2)
    assert (await client.get("/api/v1/procedures/P-1")).json() == catalogue_before
    assert len((await client.get("/api/v1/procedures/P-1/history")).json()["items"]) == 1
    # A commune of the district, and one elsewhere, still receive dossiers of the procedure.
    assert (await received(app, api_key, "A", "11680", "2024-01-02")).status_code == 201
    assert (await received(app, api_key, "B", "314", "2024-01-02")).status_code == 201

    done = await move(national, number, "implemented")
    assert done.status_code == 200, done.text
    assert done.json()["transitions"][-1]["client_name"] == "cuc-kiem-soat-tthc"
    assert len((await client.get("/api/v1/procedures/P-1/history")).json()["items"]) == 2
    later = await received(app, api_key, "C", "11680", "2024-01-03")
    if kind == "abolish":
        assert later.status_code == 422 and later.json()["errors"][0]["type"] == "procedure_abolished"
    else:
        assert later.status_code == 201


async def test_a_bound_decider_decides_only_the_proposals_of_its_subtree(
    app: FastAPI, api_key: KeyFactory, district: AsyncClient, province: AsyncClient
) -> None:
    number = (await create(district, proposal("simplify")))["id"]
    assert (await move(district, number, "submitted")).status_code == 200
    # A sibling district, and a commune below the proposing district: neither reaches 313's proposal.
    for unit in ("314", "11680"):
        headers = await api_key("proposals:decide", unit=unit, name=f"decider-{unit}")
        async with AsyncClient(
            transport=ASGITransport(app=app), base_url="http://t", headers=headers
        ) as other:
            for to in ("approved", "rejected"):
                refused = await move(other, number, to)
                assert refused.status_code == 403, refused.text
                assert f"bound to unit {unit}" in refused.json()["detail"]
            assert (await other.get(f"{PROPOSALS}/{number}")).status_code == 404  # reads stay concealed
    body = (await district.get(f"{PROPOSALS}/{number}")).json()
    assert (body["state"], len(body["transitions"])) == ("submitted", 1)
    assert (await move(province, number, "approved")).status_code == 200  # 313 lies in 31's subtree
