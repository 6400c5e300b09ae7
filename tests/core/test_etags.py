"""One way to tag an answer: a route declares its ``ETag`` in ``responses=`` and ``Route`` gives it."""

from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute
from httpx import AsyncClient

from app.core.http_caching import Route, tagged_statuses
from tests.dossiers.conftest import procedure_body
from tests.units.test_api import HAI_PHONG, UNITS

SECTORS = "/api/v1/sectors"


def test_every_route_of_the_api_is_a_route_that_tags_what_it_declares(app: FastAPI) -> None:
    plain = [
        route.path for route in app.routes if isinstance(route, APIRoute) and not isinstance(route, Route)
    ]
    assert plain == []


def test_a_declared_304_belongs_to_a_tagged_get(app: FastAPI) -> None:
    operations: dict[str, dict[str, Any]] = app.openapi()["paths"]
    for path, methods in operations.items():
        for method, operation in methods.items():
            answers = operation["responses"]
            if "304" in answers:
                assert method == "get", (method, path)
                assert "ETag" in answers["200"].get("headers", {}), path


def test_tagged_statuses_are_those_declared_with_an_etag() -> None:
    declared: dict[int | str, dict[str, Any]] = {
        200: {"headers": {"ETag": {}}},
        "201": {"headers": {"Location": {}, "ETag": {}}},
        304: {"description": "Not Modified"},
        404: {"headers": {"Retry-After": {}}},
    }
    assert tagged_statuses(declared) == {200, 201}


async def test_created_read_and_changed_answers_carry_the_same_tag_for_the_same_resource(
    writer: AsyncClient,
) -> None:
    created = await writer.post(SECTORS, json={"code": "GD", "name": "Giáo dục"})
    assert created.status_code == 201, created.text
    url = created.headers["Location"]
    read = await writer.get(url)
    assert read.headers["ETag"] == created.headers["ETag"]
    unchanged = await writer.get(url, headers={"If-None-Match": read.headers["ETag"]})
    assert (unchanged.status_code, unchanged.headers["ETag"], unchanged.content) == (
        304,
        read.headers["ETag"],
        b"",
    )

    changed = await writer.patch(
        url, json={"name": "Giáo dục và Đào tạo"}, headers={"If-Match": read.headers["ETag"]}
    )
    assert changed.status_code == 200, changed.text
    assert changed.headers["ETag"] != read.headers["ETag"]
    assert (await writer.get(url)).headers["ETag"] == changed.headers["ETag"]
    # The old tag no longer matches: the client is sent the new representation.
    stale = await writer.get(url, headers={"If-None-Match": read.headers["ETag"]})
    assert (stale.status_code, stale.json()["name"]) == (200, "Giáo dục và Đào tạo")


async def test_only_a_read_is_answered_304(writer: AsyncClient) -> None:
    await writer.post(UNITS, json=HAI_PHONG)
    etag = (await writer.get(f"{UNITS}/31")).headers["ETag"]
    # A change sent with the tag the client holds is made and answered in full, never 304.
    changed = await writer.patch(
        f"{UNITS}/31", json={"name": "TP Hải Phòng"}, headers={"If-None-Match": "*", "If-Match": etag}
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["name"] == "TP Hải Phòng"


async def test_a_negotiated_answer_is_tagged_per_representation(writer: AsyncClient) -> None:
    await writer.post(SECTORS, json={"code": "ho-tich", "name": "Hộ tịch"})
    procedure = procedure_body("1.000894", "Đăng ký kết hôn", ["commune"], 3, "working_days")
    created = await writer.post("/api/v1/procedures", json=procedure)
    assert created.status_code == 201, created.text
    url = created.headers["Location"]
    as_json = await writer.get(url)
    as_linked_data = await writer.get(url, headers={"Accept": "application/ld+json"})
    assert as_linked_data.headers["content-type"].startswith("application/ld+json")
    assert "Accept" in as_json.headers["Vary"] and "Accept" in as_linked_data.headers["Vary"]
    assert as_json.headers["ETag"] != as_linked_data.headers["ETag"]
    again = await writer.get(
        url, headers={"Accept": "application/ld+json", "If-None-Match": as_linked_data.headers["ETag"]}
    )
    assert again.status_code == 304
    assert "Accept" in again.headers["Vary"]
