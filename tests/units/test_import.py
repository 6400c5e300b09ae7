from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from httpx import AsyncClient
from sqlalchemy import func, select

from app.cli import main
from app.core.config import get_settings
from app.units.models import Unit
from app.units.service import import_official_units


async def _count(app: FastAPI, level: str) -> int:
    async with app.state.sessionmaker() as session:
        return int(
            await session.scalar(select(func.count()).select_from(Unit).where(Unit.level == level)) or 0
        )


async def test_import_loads_official_list_and_is_safe_to_rerun(app: FastAPI, writer: AsyncClient) -> None:
    client = writer
    progress: list[tuple[int, int]] = []
    async with app.state.sessionmaker() as session, session.begin():
        first = await import_official_units(session, lambda done, total: progress.append((done, total)))
    assert first.created == 34 + 3321
    assert progress[-1] == (3355, 3355)
    assert await _count(app, "province") == 34
    assert await _count(app, "commune") == 3321

    found = await client.get("/api/v1/units", params={"q": "hai phong", "level": "province"})
    assert [(u["code"], u["name"]) for u in found.json()["items"]] == [("31", "Thành phố Hải Phòng")]
    children = (await client.get("/api/v1/units", params={"parent": "31", "limit": 500})).json()["items"]
    assert children and all(child["level"] == "commune" for child in children)

    # A renamed unit is restored on rerun; nothing is duplicated.
    await client.patch("/api/v1/units/31", json={"name": "Hải Phòng (sửa tay)"})
    async with app.state.sessionmaker() as session, session.begin():
        second = await import_official_units(session)
    assert (second.created, second.updated, second.unchanged) == (0, 1, 3354)
    assert (await client.get("/api/v1/units/31")).json()["name"] == "Thành phố Hải Phòng"
    assert await _count(app, "commune") == 3321


async def test_import_leaves_historical_units_with_the_same_code_alone(
    app: FastAPI, writer: AsyncClient
) -> None:
    client = writer
    created = await client.post(
        "/api/v1/units",
        json={"code": "00070", "name": "Phường Hàng Trống", "level": "district", "valid_to": "2025-06-30"},
    )
    assert created.status_code == 201
    async with app.state.sessionmaker() as session, session.begin():
        summary = await import_official_units(session)
    assert summary.conflicts == ["00070"]
    assert (await client.get("/api/v1/units/00070")).json()["name"] == "Phường Hàng Trống"


@pytest.fixture
def cli_database(sqlite_file_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("TTHC_DATABASE_URL", sqlite_file_url)
    get_settings.cache_clear()
    yield sqlite_file_url
    get_settings.cache_clear()


def test_cli_migrates_and_imports_with_progress_and_summary(
    cli_database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    main(["migrate"])
    main(["units", "import"])
    output = capsys.readouterr().out
    assert "3355/3355 (100%)" in output
    assert output.rstrip().splitlines()[-1].endswith("3355 created, 0 updated, 0 unchanged, 0 conflicts")
    main(["units", "import"])
    assert "0 created, 0 updated, 3355 unchanged" in capsys.readouterr().out


def test_cli_refuses_an_unusable_database_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TTHC_DATABASE_URL", "mysql://root@localhost/tthc")
    get_settings.cache_clear()
    try:
        with pytest.raises(SystemExit) as exit_info:
            main(["migrate"])
    finally:
        get_settings.cache_clear()
    assert "invalid configuration" in str(exit_info.value.code)
    assert "supported: sqlite+aiosqlite, postgresql+asyncpg" in str(exit_info.value.code)


def test_cli_rebuilds_statistics(cli_database: str, capsys: pytest.CaptureFixture[str]) -> None:
    main(["migrate"])
    main(["stats", "rebuild"])
    assert "tthc: statistics rebuilt from 0 dossiers in" in capsys.readouterr().out
