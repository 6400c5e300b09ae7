from typing import Any

import pytest
from httpx import AsyncClient

from tests.conftest import KeyFactory
from tests.procedures.conftest import procedure

PROCEDURES = "/api/v1/procedures"


async def codes(client: AsyncClient, **params: Any) -> list[str]:
    response = await client.get(PROCEDURES, params={"limit": 500, **params})
    assert response.status_code == 200, response.text
    return [item["code"] for item in response.json()["items"]]


async def test_sectors_are_created_listed_and_renamed(writer: AsyncClient, client: AsyncClient) -> None:
    assert (
        await writer.post("/api/v1/sectors", json={"code": "tu-phap", "name": "Tư pháp"})
    ).status_code == 201
    assert (await writer.post("/api/v1/sectors", json={"code": "tu-phap", "name": "X"})).status_code == 409
    assert (await writer.post("/api/v1/sectors", json={"code": "x", "name": ""})).status_code == 422
    etag = (await client.get("/api/v1/sectors/tu-phap")).headers["etag"]
    renamed = await writer.patch(
        "/api/v1/sectors/tu-phap", json={"name": "Tư pháp - Hộ tịch"}, headers={"If-Match": etag}
    )
    assert renamed.status_code == 200
    stale = await writer.patch("/api/v1/sectors/tu-phap", json={"name": "Y"}, headers={"If-Match": etag})
    assert stale.status_code == 412
    listed = (await client.get("/api/v1/sectors")).json()["items"]
    assert [(s["code"], s["name"]) for s in listed] == [("tu-phap", "Tư pháp - Hộ tịch")]
    assert (await client.get("/api/v1/sectors/none")).status_code == 404


async def test_a_created_sector_carries_the_etag_of_its_representation(
    writer: AsyncClient, client: AsyncClient
) -> None:
    created = await writer.post("/api/v1/sectors", json={"code": "tu-phap", "name": "Tư pháp"})
    assert created.status_code == 201
    etag = created.headers["ETag"]
    assert (await client.get("/api/v1/sectors/tu-phap", headers={"If-None-Match": etag})).status_code == 304
    renamed = await writer.patch(
        "/api/v1/sectors/tu-phap", json={"name": "Hộ tịch"}, headers={"If-Match": etag}
    )
    assert renamed.status_code == 200, renamed.text


@pytest.mark.usefixtures("sectors")
async def test_create_and_read_a_procedure(writer: AsyncClient, client: AsyncClient) -> None:
    payload = procedure("1.000894", "Đăng ký kết hôn", processing_time={"value": 0.5, "unit": "working_days"})
    created = await writer.post(PROCEDURES, json=payload)
    assert created.status_code == 201
    assert created.headers["location"] == f"{PROCEDURES}/1.000894"
    body = (await client.get(f"{PROCEDURES}/1.000894")).json()
    for field, value in payload.items():
        if field not in ("fees", "required_documents"):
            assert body[field] == value, field
    assert body["fees"] == [{"name": "Lệ phí", "amount_vnd": 50000, "note": None}]
    assert body["version"] == 1
    assert body["in_force_from"] == "2016-01-01"
    assert body["status"] == "active"


@pytest.mark.usefixtures("sectors")
@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"sector_code": "nope"}, "body.sector_code"),
        ({"fees": [{"name": "Lệ phí", "amount_vnd": -1}]}, "body.fees.0.amount_vnd"),
        ({"fees": [{"name": "Lệ phí", "amount_vnd": 100.5}]}, "body.fees.0.amount_vnd"),
        ({"fees": [{"name": "Lệ phí", "amount_vnd": "100"}]}, "body.fees.0.amount_vnd"),
        ({"name": ""}, "body.name"),
        ({"name": "   "}, "body.name"),
        ({"processing_time": {"value": 0, "unit": "working_days"}}, "body.processing_time.value"),
        ({"processing_time": {"value": -2, "unit": "days"}}, "body.processing_time.value"),
        ({"processing_time": {"value": 2, "unit": "weeks"}}, "body.processing_time.unit"),
        ({"levels": []}, "body.levels"),
        ({"levels": ["hamlet"]}, "body.levels.0"),
        ({"channels": ["fax"]}, "body.channels.0"),
        ({"code": "bad code!"}, "body.code"),
    ],
)
async def test_bad_procedures_are_422_and_change_nothing(
    writer: AsyncClient, overrides: dict[str, Any], field: str
) -> None:
    response = await writer.post(PROCEDURES, json={**procedure("1.000894", "Đăng ký kết hôn"), **overrides})
    assert response.status_code == 422, response.text
    assert field in [error["field"] for error in response.json()["errors"]]
    assert await codes(writer) == []


