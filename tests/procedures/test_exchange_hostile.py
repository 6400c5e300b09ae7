"""The catalogue's import and export under attack (issue 27): slow readers of the export, huge
imports, and texts that look like spreadsheet formulas."""

import asyncio
import csv
import io
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from httpx import AsyncClient

from app.core.config import Settings
from app.core.errors import FieldError
from app.core.export import FORMULA_STARTS
from app.main import create_app
from app.procedures import exchange, importing
from app.procedures.schemas import ProcedureCreate
from app.procedures.service import new_procedure
from tests.procedures.conftest import procedure

PROCEDURES = "/api/v1/procedures"
# Every wait of these tests is bounded by this, far beyond what any of them needs on a busy machine.
PATIENCE = 60.0


# --- texts that look like formulas round-trip exactly (finding 14) -----------------------------


def csv_cells(exported: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(exported.decode("utf-8-sig"))))


@pytest.mark.usefixtures("sectors")
async def test_csv_round_trips_names_with_apostrophes_and_formula_starts(
    writer: AsyncClient, client: AsyncClient
) -> None:
    names = ["'=1+1", "=1+1", "''=HYPERLINK(\"x\")", "'Đăng ký", "'", "@user", "-", "+84 đường dây nóng"]
    for number, name in enumerate(names):
        made = await writer.post(
            PROCEDURES, json=procedure(f"9.{number}", name, implementing_agency=name, description=name)
        )
        assert made.status_code == 201, made.text

    exported = (await client.get(f"{PROCEDURES}/export", params={"format": "csv"})).content
    rows = csv_cells(exported)
    # What a spreadsheet sees: no cell it would run, and each text shown as stored.
    assert not [cell for row in rows for cell in row if cell.startswith(FORMULA_STARTS)]
    by_code = {row[0]: row[1] for row in rows[1:]}
    assert by_code["9.0"] == "''=1+1"
    assert by_code["9.1"] == "'=1+1"
    assert by_code["9.3"] == "'Đăng ký"

    again = await writer.post(f"{PROCEDURES}/import", content=exported, headers={"content-type": "text/csv"})
    assert again.status_code == 200, again.text
    assert again.json() == {"created": 0, "updated": 0, "unchanged": len(names), "errors": []}
    for number, name in enumerate(names):
        stored = (await client.get(f"{PROCEDURES}/9.{number}")).json()
        assert (stored["name"], stored["implementing_agency"], stored["description"]) == (name, name, name)
        assert stored["version"] == 1
    assert (await client.get(f"{PROCEDURES}/export", params={"format": "csv"})).content == exported


@pytest.mark.usefixtures("sectors")
async def test_csv_round_trips_a_description_with_surrounding_whitespace(
    writer: AsyncClient, client: AsyncClient
) -> None:
    description = "  Mô tả thủ tục,\r\n có hai dòng.\n"
    made = await writer.post(PROCEDURES, json=procedure("9.9", "Đăng ký", description=description))
    assert made.status_code == 201, made.text
    exported = (await client.get(f"{PROCEDURES}/export", params={"format": "csv"})).content
    again = await writer.post(f"{PROCEDURES}/import", content=exported, headers={"content-type": "text/csv"})
    assert again.json() == {"created": 0, "updated": 0, "unchanged": 1, "errors": []}
    stored = (await client.get(f"{PROCEDURES}/9.9")).json()
    assert (stored["description"], stored["version"]) == (description, 1)


# --- a huge import is refused by its size, and parsing leaves the event loop free (finding 6) ---


@pytest.mark.usefixtures("sectors")
async def test_an_import_of_too_many_rows_is_refused_without_reading_them_all(
    writer: AsyncClient, client: AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    read: list[int] = []
    row_to_object = exchange.row_to_object

    def counted(row: dict[str, str | None], number: int) -> dict[str, Any] | FieldError:
        read.append(number)
        return row_to_object(row, number)

    monkeypatch.setattr(exchange, "row_to_object", counted)
    body = ("code,name\r\n" + "a\r\n" * 600_000).encode()
    imported, health = await asyncio.gather(
        writer.post(f"{PROCEDURES}/import", content=body, headers={"content-type": "text/csv"}),
        client.get("/healthz"),
    )
    assert imported.status_code == 422, imported.text
    assert imported.headers["content-type"] == "application/problem+json"
    assert [error["type"] for error in imported.json()["errors"]] == ["too_many_rows"]
    assert health.status_code == 200
    assert len(read) <= importing.MAX_IMPORT_ROWS + 1
    assert (await client.get(PROCEDURES)).json()["items"] == []


def answering_healthz_meanwhile(
    function: Callable[..., Any], client: AsyncClient, loop: asyncio.AbstractEventLoop, answers: list[int]
) -> Callable[..., Any]:
    """``function``, which first has the event loop answer ``GET /healthz``: that can only happen
    when ``function`` runs off the loop (on the loop, the wait runs out and the answer is 0)."""

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if not answers:
            future = asyncio.run_coroutine_threadsafe(client.get("/healthz"), loop)
            try:
                answers.append(future.result(timeout=PATIENCE / 3).status_code)
            except TimeoutError:
                future.cancel()
                answers.append(0)
        return function(*args, **kwargs)

    return wrapped


@pytest.mark.usefixtures("sectors")
@pytest.mark.parametrize(
    ("media_type", "module", "name"),
    [
        ("text/csv", exchange, "read_csv"),  # reading the file
        ("application/json", importing, "_parse"),  # validating its rows
        ("application/json", importing, "new_procedure"),  # building what is written
    ],
)
async def test_parsing_an_import_leaves_the_event_loop_free(
    writer: AsyncClient,
    client: AsyncClient,
    monkeypatch: pytest.MonkeyPatch,
    media_type: str,
    module: Any,
    name: str,
) -> None:
    answers: list[int] = []
    monkeypatch.setattr(
        module,
        name,
        answering_healthz_meanwhile(getattr(module, name), client, asyncio.get_running_loop(), answers),
    )
    rows = [procedure(f"1.{number:06d}", f"Thủ tục {number}") for number in range(200)]
    if media_type == "text/csv":
        text = (
            "code,name,sector_code,levels,channels,processing_time_value,processing_time_unit\r\n"
            + "".join(
                f"{row['code']},{row['name']},ho-tich,commune,direct,3,working_days\r\n" for row in rows
            )
        )
        imported = await writer.post(
            f"{PROCEDURES}/import", content=text.encode(), headers={"content-type": media_type}
        )
    else:
        imported = await writer.post(f"{PROCEDURES}/import", json=rows)
    assert imported.status_code == 200, imported.text
    assert imported.json()["created"] == 200
    assert answers == [200]


# --- slow readers of the export hold no database connection, and are cut (finding 2) ------------


# The server's send buffer, fixed: the kernel would otherwise grow it to 4 MiB or more (tcp_wmem),
# and how much a client that stops reading leaves in flight would depend on the machine.
SEND_BUFFER = 64 * 1024


@contextmanager
def serving(settings: Settings) -> Iterator[tuple[str, FastAPI]]:
    """uvicorn serving the app on ``settings`` on a free port, in a thread of its own."""
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)  # accepted sockets inherit it
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    application = create_app(settings)
    server = uvicorn.Server(uvicorn.Config(application, log_level="warning", timeout_graceful_shutdown=5))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    wait_until(lambda: server.started or not thread.is_alive(), "the server to start")
    assert server.started, "the server did not start"
    try:
        yield f"http://127.0.0.1:{port}", application
    finally:
        server.should_exit = True
        thread.join(timeout=PATIENCE)
        listener.close()


def wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + PATIENCE
    while not condition():
        assert time.monotonic() < deadline, f"waited {PATIENCE:g} s for {what}"
        time.sleep(0.05)


async def eventually(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + PATIENCE
    while not condition():
        assert time.monotonic() < deadline, f"waited {PATIENCE:g} s for {what}"
        await asyncio.sleep(0.05)


@contextmanager
def dawdler(url: str) -> Iterator[tuple[socket.socket, bytes]]:
    """A client that asks for the CSV export, reads its first kilobyte or so, and stops reading."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.socket()
    # A small receive window: the server's buffers, not this socket's, fill up.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(PATIENCE)
    try:
        sock.connect((host, int(port)))
        sock.sendall(f"GET {PROCEDURES}/export?format=csv HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        received = b""
        while len(received) < 1024:
            data = sock.recv(1024)
            assert data, "the server closed the connection before sending anything"
            received += data
        assert received.startswith(b"HTTP/1.1 200"), received[:200]
        yield sock, received
    finally:
        sock.close()


async def big_catalogue(app: FastAPI) -> None:
    """A catalogue of more than one chunk of the export (500 procedures), and of about 2 MB of CSV:
    far more than the buffers between server and client hold."""
    description = ("Thủ tục hành chính được thực hiện ở cấp xã. " * 50)[:2000]
    made = [
        new_procedure(
            ProcedureCreate.model_validate(procedure(f"1.{n:05d}", f"Thủ tục {n}", description=description)),
            None,
        )
        for n in range(700)
    ]
    async with app.state.sessionmaker() as session, session.begin():
        session.add_all([made_procedure for made_procedure, _version in made])
        await session.flush()
        session.add_all([version for _procedure, version in made])


@pytest.mark.usefixtures("sectors")
async def test_clients_that_stop_reading_the_export_hold_no_database_connection(
    app: FastAPI, database_url: str
) -> None:
    await big_catalogue(app)
    # PostgreSQL: at most 2 connections, which 4 stalled exports held for as long as they liked.
    settings = Settings(database_url=database_url, database_pool_size=1)
    with (
        serving(settings) as (url, application),
        dawdler(url),
        dawdler(url),
        dawdler(url),
        dawdler(url),
    ):
        await eventually(
            lambda: application.state.engine.pool.checkedout() == 0,
            "the stalled exports to give their database connections back",
        )
        async with httpx.AsyncClient(base_url=url, timeout=PATIENCE) as http:
            assert (await http.get("/readyz")).status_code == 200
            assert (await http.get(f"{PROCEDURES}/1.00007")).status_code == 200, "a read"
            assert (await http.get(PROCEDURES, params={"limit": 5})).status_code == 200


@pytest.mark.usefixtures("sectors")
async def test_an_export_whose_client_stops_reading_is_cut(
    app: FastAPI, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    await big_catalogue(app)
    caplog.set_level(logging.WARNING, logger="tthc.procedures")
    with (
        serving(Settings(database_url=database_url, export_send_timeout=1.0)) as (url, _app),
        dawdler(url) as (sock, received),
    ):
        await eventually(
            lambda: any("streamed answer cut" in record.getMessage() for record in caplog.records),
            "the export to be cut",
        )
        # Reading again, the client gets what was already on its way, then the end of the connection:
        # the body stops short of its end (the last chunk of a chunked body is `0\r\n\r\n`).
        while data := sock.recv(65536):
            received += data
        assert not received.endswith(b"\r\n0\r\n\r\n")
        async with httpx.AsyncClient(base_url=url, timeout=PATIENCE) as http:
            whole = await http.get(f"{PROCEDURES}/export", params={"format": "csv"})
            assert whole.status_code == 200
            assert len(received) < len(whole.content)
            assert (await http.get("/readyz")).status_code == 200
