"""The other denominators of published reports: dossiers finished, and dossiers due, in the period."""

import pytest
from httpx import AsyncClient

from tests.dossiers.conftest import received, send, step

pytestmark = pytest.mark.usefixtures("world")


async def test_on_time_of_resolved_and_of_due(portal: AsyncClient) -> None:
    await send(
        portal,
        # Due Thu 10 Aug (3 working days): finished on time.
        received("A", "2023-08-07T09:00:00+07:00", channel="direct"),
        step("A", "resolved", "2023-08-09T09:00:00+07:00"),
        # Due Thu 10 Aug: finished late.
        received("B", "2023-08-07T09:00:00+07:00", channel="direct"),
        step("B", "resolved", "2023-08-21T09:00:00+07:00"),
        # Due Tue 3 Oct, in the next quarter; still open.
        received("C", "2023-09-28T09:00:00+07:00", channel="direct"),
    )
    q3 = (await portal.get("/api/v1/stats/dossiers", params={"period": "2023-Q3", "unit": "31"})).json()[
        "total"
    ]
    assert (q3["counts"]["due_in_period"], q3["counts"]["due_in_period_on_time"]) == (2, 1)
    assert q3["rates"]["on_time_of_due"] == 50.0
    assert q3["rates"]["on_time_of_resolved"] == 50.0
    assert q3["rates"]["on_time"] == 33.33  # 1 of the 3 dossiers of the quarter
    q4 = (await portal.get("/api/v1/stats/dossiers", params={"period": "2023-Q4", "unit": "31"})).json()[
        "total"
    ]
    assert (q4["counts"]["due_in_period"], q4["rates"]["on_time_of_due"]) == (1, 0.0)
