from typing import Any

from httpx import AsyncClient

from tests.conftest import KeyFactory

AUDIT = "/api/v1/audit"


async def audit(client: AsyncClient, headers: dict[str, str], **params: Any) -> list[dict[str, Any]]:
    response = await client.get(AUDIT, params=params, headers=headers)
    assert response.status_code == 200, response.text
    return list(response.json()["items"])


async def test_each_successful_write_is_audited_and_failed_ones_are_not(
    client: AsyncClient, api_key: KeyFactory
) -> None:
    admin = await api_key("admin")
    writer = await api_key("units:write", name="district-portal")
    unit = {"code": "31", "name": "Thành phố Hải Phòng", "level": "province"}

    created = await client.post("/api/v1/units", json=unit, headers={**writer, "X-Request-ID": "req-create"})
    assert created.status_code == 201
    assert (await client.post("/api/v1/units", json=unit, headers=writer)).status_code == 409
    bad_patch = await client.patch(
        "/api/v1/units/31", json={"valid_from": "2030-01-01", "valid_to": "2020-01-01"}
    )
    assert bad_patch.status_code == 401
    patched = await client.patch("/api/v1/units/31", json={"name": "Hải Phòng"}, headers=writer)
    assert patched.status_code == 200

    records = await audit(client, admin, resource_type="unit")
    assert [(r["action"], r["resource_id"], r["client_name"]) for r in records] == [
        ("update", "31", "district-portal"),
        ("create", "31", "district-portal"),
    ]
    assert records[1]["request_id"] == "req-create"
    assert records[0]["detail"] == {"name": "Hải Phòng"}
    assert records[0]["occurred_at"] >= records[1]["occurred_at"]


async def test_audit_filters_paging_and_access(client: AsyncClient, api_key: KeyFactory) -> None:
    admin = await api_key("admin")
    writer = await api_key("units:write")
    for number in range(5):
        unit = {"code": f"{number:02d}", "name": f"Tỉnh {number}", "level": "province"}
        await client.post("/api/v1/units", json=unit, headers=writer)

    assert [r["resource_id"] for r in await audit(client, admin, resource_id="03")] == ["03"]
    assert await audit(client, admin, action="delete") == []
    assert len(await audit(client, admin, since="2000-01-01T00:00:00+07:00", resource_type="unit")) == 5
    assert await audit(client, admin, until="2000-01-01T00:00:00Z") == []

    seen: list[str] = []
    cursor = None
    while True:
        body = (
            await client.get(
                AUDIT,
                params={"limit": 2, "resource_type": "unit", **({"cursor": cursor} if cursor else {})},
                headers=admin,
            )
        ).json()
        seen += [r["resource_id"] for r in body["items"]]
        cursor = body["next_cursor"]
        if not cursor:
            break
    assert seen == ["04", "03", "02", "01", "00"]

    assert (await client.get(AUDIT, headers=writer)).status_code == 403
    assert (await client.get(AUDIT)).status_code == 401
    naive = await client.get(AUDIT, params={"since": "2023-01-01T00:00:00"}, headers=admin)
    assert naive.status_code == 422


async def test_client_management_is_audited(client: AsyncClient, api_key: KeyFactory) -> None:
    admin = await api_key("admin", name="root")
    created = (
        await client.post(
            "/api/v1/clients", json={"name": "app", "scopes": ["feedback:write"]}, headers=admin
        )
    ).json()
    records = await audit(client, admin, resource_type="client", resource_id=str(created["id"]))
    assert [(r["action"], r["resource_id"], r["client_name"]) for r in records] == [
        ("create", str(created["id"]), "root")
    ]
    assert created["key"] not in str(records)
    # The fixture's clients were made as the command line makes them: recorded too, under its name.
    fixtures = [r for r in await audit(client, admin, resource_type="client") if r not in records]
    assert fixtures and {(r["action"], r["client_name"], r["client_id"]) for r in fixtures} == {
        ("create", "(command line)", None)
    }
