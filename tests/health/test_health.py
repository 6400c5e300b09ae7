from httpx import ASGITransport, AsyncClient

from app.core.config import Settings
from app.main import create_app


async def test_healthz_answers_while_the_process_lives(client: AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_when_database_is_migrated(client: AsyncClient, database_url: str) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ready"
    assert body["migration"] is not None
    assert body["database"] == ("sqlite" if database_url.startswith("sqlite") else "postgresql")


async def _readyz(database_url: str) -> tuple[int, dict[str, object], str]:
    application = create_app(Settings(database_url=database_url))
    async with (
        application.router.lifespan_context(application),
        AsyncClient(transport=ASGITransport(app=application), base_url="http://testserver") as http,
    ):
        response = await http.get("/readyz")
        return response.status_code, response.json(), response.headers["content-type"]


async def test_readyz_is_503_when_migrations_are_not_applied(sqlite_file_url: str) -> None:
    status, body, content_type = await _readyz(sqlite_file_url)
    assert status == 503
    assert content_type == "application/problem+json"
    assert "tthc migrate" in str(body["detail"])


async def test_readyz_is_503_when_database_is_unreachable() -> None:
    # Port 9 (discard) has nothing listening on this machine.
    status, body, _ = await _readyz("postgresql+asyncpg://postgres@127.0.0.1:9/test")
    assert status == 503
    assert body["detail"] == "The database is not reachable"
