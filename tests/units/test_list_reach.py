"""A list's reach is judged by its dependency, after its own query is found valid: a bad page
parameter is a 422 whatever the unit asked for, as it was when the route judged the reach."""

import pytest
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient

from tests.conftest import KeyFactory
from tests.units.test_api import HAI_PHONG, KIEN_THUY, create

LISTS = [
    ("/api/v1/dossiers", "dossiers:read"),
    ("/api/v1/proposals", "proposals:write"),
    ("/api/v1/feedback", "feedback:write"),
]


@pytest.mark.parametrize(("path", "scope"), LISTS)
async def test_a_bound_key_is_refused_another_unit_but_a_bad_page_is_a_422_first(
    app: FastAPI, api_key: KeyFactory, writer: AsyncClient, path: str, scope: str
) -> None:
    await create(writer, **HAI_PHONG)
    await create(writer, **KIEN_THUY)
    await create(
        writer, code="314", name="Huyện An Lão", level="district", parent_code="31", valid_to="2025-06-30"
    )
    headers = await api_key(scope, unit="313", name="kien-thuy")
    async with AsyncClient(transport=ASGITransport(app=app), base_url="http://t", headers=headers) as bound:
        outside = await bound.get(path, params={"unit": "314"})
        assert outside.status_code == 403, outside.text
        for bad_page in ({"limit": 0}, {"cursor": "not-a-cursor"}):
            answer = await bound.get(path, params={"unit": "314", **bad_page})
            assert answer.status_code == 422, (bad_page, answer.text)
        inside = await bound.get(path, params={"unit": "313"})
        assert inside.status_code == 200, inside.text
        assert inside.json()["items"] == []
