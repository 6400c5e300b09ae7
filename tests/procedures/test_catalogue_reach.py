"""The catalogue is national (SPEC §7): a client bound to a unit cannot change it for the country."""

import pytest
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient

from tests.conftest import KeyFactory
from tests.procedures.conftest import procedure

pytestmark = pytest.mark.usefixtures("catalogue")


async def test_a_bound_catalogue_writer_cannot_change_the_national_catalogue(
    app: FastAPI, writer: AsyncClient, api_key: KeyFactory
) -> None:
    assert (
        await writer.post("/api/v1/units", json={"code": "31", "name": "Hải Phòng", "level": "province"})
    ).status_code == 201
    headers = await api_key("catalogue:write", unit="31", name="hai-phong-catalogue")
    async with AsyncClient(transport=ASGITransport(app=app), base_url="http://t", headers=headers) as bound:
        before = await bound.get("/api/v1/procedures/1.000894")
        etag = before.headers["ETag"]
        attempts = [
            await bound.patch(
                "/api/v1/procedures/1.000894", json={"status": "abolished"}, headers={"If-Match": etag}
            ),
            await bound.post("/api/v1/procedures", json=procedure("9.999999", "Thủ tục mới")),
            await bound.post("/api/v1/sectors", json={"code": "moi", "name": "Mới"}),
            await bound.patch("/api/v1/sectors/ho-tich", json={"name": "X"}, headers={"If-Match": "*"}),
        ]
        for response in attempts:
            assert response.status_code == 403, response.text
            assert "national" in response.json()["detail"]
        after = await bound.get("/api/v1/procedures/1.000894")
        assert after.json() == before.json()
        assert (await bound.get("/api/v1/procedures/9.999999")).status_code == 404