@pytest.mark.usefixtures("catalogue")
async def test_duplicate_code_is_409(writer: AsyncClient) -> None:
    response = await writer.post(PROCEDURES, json=procedure("1.000894", "Khác"))
    assert response.status_code == 409
    assert (await writer.get(f"{PROCEDURES}/1.000894")).json()["name"] == "Đăng ký kết hôn"


async def test_catalogue_writes_need_the_catalogue_scope(client: AsyncClient, api_key: KeyFactory) -> None:
    headers = await api_key("units:write")
    assert (
        await client.post("/api/v1/sectors", json={"code": "x", "name": "X"}, headers=headers)
    ).status_code == 403
    assert (await client.post("/api/v1/sectors", json={"code": "x", "name": "X"})).status_code == 401
    assert (await client.post(f"{PROCEDURES}/import", json=[], headers=headers)).status_code == 403


@pytest.mark.usefixtures("catalogue")
async def test_search_is_accent_insensitive_and_ranked(client: AsyncClient) -> None:
    assert await codes(client, q="dang ky ket hon") == ["1.000894", "1.004837"]
    assert await codes(client, q="ĐĂNG KÝ KẾT HÔN") == ["1.000894", "1.004837"]
    # Within a rank, by name: "đăng ký đất đai…" < "đăng ký kết hôn" < "đăng ký khai sinh".
    assert await codes(client, q="đăng ký") == ["1.003560.000.00.00.H56", "1.000894", "1.001193", "1.004837"]
    # The exact code outranks names; a code prefix comes last.
    assert await codes(client, q="1.004837") == ["1.004837"]
    assert sorted(await codes(client, q="1.00")) == [
        "1.000894",
        "1.001193",
        "1.003560.000.00.00.H56",
        "1.004837",
    ]
    assert await codes(client, q="1.003560.000.00.00.h56") == ["1.003560.000.00.00.H56"]
    assert await codes(client, q="chung thuc") == ["2.000908"]
    assert await codes(client, q="ket_hon") == []


@pytest.mark.usefixtures("catalogue")
async def test_ranked_search_pages_without_gaps(client: AsyncClient) -> None:
    expected = await codes(client, q="dang")
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"q": "dang", "limit": 1, **({"cursor": cursor} if cursor else {})}
        body = (await client.get(PROCEDURES, params=params)).json()
        seen += [item["code"] for item in body["items"]]
        cursor = body["next_cursor"]
        if not cursor:
            break
    assert seen == expected and len(seen) == 4


@pytest.mark.usefixtures("catalogue")
async def test_filters(client: AsyncClient) -> None:
    assert await codes(client, sector="dat-dai") == ["1.003560.000.00.00.H56"]
    assert await codes(client, level="district") == ["1.003560.000.00.00.H56", "1.004837"]
    assert await codes(client, level="province") == ["1.003560.000.00.00.H56"]
    assert await codes(client, online_service="full") == ["1.000894"]
    assert await codes(client, status="suspended") == ["1.003560.000.00.00.H56"]
    assert await codes(client, channel="postal") == ["1.001193"]
    assert await codes(client, q="dang ky", level="commune", channel="online") == ["1.000894"]
    assert (await client.get(PROCEDURES, params={"level": "hamlet"})).status_code == 422


