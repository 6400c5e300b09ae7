"""Enum columns hold their enum's values only, whoever writes them: the database refuses others
(CHECK constraints, migration 0013), and the models read them back as the enums."""

import pytest
from fastapi import FastAPI
from httpx import AsyncClient
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError

from app.dossiers.lifecycle import EventType, Status
from app.dossiers.models import Dossier, DossierEvent, Outcome
from app.procedures.models import Channel
from tests.dossiers.conftest import received, send


@pytest.fixture
async def one_dossier(portal: AsyncClient) -> None:
    await send(portal, received("HS-1", "2024-03-04T09:00:00+07:00"))


@pytest.mark.parametrize(
    ("table", "column", "value"),
    [
        ("units", "level", "'hamlet'"),
        ("procedures", "status", "'gone'"),
        ("procedures", "online_service", "'fax'"),
        ("dossiers", "status", "6"),
        ("dossiers", "channel", "'fax'"),
        ("dossier_events", "type", "'teleported'"),
        ("dossier_events", "status", "'lost'"),
    ],
)
async def test_the_database_refuses_a_value_outside_the_enum(
    app: FastAPI, one_dossier: None, table: str, column: str, value: str
) -> None:
    async with app.state.sessionmaker() as session:
        with pytest.raises(IntegrityError) as refused:
            await session.execute(text(f"UPDATE {table} SET {column} = {value}"))
        await session.rollback()
    assert f"ck_{table}_{column}" in str(refused.value)


async def test_enum_columns_read_back_as_their_enums(app: FastAPI, one_dossier: None) -> None:
    async with app.state.sessionmaker() as session:
        dossier = await session.scalar(select(Dossier))
        event = await session.scalar(select(DossierEvent))
    assert dossier is not None and event is not None
    assert isinstance(dossier.status, Status) and dossier.status is Status.received
    assert dossier.channel is Channel.online
    assert (event.type, event.status) == (EventType.received, Outcome.applied)
