"""Every list of the catalogue pages by cursor, and its cursors keep their sort key (old ones still work)."""

import base64
import json
from typing import Any

import pytest
from httpx import AsyncClient

from tests.procedures.conftest import SECTORS, procedure

PROCEDURES = "/api/v1/procedures"
SECTORS_URL = "/api/v1/sectors"


def sort_key(cursor: str) -> list[Any]:
    """The sort key a cursor carries (its signature left unchecked)."""
    body = cursor.partition(".")[0]
    value: list[Any] = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    return value


async def pages(client: AsyncClient, url: str, **params: Any) -> tuple[list[dict[str, Any]], list[list[Any]]]:
    """Every item of the list, one page at a time, and the sort keys of the cursors on the way."""
    items: list[dict[str, Any]] = []
    keys: list[list[Any]] = []
    cursor: str | None = None
    while True:
        response = await client.get(url, params={**params, **({"cursor": cursor} if cursor else {})})
        assert response.status_code == 200, response.text
        body = response.json()
        items += body["items"]
        cursor = body["next_cursor"]
        if cursor is None:
            return items, keys
        keys.append(sort_key(cursor))


@pytest.mark.usefixtures("sectors")
async def test_sectors_page_in_code_order(client: AsyncClient) -> None:
    items, keys = await pages(client, SECTORS_URL, limit=1)
    codes = sorted(code for code, _name in SECTORS)
    assert [item["code"] for item in items] == codes
    assert keys == [[code] for code in codes[:-1]]


@pytest.mark.usefixtures("catalogue")
async def test_procedures_page_in_code_order(client: AsyncClient) -> None:
    everything = (await client.get(PROCEDURES, params={"limit": 500})).json()
    assert everything["next_cursor"] is None
    codes = [item["code"] for item in everything["items"]]
    assert codes == sorted(codes) and len(codes) == 5
    items, keys = await pages(client, PROCEDURES, limit=2)
    assert [item["code"] for item in items] == codes
    assert keys == [[codes[1]], [codes[3]]]


@pytest.mark.usefixtures("catalogue")
async def test_search_cursors_carry_rank_name_and_code(client: AsyncClient) -> None:
    items, keys = await pages(client, PROCEDURES, q="dang", limit=1)
    assert len(items) == 4
    assert [key[0] for key in keys] == sorted(key[0] for key in keys)
    assert [key[2] for key in keys] == [item["code"] for item in items[:-1]]
    assert all(isinstance(key[0], int) and isinstance(key[1], str) for key in keys)


@pytest.mark.usefixtures("catalogue")
async def test_a_listing_cursor_is_refused_by_a_search(client: AsyncClient) -> None:
    cursor = (await client.get(PROCEDURES, params={"limit": 1})).json()["next_cursor"]
    response = await client.get(PROCEDURES, params={"q": "dang", "cursor": cursor})
    assert response.status_code == 422


@pytest.mark.usefixtures("catalogue")
async def test_blank_search_lists_and_long_search_is_422(client: AsyncClient) -> None:
    listed = (await client.get(PROCEDURES, params={"limit": 500})).json()
    assert (await client.get(PROCEDURES, params={"limit": 500, "q": "   "})).json() == listed
    response = await client.get(PROCEDURES, params={"q": "x" * 201})
    assert response.status_code == 422
    assert [error["field"] for error in response.json()["errors"]] == ["query.q"]


@pytest.mark.usefixtures("sectors")
async def test_history_pages_newest_first(writer: AsyncClient) -> None:
    created = await writer.post(PROCEDURES, json=procedure("1.000894", "Đăng ký kết hôn"))
    url = f"{PROCEDURES}/1.000894"
    etag = created.headers["ETag"]
    for amount in (10000, 20000, 30000):
        changed = await writer.patch(
            url,
            json={"fees": [{"name": "Lệ phí", "amount_vnd": amount}], "in_force_from": "2024-01-01"},
            headers={"If-Match": etag},
        )
        assert changed.status_code == 200, changed.text
        etag = changed.headers["ETag"]
    items, keys = await pages(writer, f"{url}/history", limit=1)
    assert [item["version"] for item in items] == [4, 3, 2, 1]
    assert keys == [[4], [3], [2]]
    assert (await writer.get(f"{PROCEDURES}/nothing/history")).status_code == 404
