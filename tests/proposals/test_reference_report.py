"""The proposals of the Kiến Thụy 2023 report (SPEC §7), counted back by /stats/proposals."""

from typing import Any

from httpx import AsyncClient

from tests.proposals.test_proposals import SECTORS, catalogue, district, move, procedure, province  # noqa: F401

# (kind, level, sector, how many)
REPORT = [
    ("simplify", "district", "tu-phap", 3),
    ("simplify", "commune", "tu-phap", 2),
    ("simplify", "district", "vh-tttt", 3),
    ("simplify", "district", "xd-ct-gt", 4),
    ("simplify", "district", "noi-vu", 8),
    ("simplify", "district", "y-te", 1),
    ("abolish", "district", "vh-ttgd", 2),
    ("abolish", "district", "cong-thuong", 4),
    ("abolish", "district", "ld-tbxh", 3),
    ("reduce_fee", "district", "tu-phap", 3),
]


async def propose_the_report(writer: AsyncClient, proposer: AsyncClient) -> dict[str, Any]:
    """The report's 33 proposals, each on a procedure of its own, submitted in May 2023; the last body."""
    number = 0
    body: dict[str, Any] = {}
    for kind, level, sector, count in REPORT:
        for _ in range(count):
            number += 1
            code = f"R-{number:03d}"
            assert (await writer.post("/api/v1/procedures", json=procedure(code, sector))).status_code == 201
            body = {
                "kind": kind,
                "procedure_code": code,
                "level": level,
                "unit_code": "313" if level == "district" else "11680",
                "title": f"Phương án {number}",
                "rationale": "Cải cách thủ tục hành chính",
                "change": {
                    "simplify": {"processing_time": {"value": 3, "unit": "working_days"}},
                    "reduce_fee": {"fees": [{"name": "Lệ phí", "amount_vnd": 25000}]},
                    "abolish": {},
                }[kind],
                "cost_before_vnd": 10_000_000,
                "cost_after_vnd": 0 if kind == "abolish" else 6_000_000,
            }
            created = await proposer.post("/api/v1/proposals", json=body)
            assert created.status_code == 201, created.text
            submitted = await move(
                proposer, created.json()["id"], "submitted", occurred_at="2023-05-15T09:00:00+07:00"
            )
            assert submitted.status_code == 200
    return body


async def test_the_report_proposals_are_counted_back(
    writer: AsyncClient,
    district: AsyncClient,  # noqa: F811
    client: AsyncClient,
) -> None:
    body = await propose_the_report(writer, district)
    # A draft is not counted: only proposals submitted in the period are.
    await district.post(
        "/api/v1/proposals",
        json={**body, "kind": "simplify", "procedure_code": "P-1", "change": {"name": "Khác"}},
    )

    by_level = (
        await client.get(
            "/api/v1/stats/proposals", params={"unit": "313", "period": "2023", "group_by": "kind,level"}
        )
    ).json()
    assert {(r["key"]["kind"], r["key"]["level"]): r["counts"]["count"] for r in by_level["rows"]} == {
        ("abolish", "district"): 9,
        ("reduce_fee", "district"): 3,
        ("simplify", "commune"): 2,
        ("simplify", "district"): 19,
    }
    assert by_level["total"]["counts"] == {"count": 33, "savings_vnd": 9 * 10_000_000 + 24 * 4_000_000}

    by_sector = (
        await client.get(
            "/api/v1/stats/proposals", params={"unit": "313", "period": "2023", "group_by": "kind,sector"}
        )
    ).json()
    assert {(r["key"]["kind"], r["key"]["sector"]): r["counts"]["count"] for r in by_sector["rows"]} == {
        ("simplify", "tu-phap"): 5,
        ("simplify", "vh-tttt"): 3,
        ("simplify", "xd-ct-gt"): 4,
        ("simplify", "noi-vu"): 8,
        ("simplify", "y-te"): 1,
        ("abolish", "vh-ttgd"): 2,
        ("abolish", "cong-thuong"): 4,
        ("abolish", "ld-tbxh"): 3,
        ("reduce_fee", "tu-phap"): 3,
    }
    assert SECTORS  # the sectors the fixture created

    csv_response = await client.get(
        "/api/v1/stats/proposals",
        params={"unit": "313", "period": "2023", "group_by": "kind", "format": "csv"},
    )
    assert csv_response.status_code == 200
    assert csv_response.text.splitlines()[-1].startswith("2023,calendar,TOTAL,33,")
    etag = csv_response.headers["etag"]
    again = await client.get(
        "/api/v1/stats/proposals",
        params={"unit": "313", "period": "2023", "group_by": "kind", "format": "csv"},
        headers={"If-None-Match": etag},
    )
    assert again.status_code == 304
    empty = (await client.get("/api/v1/stats/proposals", params={"unit": "313", "period": "2024"})).json()
    assert empty["total"]["counts"] == {"count": 0, "savings_vnd": 0}
    assert (
        await client.get("/api/v1/stats/proposals", params={"period": "2023", "group_by": "unit"})
    ).status_code == 422
