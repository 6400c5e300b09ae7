"""The order in which every writer takes counter rows (app.dossiers.counters.lock_order): the
code-point order of the key, column by column, however the codes begin like one another."""

import random
from datetime import date, timedelta

import pytest
from fastapi import FastAPI
from sqlalchemy import text

from app.dossiers.counters import ALL, NO_SECTOR, lock_order

pytestmark = pytest.mark.only_backend("postgresql")

# Every character a code may hold (app.core.codes), and the sector and procedure of the rollups.
CHARACTERS = "09AZaz._-"


def _code(rng: random.Random) -> str:
    return rng.choice([ALL, NO_SECTOR, "".join(rng.choices(CHARACTERS, k=rng.randint(1, 4)))])


async def test_the_lock_order_is_code_point_order_column_by_column(app: FastAPI) -> None:
    rng = random.Random(29)
    keys = {
        (
            _code(rng),
            _code(rng),
            _code(rng),
            rng.choice("dmy"),
            date(2023, 1, 1) + timedelta(rng.randint(0, 800)),
        )
        for _ in range(3000)
    }
    # Codes that end where another goes on ("A" + "1B" against "A1" + "B"): joined without a
    # separator, or with one that sorts after a code's characters, these would come out of order.
    keys |= {("A", "1B", "C", "d", date(2023, 1, 1)), ("A1", "B", "C", "d", date(2023, 1, 1))}
    keys |= {("A", "-", "*", "m", date(2023, 1, 1)), ("A-", "*", "*", "m", date(2023, 1, 1))}
    names = ("unit_code", "sector_code", "procedure_code", "grain", "bucket")
    values = ", ".join(f"(:u{n}, :s{n}, :p{n}, :g{n}, CAST(:b{n} AS date))" for n in range(len(keys)))
    parameters = {
        f"{name}{n}": value for n, key in enumerate(keys) for name, value in zip("uspgb", key, strict=True)
    }
    query = f"SELECT * FROM (VALUES {values}) AS m ({', '.join(names)}) {lock_order('m')}"
    async with app.state.sessionmaker() as session:
        found = [tuple(row) for row in await session.execute(text(query), parameters)]
    assert found == sorted(keys)
