"""Every list reads what it shows in a fixed number of statements, whatever the page size: no
query per listed item (a 40-item page of proposals once took 42 statements)."""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from fastapi import FastAPI
from httpx import AsyncClient
from sqlalchemy import event

from tests.conftest import KeyFactory
from tests.dossiers.conftest import procedure_body, received, send, step

PAGE_SIZES = (2, 6)


@contextmanager
def counted_statements(app: FastAPI) -> Iterator[list[str]]:
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    engine = app.state.engine.sync_engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", count)


@pytest.fixture
async def everything(writer: AsyncClient, portal: AsyncClient, api_key: KeyFactory) -> None:
    """At least seven items in every list, most of them with parts of their own (transitions)."""
    for number in range(7):
        response = await writer.post("/api/v1/sectors", json={"code": f"s-{number}", "name": f"S {number}"})
        assert response.status_code == 201
        commune = {
            "code": f"1169{number}",
            "name": f"Xã {number}",
            "level": "commune",
            "parent_code": "313",
            "valid_to": "2025-06-30",
        }
        assert (await writer.post("/api/v1/units", json=commune)).status_code == 201
        procedure = procedure_body(
            f"9.00000{number}", f"Đăng ký thử {number}", ["commune"], 3, "working_days"
        )
        assert (await writer.post("/api/v1/procedures", json=procedure)).status_code == 201
        response = await writer.patch(
            "/api/v1/procedures/1.000894",
            json={"name": f"Đăng ký kết hôn {number}"},
            headers={"If-Match": (await writer.get("/api/v1/procedures/1.000894")).headers["etag"]},
        )
        assert response.status_code == 200, response.text
        proposal = await writer.post(
            "/api/v1/proposals",
            json={
                "kind": "abolish",
                "procedure_code": "1.000894",
                "level": "commune",
                "unit_code": "11680",
                "title": f"Bãi bỏ {number}",
                "rationale": "Không cần thiết",
                "change": {},
            },
        )
        assert proposal.status_code == 201, proposal.text
        moved = await writer.post(
            f"/api/v1/proposals/{proposal.json()['id']}/transitions", json={"to": "withdrawn"}
        )
        assert moved.status_code == 200, moved.text
        feedback = await writer.post(
            "/api/v1/feedback",
            json={
                "external_ref": f"PAKN-{number}",
                "channel": "hotline",
                "subject": "procedure",
                "procedure_code": "1.000894",
                "unit_code": "11680",
                "content": "Chậm trả kết quả",
                "received_at": "2024-03-04T09:00:00+07:00",
            },
        )
        assert feedback.status_code == 201, feedback.text
        moved = await writer.post(
            f"/api/v1/feedback/{feedback.json()['id']}/transitions",
            json={"to": "processing", "occurred_at": "2024-03-05T09:00:00+07:00"},
        )
        assert moved.status_code == 200, moved.text
        await send(portal, received(f"D-{number}", "2024-03-04T09:00:00+07:00"))
        # An event of a dossier not received yet waits, listed among the pending events.
        waiting = await send(portal, step(f"W-{number}", "resolved", "2024-03-05T09:00:00+07:00"))
        assert waiting[0]["status"] == "pending", waiting
        await api_key("dossiers:read", name=f"reader-{number}")


LISTS = [
    "/api/v1/units",
    "/api/v1/units/313/children",
    "/api/v1/sectors",
    "/api/v1/procedures",
    "/api/v1/procedures?q=dang ky",
    "/api/v1/procedures/1.000894/history",
    "/api/v1/dossiers",
    "/api/v1/dossier-events?pending=true",
    "/api/v1/proposals",
    "/api/v1/feedback",
    "/api/v1/clients",
    "/api/v1/audit",
]


@pytest.mark.parametrize("path", LISTS)
async def test_a_list_page_costs_the_same_statements_at_any_size(
    app: FastAPI, writer: AsyncClient, everything: None, path: str
) -> None:
    separator = "&" if "?" in path else "?"
    assert (await writer.get(path)).status_code == 200  # the key's last use is touched once, here
    counts = {}
    for size in PAGE_SIZES:
        with counted_statements(app) as statements:
            response = await writer.get(f"{path}{separator}limit={size}")
        assert response.status_code == 200, response.text
        assert len(response.json()["items"]) == size, f"{path} has too few items to tell"
        counts[size] = len(statements)
    assert counts[PAGE_SIZES[0]] == counts[PAGE_SIZES[1]], counts
