from fastapi import FastAPI
from httpx import AsyncClient
from sqlalchemy import func, select, text

from app.core.db import SessionDep
from app.core.errors import Conflict
from app.units.models import Unit


async def test_session_commits_on_success_and_rolls_back_on_error(app: FastAPI, client: AsyncClient) -> None:
    async def write(session: SessionDep, fail: bool = False) -> dict[str, str]:
        session.add(Unit(code="77", name="Tỉnh Thử", level="province", search_name="tinh thu"))
        await session.flush()
        if fail:
            raise Conflict("refused after writing")
        return {"status": "written"}

    app.add_api_route("/write", write, methods=["POST"])

    failed = await client.post("/write", params={"fail": "true"})
    assert failed.status_code == 409
    async with app.state.sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(Unit)) == 0

    succeeded = await client.post("/write")
    assert succeeded.status_code == 200
    async with app.state.sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(Unit)) == 1


async def test_sqlite_has_foreign_keys_and_wal(app: FastAPI) -> None:
    engine = app.state.engine
    if engine.dialect.name != "sqlite":
        return
    async with engine.connect() as connection:
        assert (await connection.execute(text("PRAGMA foreign_keys"))).scalar_one() == 1
        assert (await connection.execute(text("PRAGMA journal_mode"))).scalar_one() == "wal"
