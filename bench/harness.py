"""Shared benchmark machinery: a real server in a subprocess, a database to load, and wrk to drive it."""

import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

import app.models  # noqa: F401  (every mapper, for the ORM writes of make_key)
from app.clients.schemas import ClientCreate
from app.clients.service import create_client
from app.core import migrations
from app.core.config import Settings
from app.core.db import create_engine, create_sessionmaker
from tests.databases import wipe_postgres_schema

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATABASE = "postgresql+asyncpg://postgres@127.0.0.1:5432/tthc_bench"


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


async def _recreate(url: str) -> None:
    parsed = make_url(url)
    admin = create_async_engine(
        parsed.set(database="postgres"), poolclass=NullPool, isolation_level="AUTOCOMMIT"
    )
    try:
        async with admin.connect() as connection:
            exists = await connection.scalar(
                text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": parsed.database}
            )
            if not exists:
                await connection.execute(text(f'CREATE DATABASE "{parsed.database}"'))
    finally:
        await admin.dispose()
    await wipe_postgres_schema(url)


def fresh_database(url: str) -> None:
    """An empty, migrated database (PostgreSQL: created if missing, its schema wiped)."""
    if url.startswith("postgresql"):
        asyncio.run(_recreate(url))
    else:
        Path(make_url(url).database or "").unlink(missing_ok=True)
    migrations.upgrade(url)


def analyze(url: str) -> None:
    """Refresh planner statistics after a bulk load, as autovacuum would shortly do."""
    if not url.startswith("postgresql"):
        return

    async def run() -> None:
        engine = create_async_engine(url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
        try:
            async with engine.connect() as connection:
                await connection.execute(text("VACUUM ANALYZE"))
        finally:
            await engine.dispose()

    asyncio.run(run())


def make_key(url: str, name: str, scopes: Sequence[str]) -> str:
    async def run() -> str:
        engine = create_engine(Settings(database_url=url))
        try:
            async with create_sessionmaker(engine)() as session, session.begin():
                _client, secret = await create_client(
                    session, ClientCreate.model_validate({"name": name, "scopes": scopes}), None
                )
                return secret
        finally:
            await engine.dispose()

    return asyncio.run(run())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]

    def worker_rss_mb(self) -> list[float]:
        """Resident memory of the serving processes (the workers, or the single process)."""
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children").read_text().split()
        pids = [int(pid) for pid in children] or [self.process.pid]
        sizes = []
        for pid in pids:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    sizes.append(int(line.split()[1]) / 1024)
        return sizes


def _process_cpu_seconds(pid: int) -> float:
    # Fields after the command name: state is 0, so utime and stime are 11 and 12 (proc(5)).
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_seconds(server: Server) -> dict[str, float]:
    """CPU time used so far by the server's processes, PostgreSQL's and this one (the load's client)."""
    children = Path(f"/proc/{server.process.pid}/task/{server.process.pid}/children").read_text().split()
    own = os.times()
    return {
        "server": sum(_process_cpu_seconds(pid) for pid in [server.process.pid, *map(int, children)]),
        "postgres": postgres_cpu_seconds(),
        "client": own.user + own.system,
    }


def postgres_cpu_seconds() -> float:
    """Seconds of CPU this machine's PostgreSQL processes have used: the live ones' own, and the
    children each has reaped (the postmaster's ended backends, so that a backend that ends
    between two readings still counts)."""
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # ended meanwhile
        if stat[stat.index("(") + 1 : stat.rindex(")")] != "postgres":
            continue
        # After the name: state, ppid, … then utime, stime, cutime, cstime (fields 14–17 of proc(5)).
        fields = stat[stat.rindex(")") + 2 :].split()
        total += sum(int(value) for value in fields[11:15])
    return total / os.sysconf("SC_CLK_TCK")


