"""Statistics tags move with the data of their own province only, and not at all for a replay."""

import pytest
from httpx import AsyncClient

from tests.dossiers.conftest import received, send, step

pytestmark = pytest.mark.usefixtures("world")


async def tag(client: AsyncClient, unit: str | None) -> str:
    params = {"period": "2023-Q3", **({"unit": unit} if unit else {})}
    response = await client.get("/api/v1/stats/dossiers", params=params)
    assert response.status_code == 200
    return str(response.headers["etag"])


async def test_a_replay_and_another_province_leave_tags_alone(
    portal: AsyncClient, writer: AsyncClient
) -> None:
    for unit in (
        {"code": "32", "name": "Hà Nội", "level": "province"},
        {"code": "32001", "name": "Phường Ba Đình", "level": "commune", "parent_code": "32"},
    ):
        assert (await writer.post("/api/v1/units", json=unit)).status_code == 201
    events = [
        received("HP-1", "2023-08-07T09:00:00+07:00"),
        step("HP-1", "resolved", "2023-08-08T09:00:00+07:00"),
    ]
    await send(portal, *events)
    hai_phong, ha_noi, country = await tag(portal, "31"), await tag(portal, "32"), await tag(portal, None)

    # A replay of what was sent: all duplicates, and every tag stays.
    assert {r["status"] for r in await send(portal, *events)} == {"duplicate"}
    assert (await tag(portal, "31"), await tag(portal, "32"), await tag(portal, None)) == (
        hai_phong,
        ha_noi,
        country,
    )
    unchanged = await portal.get(
        "/api/v1/stats/dossiers",
        params={"period": "2023-Q3", "unit": "31"},
        headers={"If-None-Match": hai_phong},
    )
    assert unchanged.status_code == 304

    # A dossier in Hà Nội: Hà Nội's and the country's tags move, Hải Phòng's does not.
    await send(portal, received("HN-1", "2023-08-07T09:00:00+07:00", unit="32001"))
    assert await tag(portal, "31") == hai_phong
    assert await tag(portal, "11680") != ""  # a commune's tag comes from its province too
    assert await tag(portal, "32") != ha_noi
    assert await tag(portal, None) != country
    # Events kept waiting for their reception change no statistics, and no tag.
    await send(portal, step("NOT-YET", "resolved", "2023-08-08T09:00:00+07:00"))
    assert await tag(portal, "31") == hai_phong
