"""The statistics endpoints as pollers and spreadsheets use them."""

import csv
import io
from typing import Any

import pytest
from fastapi import FastAPI
from httpx import AsyncClient
from sqlalchemy import update

from app.core.http_caching import answer_cache
from app.dossiers.counters import DossierCounter
from app.stats.definitions import COUNT_NAMES, RATE_NAMES
from tests.dossiers.conftest import portal, received, send, step, world  # noqa: F401

STATS = "/api/v1/stats/dossiers"

pytestmark = pytest.mark.usefixtures("world")


@pytest.fixture
async def history(portal: AsyncClient) -> None:  # noqa: F811
    results = await send(
        portal,
        received("HS-JUNE", "2023-06-20T09:00:00+07:00"),
        received("HS-1", "2023-07-03T09:00:00+07:00", channel="direct"),
        step("HS-1", "resolved", "2023-07-04T09:00:00+07:00"),
        received(
            "HS-2", "2023-08-01T09:00:00+07:00", procedure="2.000001", unit="313", online_level="partial"
        ),
        received("HS-3", "2023-09-20T09:00:00+07:00", unit="11737"),
        step("HS-3", "supplement_requested", "2023-09-21T09:00:00+07:00"),
        {**received("HS-4", "2023-08-10T09:00:00+07:00"), "type": "refused", "event_id": "HS-4-refused"},
    )
    assert {r["status"] for r in results} == {"created"}


async def stats(client: AsyncClient, **params: Any) -> dict[str, Any]:
    response = await client.get(STATS, params=params)
    assert response.status_code == 200, response.text
    return dict(response.json())


@pytest.mark.usefixtures("history")
async def test_totals_groups_and_schemes(client: AsyncClient) -> None:
    body = await stats(client, unit="31", period="2023-Q3")
    counts = body["total"]["counts"]
    assert (counts["carried_over"], counts["received"], counts["total"]) == (1, 3, 4)
    assert (counts["resolved_on_time"], counts["resolved_early"], counts["in_progress"]) == (1, 1, 3)
    assert (counts["waiting_supplement"], counts["in_progress_overdue"], counts["refused"]) == (1, 2, 1)
    assert (counts["received_direct"], counts["received_online"], counts["online"]) == (1, 2, 3)
    assert body["total"]["rates"] == {
        "on_time": 25.0,
        "on_time_766": 50.0,
        "online": 75.0,
        "on_time_of_resolved": 100.0,
        "on_time_of_due": 33.33,
    }
    assert body["rows"] == [] and body["group_by"] == [] and body["unit"] == "31"

    # Decree 09/2019: Q3 runs from 15 June to 14 September, so June's dossier is received in it
    # and September's is not.
    report = (await stats(client, unit="31", period="2023-Q3", scheme="report"))["total"]["counts"]
    assert (report["carried_over"], report["received"]) == (0, 3)
    assert body["period"]["start"] == "2023-07-01T00:00:00+07:00"
    assert (await stats(client, period="2023-Q3", scheme="report"))["period"][
        "end"
    ] == "2023-09-15T00:00:00+07:00"

    by_unit = await stats(client, unit="313", period="2023-Q3", group_by="unit_level,unit")
    assert [row["key"] for row in by_unit["rows"]] == [
        {"unit_level": "commune", "unit": "11680"},
        {"unit_level": "district", "unit": "313"},
    ]
    by_sector = await stats(client, unit="31", period="2023", group_by="sector,procedure")
    assert {(r["key"]["sector"], r["key"]["procedure"]) for r in by_sector["rows"]} == {
        ("ho-tich", "1.000894"),
        ("ho-tich", "2.000001"),
    }
    custom = await stats(client, unit="11737", **{"from": "2023-09-01", "to": "2023-09-30"})
    assert custom["period"]["label"] == "2023-09-01..2023-09-30"
    assert custom["total"]["counts"]["waiting_supplement"] == 1


async def test_rates_are_null_without_dossiers(client: AsyncClient) -> None:
    body = await stats(client, unit="313", period="2023-07")
    assert body["total"]["counts"]["total"] == 0
    rate_names = ("on_time", "on_time_766", "online", "on_time_of_resolved", "on_time_of_due")
    assert body["total"]["rates"] == dict.fromkeys(rate_names)


