from typing import Any

import pytest
from httpx import AsyncClient

UNITS = "/api/v1/units"

HAI_PHONG = {"code": "31", "name": "Thành phố Hải Phòng", "level": "province"}
KIEN_THUY = {
    "code": "313",
    "name": "Huyện Kiến Thụy",
    "level": "district",
    "division_type": "huyện",
    "parent_code": "31",
    "valid_to": "2025-06-30",
}


async def create(client: AsyncClient, **unit: Any) -> dict[str, Any]:
    response = await client.post(UNITS, json=unit)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def unit_codes(client: AsyncClient, **params: Any) -> list[str]:
    response = await client.get(UNITS, params={"limit": 500, **params})
    assert response.status_code == 200, response.text
    return [item["code"] for item in response.json()["items"]]


@pytest.fixture
def client(writer: AsyncClient) -> AsyncClient:
    """Unit writes need `units:write`; reads are public either way (see tests/clients)."""
    return writer


@pytest.fixture
async def kien_thuy(client: AsyncClient) -> None:
    await create(client, **HAI_PHONG)
    await create(client, **KIEN_THUY)
    await create(
        client,
        code="11680",
        name="Thị trấn Núi Đối",
        level="commune",
        parent_code="313",
        valid_from="2000-01-01",
        valid_to="2025-06-30",
    )
    await create(
        client, code="11683", name="Xã Thụy Hương", level="commune", parent_code="313", valid_to="2025-06-30"
    )


async def test_create_and_get_unit(client: AsyncClient) -> None:
    response = await client.post(UNITS, json=HAI_PHONG)
    assert response.status_code == 201
    assert response.headers["location"] == f"{UNITS}/31"
    created = response.json()
    assert created["code"] == "31"
    assert created["level"] == "province"
    assert created["parent_code"] is None
    assert created["created_at"].endswith("Z") or "+00:00" in created["created_at"]

    fetched = await client.get(f"{UNITS}/31")
    assert fetched.status_code == 200
    assert fetched.json() == created