@contextmanager
def serve(database_url: str, workers: int = 1, **settings: str) -> Iterator[Server]:
    """`tthc serve` in a subprocess, with rate limits off (they would throttle the load itself)."""
    port = free_port()
    env = {
        **os.environ,
        "TTHC_DATABASE_URL": database_url,
        "TTHC_LOG_LEVEL": "WARNING",
        "TTHC_RATE_LIMIT_IP_READS": "",
        "TTHC_RATE_LIMIT_IP_WRITES": "",
        "TTHC_RATE_LIMIT_CLIENT_READS": "",
        "TTHC_RATE_LIMIT_CLIENT_WRITES": "",
        "TTHC_MAX_BODY_BYTES": str(16 * 1024 * 1024),
        **{f"TTHC_{key.upper()}": value for key, value in settings.items()},
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "serve", "--port", str(port), "--workers", str(workers)],
        cwd=ROOT,
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError("the server did not become ready")
            time.sleep(0.2)
        yield Server(url=url, process=process)
    finally:
        process.terminate()
        process.wait(timeout=30)


@dataclass
class LoadResult:
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    errors: int

    @property
    def throughput(self) -> float:
        return self.requests / self.seconds


_WRK_SCRIPT = """
local requests = {%(requests)s}
local counter = 0
%(headers)s
request = function()
  counter = counter + 1
  local item = requests[(counter %% #requests) + 1]
  -- wrk.format ignores wrk.headers when given a table, so merge them.
  local headers = {}
  for name, value in pairs(wrk.headers) do headers[name] = value end
  for name, value in pairs(item[2]) do headers[name] = value end
  return wrk.format("GET", item[1], headers)
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '\\nRESULT {"requests": %%d, "duration_us": %%d, "p50_us": %%d, "p99_us": %%d, '
    .. '"max_us": %%d, "errors": %%d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), latency.max,
    e.connect + e.read + e.write + e.status + e.timeout))
end
"""

# A request: a path, or a path with headers of its own (e.g. If-None-Match).
Request = str | tuple[str, dict[str, str]]


def _lua_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _lua_request(item: Request) -> str:
    path, headers = (item, {}) if isinstance(item, str) else item
    table = ", ".join(f"[{_lua_string(k)}] = {_lua_string(v)}" for k, v in headers.items())
    return f"{{{_lua_string(path)}, {{{table}}}}}"


def wrk(
    base_url: str,
    requests: Sequence[Request],
    *,
    seconds: int,
    connections: int,
    threads: int = 2,
    headers: dict[str, str] | None = None,
) -> LoadResult:
    """Drive GETs of ``requests`` (round robin) with wrk for a fixed time and concurrency.

    wrk counts a 304 as a success and any status ≥ 400 as an error.
    """
    header_lines = "\n".join(
        f"wrk.headers[{_lua_string(k)}] = {_lua_string(v)}" for k, v in (headers or {}).items()
    )
    script = _WRK_SCRIPT % {
        "requests": ",\n".join(_lua_request(item) for item in requests),
        "headers": header_lines,
    }
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
        handle.write(script)
    try:
        output = subprocess.run(
            [
                "wrk",
                "-t",
                str(min(threads, connections)),
                "-c",
                str(connections),
                "-d",
                f"{seconds}s",
                "--timeout",
                "10s",
                "-s",
                handle.name,
                base_url,
            ],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    finally:
        os.unlink(handle.name)
    line = next(line for line in output.splitlines() if line.startswith("RESULT "))
    raw = json.loads(line.removeprefix("RESULT "))
    return LoadResult(
        requests=raw["requests"],
        seconds=raw["duration_us"] / 1e6,
        p50_ms=raw["p50_us"] / 1000,
        p99_ms=raw["p99_us"] / 1000,
        max_ms=raw["max_us"] / 1000,
        errors=raw["errors"],
    )


def machine() -> str:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        "unknown CPU",
    )
    return f"{os.cpu_count()} cores ({cpu}), Python {sys.version.split()[0]}"
