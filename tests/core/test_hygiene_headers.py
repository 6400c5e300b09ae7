"""The edge's text check looks at the body the application will parse, whatever the headers claim.

An attacker sent `Content-Type: application/json` and then `text/plain`: the check read the last
header (not JSON, so JSON escapes went unexamined) while the application parsed the first, and
`\\u0000` reached PostgreSQL (500) or was stored by SQLite (issue 27, finding 4)."""

import json
from typing import Any

import pytest
from fastapi import FastAPI
from httpx import AsyncClient
from starlette.types import Message

from tests.conftest import KeyFactory

pytestmark = pytest.mark.usefixtures("world")

UNIT = {"code": "99001", "level": "commune", "parent_code": "313", "valid_to": "2025-06-30"}


async def raw_request(
    app: FastAPI, method: str, path: str, headers: list[tuple[bytes, bytes]], body: bytes
) -> tuple[int, dict[bytes, bytes], bytes]:
    """One ASGI request with exactly these header lines (duplicates kept, in order)."""
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"testserver"), *headers, (b"content-length", str(len(body)).encode())],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }
    sent = False
    status = 0
    answer_headers: dict[bytes, bytes] = {}
    chunks: list[bytes] = []

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
            answer_headers.update(message.get("headers", []))
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, send)
    return status, answer_headers, b"".join(chunks)


def unit_body(escape: str) -> bytes:
    # The escape is written into the JSON text itself, as an attacker's client would send it.
    return json.dumps({**UNIT, "name": "Xã@Mới"}).replace("@", escape).encode()


@pytest.mark.parametrize("escape", ["\\u0000", "\\u0001", "\\u001b", "\\u007f"])
@pytest.mark.parametrize(
    "content_types",
    [
        [b"application/json", b"text/plain"],
        [b"application/json", b"multipart/form-data; boundary=x"],
        [b"application/json; charset=utf-8", b"application/octet-stream", b"text/csv"],
    ],
    ids=["then-text", "then-multipart", "then-two-more"],
)
async def test_a_second_content_type_does_not_hide_control_characters(
    app: FastAPI, api_key: KeyFactory, writer: AsyncClient, content_types: list[bytes], escape: str
) -> None:
    authorization = (await api_key("units:write"))["Authorization"].encode()
    headers = [(b"authorization", authorization), *((b"content-type", value) for value in content_types)]
    status, answer_headers, body = await raw_request(app, "POST", "/api/v1/units", headers, unit_body(escape))
    assert status == 422, body
    assert answer_headers[b"content-type"] == b"application/problem+json"
    assert json.loads(body)["errors"][0]["type"] == "control_character"
    assert (await writer.get("/api/v1/units/99001")).status_code == 404
    # The same body without the escape is a unit: only the control character was refused.
    status, _, body = await raw_request(app, "POST", "/api/v1/units", headers, unit_body("-"))
    assert status == 201, body
    assert (await writer.get("/api/v1/units/99001")).json()["name"] == "Xã-Mới"


async def test_a_json_escape_in_a_csv_cell_that_holds_json_is_422(writer: AsyncClient) -> None:
    # The `fees` cell of a catalogue CSV is JSON: `\u0001` in it is a control character once read.
    header = "code,name,sector_code,levels,channels,processing_time_value,processing_time_unit,fees\r\n"
    fees = '"[{""name"": ""L\\u0001"", ""amount_vnd"": 1}]"'
    line = f"1.7,Khai sinh,ho-tich,commune,direct,3,working_days,{fees}\r\n"
    for content_type in ("text/csv", "application/csv"):
        response = await writer.post(
            "/api/v1/procedures/import",
            content=(header + line).encode(),
            headers={"content-type": content_type},
        )
        assert response.status_code == 422, response.text
        assert response.json()["errors"][0]["type"] == "control_character"
    files = {"file": ("catalogue.csv", (header + line).encode(), "text/csv")}
    response = await writer.post("/api/v1/procedures/import", files=files)
    assert response.status_code == 422, response.text
    assert (await writer.get("/api/v1/procedures/1.7")).status_code == 404
    fine = line.replace("\\u0001", "\\u00e1")  # an escaped letter is text
    response = await writer.post(
        "/api/v1/procedures/import", content=(header + fine).encode(), headers={"content-type": "text/csv"}
    )
    assert response.status_code == 200, response.text
    assert (await writer.get("/api/v1/procedures/1.7")).json()["fees"][0]["name"] == "Lá"
