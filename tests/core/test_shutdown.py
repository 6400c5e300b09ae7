"""SIGTERM stops the server only after the requests in flight have been answered."""

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import KeyFactory
from tests.dossiers.conftest import received, world  # noqa: F401

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.only_backend("sqlite")
@pytest.mark.usefixtures("world")
async def test_sigterm_lets_the_request_in_flight_finish(database_url: str, api_key: KeyFactory) -> None:
    headers = await api_key("dossiers:write", name="portal")
    await asyncio.to_thread(serve_and_terminate, database_url, headers)


def serve_and_terminate(database_url: str, headers: dict[str, str]) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "serve", "--port", str(port)],
        cwd=ROOT,
        env={**os.environ, "TTHC_DATABASE_URL": database_url, "TTHC_LOG_LEVEL": "WARNING"},
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(f"{base}/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            # A server that answers but is never ready fails here too, rather than waiting forever.
            assert time.monotonic() < deadline and server.poll() is None, "the server did not get ready"
            time.sleep(0.1)
        events = [received(f"SIG-{n}", "2023-07-03T09:00:00+07:00") for n in range(1000)]
        body = json.dumps({"events": events}).encode()
        outcome: dict[str, object] = {}

        def slow_body() -> Iterator[bytes]:
            # Half now, half after the signal: the request is surely in flight when SIGTERM comes.
            yield body[: len(body) // 2]
            time.sleep(1.0)
            yield body[len(body) // 2 :]

        def push() -> None:
            response = httpx.post(
                f"{base}/api/v1/dossier-events/batch",
                content=slow_body(),
                headers={**headers, "Content-Type": "application/json", "Content-Length": str(len(body))},
                timeout=60,
            )
            outcome["response"] = response
            outcome["answered_at"] = time.monotonic()

        sender = threading.Thread(target=push)
        sender.start()
        time.sleep(0.3)
        server.send_signal(signal.SIGTERM)
        terminated_at = time.monotonic()
        sender.join(timeout=60)
        # uvicorn shuts down gracefully, then re-raises the signal, so the exit status says SIGTERM.
        assert server.wait(timeout=30) in (0, -signal.SIGTERM)
        response = outcome["response"]
        assert isinstance(response, httpx.Response) and response.status_code == 200
        assert {r["status"] for r in response.json()["results"]} == {"created"}
        assert isinstance(outcome["answered_at"], float) and outcome["answered_at"] > terminated_at
    finally:
        if server.poll() is None:
            server.kill()
