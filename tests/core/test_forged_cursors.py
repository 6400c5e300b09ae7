"""Cursors signed with the app's own key but of the wrong shape: a 422 on every keyset-paged list.

Issue 27 #12: with the development key anyone who read the source can sign cursors, and a signed
`[[1]]` on `/units` or `["abc"]` on `/clients` reached the database (500).
"""

import base64
import hashlib
import hmac
import json
from typing import Any, Literal

import pytest
from fastapi import FastAPI
from httpx import AsyncClient

from tests.dossiers.conftest import received, send
from tests.procedures.conftest import procedure

Shape = Literal["int", "str", "ranked", "timeline"]

# Every GET route with a cursor: where to ask, with what query, and what its cursors carry.
PAGED: dict[str, tuple[str, dict[str, str], Shape]] = {
    "/api/v1/audit": ("/api/v1/audit", {}, "int"),
    "/api/v1/clients": ("/api/v1/clients", {}, "int"),
    "/api/v1/dossier-events": ("/api/v1/dossier-events", {"pending": "true"}, "int"),
    "/api/v1/dossiers": ("/api/v1/dossiers", {}, "str"),
    "/api/v1/dossiers/{code}/timeline": ("/api/v1/dossiers/HS-1/timeline", {}, "timeline"),
    "/api/v1/feedback": ("/api/v1/feedback", {}, "int"),
    "/api/v1/procedures": ("/api/v1/procedures", {}, "str"),
    "/api/v1/procedures/{code}/history": ("/api/v1/procedures/1.000894/history", {}, "int"),
    "/api/v1/proposals": ("/api/v1/proposals", {}, "int"),
    "/api/v1/sectors": ("/api/v1/sectors", {}, "str"),
    "/api/v1/units": ("/api/v1/units", {}, "str"),
    "/api/v1/units/{code}/children": ("/api/v1/units/31/children", {}, "str"),
}
SEARCH: tuple[str, dict[str, str], Shape] = ("/api/v1/procedures", {"q": "dang"}, "ranked")

# Not a sort key of any list: containers, null, booleans, fractions, text the database cannot take.
NEVER: list[Any] = [[[1]], [{"a": 1}], [None], [True], [False], [1.5], [float("nan")], [], [1, "a"]]
NOT_INT: list[Any] = [["abc"], ["1"], [""], [2**64], [-(2**64)], [10**400]]
NOT_STR: list[Any] = [[1], [0], [-1], ["a\u0000b"], ["\ud800"], ["a", "b"]]
# A searched page's cursor is (rank, folded name, code).
NOT_RANKED: list[Any] = [
    [None, "x", "y"],
    [[0], "x", "y"],
    [1.5, "x", "y"],
    [True, "x", "y"],
    [0, 1, "y"],
    [0, "x", None],
    [0, "x", "\u0000"],
    [0, "x", "\udfff"],
    [0, "x"],
    [0, "x", "y", "z"],
    ["x", "y"],
]
# A timeline's cursor is (occurred_at as ISO 8601 with its offset, row id).
NOT_TIMELINE: list[Any] = [
    [1, 1],
    ["abc", 1],
    ["", 1],
    ["2023-08-01T09:15:00", 1],
    ["2023-08-01", 1],
    ["2023-02-30T09:15:00+07:00", 1],
    ["0001-01-01T00:00:00+01:00", 1],
    ["9999-12-31T23:59:59-01:00", 1],
    ["2023-08-01T09:15:00+07:00\u0000", 1],
    ["\ud800", 1],
    ["2023-08-01T09:15:00+07:00", "1"],
    ["2023-08-01T09:15:00+07:00", 2**64],
    ["2023-08-01T09:15:00+07:00", None],
    ["2023-08-01T09:15:00+07:00"],
    ["2023-08-01T09:15:00+07:00", 1, 1],
]
# The rank is read by the search itself (app/procedures/search.py), not by a sort column.
RANK_NOT_A_RANK: list[Any] = [["abc", "x", "y"], ["1", "x", "y"], [-1, "x", "y"], [2**64, "x", "y"]]
WELL_FORMED = {
    "int": [1],
    "str": ["abc"],
    "ranked": [0, "dang", "1.000000"],
    "timeline": ["2023-08-01T09:15:00+07:00", 1],
}