@pytest.mark.usefixtures("catalogue")
async def test_fee_change_with_if_match_makes_a_version_in_force_from_a_date(
    writer: AsyncClient, client: AsyncClient
) -> None:
    url = f"{PROCEDURES}/1.000894"
    first = await client.get(url)
    etag = first.headers["etag"]
    assert (await client.get(url, headers={"If-None-Match": etag})).status_code == 304

    change = {"fees": [{"name": "Lệ phí", "amount_vnd": 20000}], "in_force_from": "2024-01-01"}
    assert (await writer.patch(url, json=change)).status_code == 428
    changed = await writer.patch(url, json=change, headers={"If-Match": etag})
    assert changed.status_code == 200, changed.text
    assert changed.json()["version"] == 2
    assert changed.json()["fees"][0]["amount_vnd"] == 20000
    assert (await writer.patch(url, json={"name": "Lost"}, headers={"If-Match": etag})).status_code == 412

    old = (await client.get(url, params={"as_of": "2023-08-01"})).json()
    assert (old["version"], old["fees"][0]["amount_vnd"]) == (1, 50000)
    new = (await client.get(url, params={"as_of": "2024-01-01"})).json()
    assert (new["version"], new["fees"][0]["amount_vnd"]) == (2, 20000)
    assert (await client.get(url, params={"as_of": "2015-12-31"})).status_code == 404

    history = (await client.get(f"{url}/history")).json()["items"]
    assert [v["version"] for v in history] == [2, 1]
    assert history[0]["changes"] == {
        "fees": {
            "from": [{"name": "Lệ phí", "amount_vnd": 50000, "note": None}],
            "to": [{"name": "Lệ phí", "amount_vnd": 20000, "note": None}],
        }
    }
    assert history[0]["changed_by"] == "test-superuser"
    assert history[0]["in_force_from"] == "2024-01-01"
    assert history[1]["changes"]["name"] == {"from": None, "to": "Đăng ký kết hôn"}


@pytest.mark.usefixtures("catalogue")
async def test_versions_take_effect_in_order_and_no_op_changes_make_none(writer: AsyncClient) -> None:
    url = f"{PROCEDURES}/1.000894"

    async def patch(body: dict[str, Any]) -> Any:
        etag = (await writer.get(url)).headers["etag"]
        return await writer.patch(url, json=body, headers={"If-Match": etag})

    assert (await patch({"name": "Đăng ký kết hôn", "in_force_from": "2020-01-01"})).json()["version"] == 1
    assert (
        await patch({"processing_time": {"value": 5, "unit": "working_days"}, "in_force_from": "2020-01-01"})
    ).status_code == 200
    early = await patch(
        {"processing_time": {"value": 7, "unit": "working_days"}, "in_force_from": "2019-01-01"}
    )
    assert early.status_code == 422
    assert early.json()["errors"][0]["type"] == "in_force_from_too_early"
    assert (await patch({"name": None})).status_code == 422
    assert (await patch({"sector_code": "nope"})).status_code == 422
    assert (await patch({"fees": [{"name": "x", "amount_vnd": -5}]})).status_code == 422
    assert (await writer.get(url)).json()["version"] == 2
    assert len((await writer.get(f"{url}/history")).json()["items"]) == 2


@pytest.mark.usefixtures("catalogue")
async def test_procedure_served_as_cpsv_ap_json_ld(client: AsyncClient) -> None:
    response = await client.get(f"{PROCEDURES}/1.000894", headers={"Accept": "application/ld+json"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/ld+json"
    assert "Accept" in response.headers["vary"]
    document = response.json()
    assert document["@type"] == "PublicService"
    assert document["@context"]["PublicService"] == "cpsv:PublicService"
    assert document["identifier"] == "1.000894"
    assert document["name"] == "Đăng ký kết hôn"
    assert document["sector"] == "Hộ tịch"
    assert document["processingTime"] == "P3D"
    assert document["hasCost"] == [
        {
            "@type": "Cost",
            "value": "50000",
            "currency": "http://publications.europa.eu/resource/authority/currency/VND",
            "description": "Lệ phí",
        }
    ]
    assert document["hasInput"] == [{"@type": "Evidence", "name": "Tờ khai"}]
    assert document["hasCompetentAuthority"]["prefLabel"] == "Ủy ban nhân dân cấp xã"
    assert document["status"].endswith("/Completed")
    plain = await client.get(f"{PROCEDURES}/1.000894")
    assert plain.headers["etag"] != response.headers["etag"]


@pytest.mark.usefixtures("catalogue")
async def test_catalogue_writes_are_audited(writer: AsyncClient) -> None:
    records = (await writer.get("/api/v1/audit", params={"resource_type": "procedure"})).json()["items"]
    assert sorted(r["resource_id"] for r in records) == sorted(
        ["1.000894", "1.001193", "1.004837", "1.003560.000.00.00.H56", "2.000908"]
    )


@pytest.mark.usefixtures("catalogue")
async def test_listed_items_are_the_procedures_as_read_one_by_one(client: AsyncClient) -> None:
    for params in ({}, {"q": "dang ky"}):
        items = (await client.get(PROCEDURES, params=params)).json()["items"]
        assert items
        for item in items:
            single = (await client.get(f"{PROCEDURES}/{item['code']}")).json()
            assert item == single
