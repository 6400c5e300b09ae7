from collections.abc import Iterator

import pytest
from httpx import AsyncClient

from app.cli import main
from app.core.config import get_settings
from tests.conftest import KeyFactory

CLIENTS = "/api/v1/clients"


async def test_admin_creates_client_whose_key_works_and_is_shown_once(
    client: AsyncClient, api_key: KeyFactory
) -> None:
    admin = await api_key("admin")
    created = await client.post(
        CLIENTS, json={"name": "national-portal", "scopes": ["units:write", "units:write"]}, headers=admin
    )
    assert created.status_code == 201
    body = created.json()
    assert body["scopes"] == ["units:write"]
    secret = body["key"]
    assert secret.startswith("tthc_") and len(secret) > 40
    assert body["keys"][0]["hint"] == secret[:11]

    unit = {"code": "31", "name": "Thành phố Hải Phòng", "level": "province"}
    used = await client.post("/api/v1/units", json=unit, headers={"Authorization": f"Bearer {secret}"})
    assert used.status_code == 201

    fetched = await client.get(f"{CLIENTS}/{body['id']}", headers=admin)
    assert fetched.status_code == 200
    assert secret not in fetched.text
    assert "key" not in fetched.json()
    assert secret not in (await client.get(CLIENTS, headers=admin)).text


async def test_a_created_client_carries_the_etag_its_reading_has(
    client: AsyncClient, api_key: KeyFactory
) -> None:
    admin = await api_key("admin")
    created = await client.post(
        CLIENTS, json={"name": "national-portal", "scopes": ["units:write"]}, headers=admin
    )
    assert created.status_code == 201
    etag = created.headers["ETag"]
    url = f"{CLIENTS}/{created.json()['id']}"
    # The key is in the created answer only: the tag is that of the client as it is read.
    assert (await client.get(url, headers=admin)).headers["ETag"] == etag
    assert (await client.get(url, headers={**admin, "If-None-Match": etag})).status_code == 304


async def test_client_gets_more_keys_and_each_is_revocable(client: AsyncClient, api_key: KeyFactory) -> None:
    admin = await api_key("admin")
    created = (await client.post(CLIENTS, json={"name": "app", "scopes": ["admin"]}, headers=admin)).json()
    second = await client.post(f"{CLIENTS}/{created['id']}/keys", headers=admin)
    assert second.status_code == 201
    first_key = {"Authorization": f"Bearer {created['key']}"}
    second_key = {"Authorization": f"Bearer {second.json()['key']}"}
    await client.delete(f"{CLIENTS}/{created['id']}/keys/{created['keys'][0]['id']}", headers=admin)
    assert (await client.get(CLIENTS, headers=first_key)).status_code == 401
    assert (await client.get(CLIENTS, headers=second_key)).status_code == 200
    assert (await client.delete(f"{CLIENTS}/{created['id']}/keys/999999", headers=admin)).status_code == 404


@pytest.mark.parametrize(
    ("payload", "status"),
    [
        ({"name": "x", "scopes": []}, 422),
        ({"name": "x", "scopes": ["everything"]}, 422),
        ({"name": "x", "scopes": ["admin"], "unit_code": "31"}, 422),
        ({"name": "x", "scopes": ["units:write"], "unit_code": "nowhere"}, 422),
        ({"name": "taken", "scopes": ["units:write"]}, 409),
    ],
)
async def test_bad_client_requests_change_nothing(
    client: AsyncClient, api_key: KeyFactory, payload: dict[str, object], status: int
) -> None:
    admin = await api_key("admin", name="taken")
    response = await client.post(CLIENTS, json=payload, headers=admin)
    assert response.status_code == status, response.text
    assert [c["name"] for c in (await client.get(CLIENTS, headers=admin)).json()["items"]] == ["taken"]


@pytest.fixture
def cli_env(sqlite_file_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TTHC_DATABASE_URL", sqlite_file_url)
    get_settings.cache_clear()
    main(["migrate"])
    yield
    get_settings.cache_clear()


@pytest.mark.usefixtures("cli_env")
def test_cli_creates_lists_and_revokes_clients(capsys: pytest.CaptureFixture[str]) -> None:
    main(["clients", "create", "--name", "first-admin", "--scope", "admin", "--scope", "units:write"])
    key = capsys.readouterr().out.rstrip().splitlines()[-1]
    assert key.startswith("tthc_")

    main(["clients", "key", "first-admin"])
    second = capsys.readouterr().out.rstrip().splitlines()[-1]
    assert second.startswith("tthc_") and second != key

    main(["clients", "list"])
    listing = capsys.readouterr().out
    assert "first-admin" in listing and "admin, units:write" in listing
    assert key not in listing

    main(["clients", "revoke", "first-admin"])
    assert "2 keys of client 'first-admin' revoked" in capsys.readouterr().out


@pytest.mark.usefixtures("cli_env")
def test_cli_refuses_bad_clients() -> None:
    with pytest.raises(SystemExit, match="scopes"):
        main(["clients", "create", "--name", "x", "--scope", "root"])
    with pytest.raises(SystemExit, match="does not exist"):
        main(["clients", "create", "--name", "x", "--scope", "units:write", "--unit", "404"])
    with pytest.raises(SystemExit, match="does not exist"):
        main(["clients", "revoke", "nobody"])