async def test_get_carries_etag_and_honours_if_none_match(client: AsyncClient) -> None:
    await create(client, **HAI_PHONG)
    first = await client.get(f"{UNITS}/31")
    etag = first.headers["etag"]
    again = await client.get(f"{UNITS}/31", headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.content == b""
    other = await client.get(f"{UNITS}/31", headers={"If-None-Match": '"something-else"'})
    assert other.status_code == 200


async def test_unknown_unit_is_404(client: AsyncClient) -> None:
    response = await client.get(f"{UNITS}/404404")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert (await client.get(f"{UNITS}/404404/children")).status_code == 404


async def test_duplicate_code_is_409_and_changes_nothing(client: AsyncClient) -> None:
    await create(client, **HAI_PHONG)
    response = await client.post(UNITS, json={**HAI_PHONG, "name": "Another name"})
    assert response.status_code == 409
    assert (await client.get(f"{UNITS}/31")).json()["name"] == "Thành phố Hải Phòng"


async def test_unknown_parent_is_422_and_changes_nothing(client: AsyncClient) -> None:
    response = await client.post(UNITS, json=KIEN_THUY)
    assert response.status_code == 422
    assert response.json()["errors"][0] == {
        "field": "body.parent_code",
        "message": "Parent unit '31' does not exist",
        "type": "unknown_reference",
    }
    assert await unit_codes(client) == []


@pytest.mark.parametrize(
    ("parent_level", "child_level"),
    [("district", "district"), ("commune", "district"), ("commune", "commune"), ("district", "province")],
)
async def test_child_must_rank_below_its_parent(
    client: AsyncClient, parent_level: str, child_level: str
) -> None:
    # Before the 2025 reform, when districts existed.
    await create(client, code="P", name="Parent", level=parent_level, valid_to="2025-06-30")
    response = await client.post(
        UNITS,
        json={
            "code": "C",
            "name": "Child",
            "level": child_level,
            "parent_code": "P",
            "valid_to": "2025-06-30",
        },
    )
    assert response.status_code == 422
    assert "level_not_below_parent" in [error["type"] for error in response.json()["errors"]]
    assert await unit_codes(client) == ["P"]


async def test_commune_may_sit_directly_under_a_province(client: AsyncClient) -> None:
    await create(client, **HAI_PHONG)
    await create(
        client, code="11677", name="Xã Kiến Thụy", level="commune", parent_code="31", valid_from="2025-07-01"
    )
    assert await unit_codes(client, parent="31") == ["11677"]


@pytest.mark.parametrize(
    "child_validity",
    [
        {},  # open-ended child under a closed parent
        {"valid_from": "1999-01-01", "valid_to": "2025-06-30"},  # starts before the parent
        {"valid_from": "2010-01-01", "valid_to": "2026-01-01"},  # ends after the parent
    ],
)
async def test_child_validity_must_lie_within_parent(
    client: AsyncClient, child_validity: dict[str, str]
) -> None:
    await create(client, **HAI_PHONG)
    await create(client, **{**KIEN_THUY, "valid_from": "2000-01-01"})
    response = await client.post(
        UNITS,
        json={"code": "11680", "name": "Xã X", "level": "commune", "parent_code": "313", **child_validity},
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["type"] == "validity_outside_parent"
    assert await unit_codes(client) == ["31", "313"]


async def test_validity_order_is_checked(client: AsyncClient) -> None:
    response = await client.post(
        UNITS, json={**HAI_PHONG, "valid_from": "2025-07-01", "valid_to": "2025-06-30"}
    )
    assert response.status_code == 422
    assert await unit_codes(client) == []


@pytest.mark.usefixtures("kien_thuy")
async def test_search_is_case_and_accent_insensitive(client: AsyncClient) -> None:
    assert await unit_codes(client, q="kien thuy") == ["313"]
    assert await unit_codes(client, q="KIẾN THỤY") == ["313"]
    assert await unit_codes(client, q="nui doi") == ["11680"]
    assert await unit_codes(client, q="hai phong", level="province") == ["31"]
    assert await unit_codes(client, q="1168") == ["11680", "11683"]
    assert await unit_codes(client, q="100%") == []


@pytest.mark.usefixtures("kien_thuy")
async def test_list_filters(client: AsyncClient) -> None:
    assert await unit_codes(client, level="commune") == ["11680", "11683"]
    assert await unit_codes(client, parent="313") == ["11680", "11683"]
    assert await unit_codes(client, valid_on="2025-07-01") == ["31"]
    assert await unit_codes(client, valid_on="1999-06-01") == ["11683", "31", "313"]
    assert await unit_codes(client, valid_on="2023-08-01", level="district") == ["313"]
    bad = await client.get(UNITS, params={"level": "hamlet"})
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["field"] == "query.level"


@pytest.mark.usefixtures("kien_thuy")
async def test_children_lists_direct_children_only(client: AsyncClient) -> None:
    response = await client.get(f"{UNITS}/31/children")
    assert [item["code"] for item in response.json()["items"]] == ["313"]
    response = await client.get(f"{UNITS}/313/children")
    assert [item["code"] for item in response.json()["items"]] == ["11680", "11683"]


async def test_cursor_pagination_walks_every_unit_once(client: AsyncClient) -> None:
    for number in range(7):
        await create(client, code=f"{number:02d}", name=f"Tỉnh {number}", level="province")
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 3}
        if cursor:
            params["cursor"] = cursor
        body = (await client.get(UNITS, params=params)).json()
        seen += [item["code"] for item in body["items"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == [f"{n:02d}" for n in range(7)]
    assert pages == 3


@pytest.mark.parametrize(
    "params", [{"cursor": "not-a-cursor!"}, {"cursor": "e30"}, {"limit": 0}, {"limit": 501}]
)
async def test_bad_paging_parameters_are_422(client: AsyncClient, params: dict[str, Any]) -> None:
    response = await client.get(UNITS, params=params)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"


@pytest.mark.usefixtures("kien_thuy")
async def test_patch_updates_name_and_search(client: AsyncClient) -> None:
    response = await client.patch(f"{UNITS}/11683", json={"name": "Xã Thụy Hương mới"})
    assert response.status_code == 200
    assert response.json()["name"] == "Xã Thụy Hương mới"
    assert await unit_codes(client, q="thuy huong moi") == ["11683"]


@pytest.mark.usefixtures("kien_thuy")
async def test_patch_with_stale_if_match_is_412_and_changes_nothing(client: AsyncClient) -> None:
    etag = (await client.get(f"{UNITS}/313")).headers["etag"]
    first = await client.patch(
        f"{UNITS}/313", json={"name": "Huyện Kiến Thụy (cũ)"}, headers={"If-Match": etag}
    )
    assert first.status_code == 200
    assert first.headers["etag"] != etag
    stale = await client.patch(f"{UNITS}/313", json={"name": "Lost update"}, headers={"If-Match": etag})
    assert stale.status_code == 412
    assert (await client.get(f"{UNITS}/313")).json()["name"] == "Huyện Kiến Thụy (cũ)"


@pytest.mark.usefixtures("kien_thuy")
@pytest.mark.parametrize(
    ("code", "patch", "error_type"),
    [
        ("313", {"valid_to": "2020-01-01"}, "children_outside_validity"),
        ("313", {"valid_to": None}, "validity_outside_parent"),
        ("11683", {"parent_code": "99"}, "unknown_reference"),
        ("313", {"valid_from": "2026-01-01"}, "validity_order"),
    ],
)
async def test_patch_that_breaks_the_hierarchy_is_422_and_changes_nothing(
    client: AsyncClient, code: str, patch: dict[str, Any], error_type: str
) -> None:
    # Close the province so that reopening the district would break it.
    await client.patch(f"{UNITS}/31", json={"valid_to": "2025-06-30"})
    before = (await client.get(f"{UNITS}/{code}")).json()
    response = await client.patch(f"{UNITS}/{code}", json=patch)
    assert response.status_code == 422, response.text
    assert error_type in [error["type"] for error in response.json()["errors"]]
    assert (await client.get(f"{UNITS}/{code}")).json() == before


@pytest.mark.parametrize("patch", [{"level": "commune"}, {"code": "X"}, {"name": None}, {"name": ""}])
async def test_patch_rejects_immutable_or_invalid_fields(client: AsyncClient, patch: dict[str, Any]) -> None:
    await create(client, **HAI_PHONG)
    response = await client.patch(f"{UNITS}/31", json=patch)
    assert response.status_code == 422
    assert (await client.get(f"{UNITS}/31")).json()["name"] == HAI_PHONG["name"]


async def test_no_district_level_after_the_2025_reform(client: AsyncClient) -> None:
    await create(client, **HAI_PHONG)
    created = await client.post(UNITS, json={**KIEN_THUY, "valid_to": None})
    assert created.status_code == 422
    assert created.json()["errors"][0]["type"] == "no_district_level"
    later = await client.post(UNITS, json={**KIEN_THUY, "valid_to": "2025-07-01"})
    assert later.status_code == 422
    assert (await client.post(UNITS, json=KIEN_THUY)).status_code == 201
    reopened = await client.patch(f"{UNITS}/313", json={"valid_to": None})
    assert reopened.status_code == 422