def forge(secret_key: str, path: str, sort_key: Any) -> str:
    """A cursor signed as the service signs them (app/core/pagination.py), by someone who knows the key."""
    key = hashlib.sha256(b"tthc-cursor\x00" + secret_key.encode()).digest()
    # ASCII escapes: a lone surrogate survives as `\ud800` in the JSON text.
    raw = json.dumps(sort_key, separators=(",", ":")).encode()
    signature = hmac.new(key, path.encode() + b"\x00" + raw, hashlib.sha256).digest()[:12]
    return (
        base64.urlsafe_b64encode(raw).decode().rstrip("=")
        + "."
        + base64.urlsafe_b64encode(signature).decode().rstrip("=")
    )


def test_every_paged_list_is_tried(app: FastAPI) -> None:
    paged = {
        path
        for path, operations in app.openapi()["paths"].items()
        if any(parameter["name"] == "cursor" for parameter in operations.get("get", {}).get("parameters", []))
    }
    assert paged == set(PAGED)


def wrong_shapes(shape: Shape) -> list[Any]:
    return NEVER + {"int": NOT_INT, "str": NOT_STR, "ranked": NOT_RANKED, "timeline": NOT_TIMELINE}[shape]


@pytest.fixture
async def listed(writer: AsyncClient) -> None:
    """Something in the lists whose path names an object."""
    assert (
        await writer.post("/api/v1/units", json={"code": "31", "name": "Hải Phòng", "level": "province"})
    ).status_code == 201
    assert (
        await writer.post("/api/v1/sectors", json={"code": "ho-tich", "name": "Hộ tịch"})
    ).status_code == 201
    # Carried out at the province, so that the province receives a dossier (its timeline is a list).
    body = procedure("1.000894", "Đăng ký kết hôn", levels=["province"])
    assert (await writer.post("/api/v1/procedures", json=body)).status_code == 201
    (reception,) = await send(
        writer, received("HS-1", "2023-08-01T08:00:00+07:00", unit="31", channel="direct")
    )
    assert reception["status"] == "created", reception


async def refusals(
    writer: AsyncClient, secret: str, url: str, params: dict[str, str], shape: Shape, sort_keys: list[Any]
) -> list[tuple[str, dict[str, str], Any, int]]:
    """The forged cursors among ``sort_keys`` that are not refused as foreign (422 on `query.cursor`)."""
    # The forger is right about the signature: a well-formed forged key is served.
    served = await writer.get(url, params={**params, "cursor": forge(secret, url, WELL_FORMED[shape])})
    assert served.status_code == 200, (url, served.text)
    failures = []
    for sort_key in sort_keys:
        response = await writer.get(url, params={**params, "cursor": forge(secret, url, sort_key)})
        refused = response.status_code == 422 and response.json().get("errors") == [
            {"field": "query.cursor", "message": "The cursor is not one this API issued", "type": "cursor"}
        ]
        if not refused:
            failures.append((url, params, sort_key, response.status_code))
    return failures


@pytest.mark.usefixtures("listed")
async def test_signed_cursors_of_the_wrong_shape_are_422(app: FastAPI, writer: AsyncClient) -> None:
    secret = app.state.settings.secret_key
    failures = []
    for url, params, shape in [*PAGED.values(), SEARCH]:
        failures += await refusals(writer, secret, url, params, shape, wrong_shapes(shape))
    assert failures == []


@pytest.mark.usefixtures("listed")
async def test_a_search_cursor_carries_a_rank(app: FastAPI, writer: AsyncClient) -> None:
    url, params, shape = SEARCH
    failures = await refusals(writer, app.state.settings.secret_key, url, params, shape, RANK_NOT_A_RANK)
    assert failures == []


@pytest.mark.usefixtures("listed")
async def test_signed_cursors_beyond_a_column_are_422(app: FastAPI, writer: AsyncClient) -> None:
    """Whole numbers a 32-bit id column cannot hold (PostgreSQL's `integer`) are refused before the
    query, as are those beyond a 64-bit one; within the column's range they page (here: nothing)."""
    secret = app.state.settings.secret_key
    for url in ("/api/v1/clients", "/api/v1/procedures/1.000894/history"):
        for sort_key in ([2**31], [-(2**31) - 1], [2**63]):
            response = await writer.get(url, params={"cursor": forge(secret, url, sort_key)})
            assert response.status_code == 422, (url, sort_key, response.text)
        inside = await writer.get(url, params={"cursor": forge(secret, url, [2**31 - 1])})
        assert inside.status_code == 200, (url, inside.text)
    # The audit log's ids are 64-bit.
    for sort_key, status in (([2**31], 200), ([2**63 - 1], 200), ([2**63], 422), ([-(2**63) - 1], 422)):
        cursor = forge(secret, "/api/v1/audit", sort_key)
        assert (await writer.get("/api/v1/audit", params={"cursor": cursor})).status_code == status, sort_key