@pytest.mark.parametrize(
    ("params", "status"),
    [
        ({"unit": "nowhere", "period": "2023"}, 404),
        ({"period": "2023-Q5"}, 422),
        ({"period": "2023-13"}, 422),
        ({"period": "23-Q1"}, 422),
        ({"from": "2023-09-01", "to": "2023-08-01"}, 422),
        ({"from": "2010-01-01", "to": "2023-08-01"}, 422),
        ({"from": "2023-01-01"}, 422),
        ({"period": "2023", "from": "2023-01-01", "to": "2023-02-01"}, 422),
        ({}, 422),
        ({"period": "2023", "group_by": "colour"}, 422),
        ({"period": "2023", "group_by": "unit,unit"}, 422),
        ({"period": "2023", "scheme": "lunar"}, 422),
    ],
)
async def test_bad_requests(client: AsyncClient, params: dict[str, str], status: int) -> None:
    response = await client.get(STATS, params=params)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"


@pytest.mark.usefixtures("history")
async def test_polling_with_etags(client: AsyncClient, portal: AsyncClient) -> None:  # noqa: F811
    params = {"unit": "31", "period": "2023-Q3"}
    first = await client.get(STATS, params=params)
    assert first.headers["cache-control"] == "public, max-age=60, must-revalidate"
    etag = first.headers["etag"]
    unchanged = await client.get(STATS, params=params, headers={"If-None-Match": etag})
    assert unchanged.status_code == 304 and unchanged.content == b""
    await send(portal, step("HS-2", "resolved", "2023-08-02T09:00:00+07:00"))
    changed = await client.get(STATS, params=params, headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["etag"] != etag
    # The tag names the stored data's version, so that a revalidation costs one row read: any
    # write makes pollers fetch again, even one outside their unit and period (same body).
    await send(portal, received("HS-9", "2024-02-01T09:00:00+07:00"))
    refetched = await client.get(STATS, params=params, headers={"If-None-Match": changed.headers["etag"]})
    assert refetched.status_code == 200 and refetched.content == changed.content
    # A read changes nothing; the CSV of the same question has a tag of its own.
    assert (
        await client.get(STATS, params=params, headers={"If-None-Match": refetched.headers["etag"]})
    ).status_code == 304
    as_csv = await client.get(STATS, params=params, headers={"Accept": "text/csv"})
    assert as_csv.headers["etag"] != refetched.headers["etag"]
    other_period = await client.get(STATS, params={**params, "period": "2023-Q4"})
    assert other_period.headers["etag"] != refetched.headers["etag"]


@pytest.mark.usefixtures("history")
async def test_csv_has_the_same_rows(client: AsyncClient) -> None:
    params = {"unit": "313", "period": "2023-Q3", "group_by": "unit_level"}
    as_json = await stats(client, **params)
    for response in (
        await client.get(STATS, params={**params, "format": "csv"}),
        await client.get(STATS, params=params, headers={"Accept": "text/csv"}),
    ):
        assert response.headers["content-type"] == "text/csv; charset=utf-8"
        assert response.content.startswith("\ufeff".encode())
        lines = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
        header, *rows = lines
        assert header[:3] == ["period", "scheme", "unit_level"] and "resolved_on_time" in header
        assert [row[2] for row in rows] == ["commune", "district", "TOTAL"]
        total = dict(zip(header, rows[-1], strict=True))
        assert int(total["total"]) == as_json["total"]["counts"]["total"]
        assert total["on_time"] == "0.00" or float(total["on_time"]) == as_json["total"]["rates"]["on_time"]
        disposition = response.headers["content-disposition"]
        assert disposition == 'attachment; filename="tthc-stats-dossiers-313-2023-Q3.csv"'


@pytest.mark.usefixtures("history")
async def test_csv_reads_as_a_table_of_typed_columns(client: AsyncClient) -> None:
    # What pandas.read_csv or a BI tool does: the first line names the columns, every other is data.
    params = {"period": "2023-Q3", "group_by": "unit", "format": "csv"}
    as_json = await stats(client, period="2023-Q3", group_by="unit")
    response = await client.get(STATS, params=params)
    reader = csv.DictReader(io.StringIO(response.content.decode("utf-8-sig")))
    rows = list(reader)
    assert reader.fieldnames is not None and reader.fieldnames[:3] == ["period", "scheme", "unit"]
    assert len(rows) == len(as_json["rows"]) + 1 and rows[-1]["unit"] == "TOTAL"
    for row in rows:
        assert (row["period"], row["scheme"]) == ("2023-Q3", "calendar")
        for name in COUNT_NAMES:
            assert int(row[name]) >= 0  # every count column holds whole numbers, no header text
        for name in RATE_NAMES:
            header = "online_rate" if name == "online" else name
            assert row[header] == "" or 0 <= float(row[header]) <= 100
    total = as_json["total"]["counts"]
    assert {name: int(rows[-1][name]) for name in COUNT_NAMES} == {name: total[name] for name in COUNT_NAMES}


@pytest.mark.usefixtures("history")
async def test_csv_with_vietnamese_labels_has_their_one_header_row(client: AsyncClient) -> None:
    params = {"unit": "313", "period": "2023-Q3", "group_by": "unit_level", "format": "csv"}
    names, vietnamese = [
        list(csv.reader(io.StringIO((await client.get(STATS, params=query)).content.decode("utf-8-sig"))))
        for query in (params, {**params, "labels": "vi"})
    ]
    assert vietnamese[0][:3] == ["Kỳ báo cáo", "Cách tính kỳ", "Cấp"]
    assert vietnamese[0][names[0].index("total")] == "Tổng số hồ sơ"
    assert vietnamese[0][names[0].index("online_rate")] == "Tỷ lệ trực tuyến (%)"
    assert vietnamese[1:] == names[1:] and len(vietnamese) == len(names)
    # The JSON answer does not change with labels.
    assert (await client.get(STATS, params={"period": "2023-Q3", "labels": "vi"})).json() == await stats(
        client, period="2023-Q3"
    )
    assert (await client.get(STATS, params={**params, "labels": "fr"})).status_code == 422


@pytest.mark.usefixtures("history")
async def test_series_by_month_adds_up(client: AsyncClient) -> None:
    response = await client.get(
        f"{STATS}/series",
        params={"unit": "31", "from": "2023-07-01", "to": "2023-09-30", "interval": "month"},
    )
    assert response.status_code == 200
    points = response.json()["points"]
    assert [p["period"]["label"] for p in points] == ["2023-07", "2023-08", "2023-09"]
    quarter = (await stats(client, unit="31", period="2023-Q3"))["total"]["counts"]
    assert sum(p["counts"]["received"] for p in points) == quarter["received"]
    assert points[-1]["counts"]["in_progress"] == quarter["in_progress"]
    quarters = await client.get(
        f"{STATS}/series",
        params={"from": "2023-01-01", "to": "2023-12-31", "interval": "quarter", "scheme": "report"},
    )
    # 31 December already belongs to the first reporting quarter of 2024.
    labels = [p["period"]["label"] for p in quarters.json()["points"]]
    assert labels == ["2023-Q1", "2023-Q2", "2023-Q3", "2023-Q4", "2024-Q1"]


@pytest.mark.usefixtures("history")
async def test_statistics_are_public_and_reveal_no_dossier(client: AsyncClient) -> None:
    response = await client.get(STATS, params={"period": "2023", "group_by": "unit,procedure"})
    assert response.status_code == 200
    assert "HS-" not in response.text


@pytest.mark.usefixtures("history")
async def test_answers_are_reused_until_the_data_changes(
    app: FastAPI,
    client: AsyncClient,
    portal: AsyncClient,  # noqa: F811
) -> None:
    params = {"unit": "31", "period": "2023-Q3"}
    first = await client.get(STATS, params=params)
    # Changed behind the service's back (no write through it, so the data version stays): the kept
    # answer is served, which shows that the statistics were not computed again.
    async with app.state.engine.begin() as connection:
        await connection.execute(
            update(DossierCounter).values(received_direct=DossierCounter.received_direct + 5)
        )
    kept = await client.get(STATS, params=params)
    assert kept.status_code == 200 and kept.content == first.content
    assert kept.headers["etag"] == first.headers["etag"]
    assert kept.headers["cache-control"] == first.headers["cache-control"]
    # Any write through the service moves the version on, and the answer is computed afresh.
    await send(portal, step("HS-2", "resolved", "2023-08-02T09:00:00+07:00"))
    fresh = await client.get(STATS, params=params)
    assert (
        fresh.json()["total"]["counts"]["received_direct"]
        > first.json()["total"]["counts"]["received_direct"]
    )


def test_the_answer_cache_is_bounded_by_bytes() -> None:
    cache = answer_cache(3000)
    assert cache is not None and answer_cache(0) is None
    for number in range(10):
        cache[f"tag-{number}"] = (b"x" * 900, "application/json")
    assert len(cache) == 2 and "tag-9" in cache and "tag-0" not in cache
