"""Logs an operator can ship: in JSON mode every line a process writes is one JSON object, each
request leaves exactly one access line, and every timestamp is ISO 8601 in UTC."""

import io
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from httpx import AsyncClient

from app.core.logging import RequestIdFilter, formatter

ROOT = Path(__file__).resolve().parents[2]
ISO_UTC = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z")


def assert_utc_iso(value: str) -> None:
    assert ISO_UTC.fullmatch(value), value
    assert datetime.fromisoformat(value).utcoffset() == timedelta(0)


@pytest.fixture
def root_json_log() -> Iterator[io.StringIO]:
    """What the root handler of a JSON-mode process would write, for every logger."""
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(formatter("json"))
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield buffer
    finally:
        root.removeHandler(handler)


async def test_a_request_leaves_one_json_access_line_with_a_utc_time(
    client: AsyncClient, root_json_log: io.StringIO
) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    lines = [json.loads(line) for line in root_json_log.getvalue().splitlines() if line.strip()]
    access = [line for line in lines if line["logger"] in ("tthc.access", "uvicorn.access")]
    assert len(access) == 1
    (line,) = access
    assert line["logger"] == "tthc.access" and line["path"] == "/healthz" and line["status"] == 200
    assert line["request_id"] == response.headers["x-request-id"]
    for record in lines:
        assert_utc_iso(record["time"])


@pytest.mark.parametrize("kind", ["json", "text"])
def test_both_formats_stamp_utc_with_milliseconds(kind: str) -> None:
    record = logging.LogRecord("tthc", logging.INFO, __file__, 1, "hello", None, None)
    # 2026-12-05T15:41:11.424Z, whatever the host's time zone.
    record.created = datetime(2026, 12, 5, 15, 41, 11, 424000, tzinfo=UTC).timestamp()
    record.msecs = 424.0
    record.request_id = "-"
    line = formatter(kind).format(record)
    if kind == "json":
        assert json.loads(line)["time"] == "2026-12-05T15:41:11.424Z"
    else:
        assert line.startswith("2026-12-05T15:41:11.424Z INFO tthc request_id=- hello")


def test_the_serve_log_config_writes_warnings_and_uvicorn_lines_as_json() -> None:
    """In a process of its own: configuring logging is global."""
    script = """
import logging.config, warnings
from app.core.logging import uvicorn_log_config
logging.config.dictConfig(uvicorn_log_config("INFO", "json"))
logging.getLogger("uvicorn.error").info("started")
logging.getLogger("uvicorn.access").info("a second access line")
logging.getLogger("alembic.runtime.migration").info("Running upgrade")
warnings.warn("deprecated", DeprecationWarning, stacklevel=1)
"""
    done = subprocess.run(
        [sys.executable, "-W", "always", "-c", script],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    assert [line["logger"] for line in lines] == ["uvicorn.error", "alembic.runtime.migration", "py.warnings"]
    for line in lines:
        assert_utc_iso(line["time"])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("server_command", ["tthc serve", "uvicorn app.main:app"])
def test_the_server_writes_only_json_and_one_access_line_per_request(
    server_command: str, tmp_path: Path
) -> None:
    """Served by ``tthc serve`` or straight by ``uvicorn app.main:app`` (whose own text logging is
    set up before the app is loaded), the same lines."""
    env = {
        "TTHC_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'x.db'}",
        "TTHC_LOG_FORMAT": "json",
        "TTHC_LOG_LEVEL": "INFO",
        "PATH": os.environ.get("PATH", ""),
    }
    tthc = [sys.executable, "-m", "app.cli"]
    migrated = subprocess.run(
        [*tthc, "migrate"], capture_output=True, text=True, cwd=ROOT, env=env, check=False, timeout=300
    )
    assert migrated.returncode == 0, migrated.stderr

    port = free_port()
    out_path, err_path = tmp_path / "stdout", tmp_path / "stderr"
    with out_path.open("w") as out, err_path.open("w") as err:
        serve = {
            "tthc serve": [*tthc, "serve", "--port", str(port)],
            "uvicorn app.main:app": [sys.executable, "-m", "uvicorn", "app.main:app", "--port", str(port)],
        }[server_command]
        server = subprocess.Popen(serve, stdout=out, stderr=err, cwd=ROOT, env=env)
        try:
            # Ready once it accepts connections (uvicorn listens after the app's startup): a bare
            # connection, not a request, so the only access lines are those of the two requests.
            deadline = time.monotonic() + 120
            while True:
                assert server.poll() is None, err_path.read_text()
                assert time.monotonic() < deadline, "tthc serve did not start"
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    time.sleep(0.1)
            for _ in range(2):
                assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=30).status_code == 200
        finally:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=60)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()

    text = out_path.read_text() + err_path.read_text()
    lines = []
    for raw in text.splitlines():
        if raw.strip():
            try:
                lines.append(json.loads(raw))
            except json.JSONDecodeError:
                pytest.fail(f"a line that is not JSON: {raw!r}")
    access = [line for line in lines if line["logger"] in ("tthc.access", "uvicorn.access")]
    assert [(line["logger"], line["path"], line["status"]) for line in access] == [
        ("tthc.access", "/healthz", 200)
    ] * 2
    assert any(line["logger"] == "uvicorn.error" for line in lines)
    for line in lines:
        assert_utc_iso(line["time"])
