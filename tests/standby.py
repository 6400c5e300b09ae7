"""A real hot standby of a local PostgreSQL, for the replica tests and the replica benchmark.

``pg_basebackup -R`` copies the primary's cluster into a temporary directory with a replication
slot of its own (so the primary keeps the WAL a stopped standby still needs), and ``pg_ctl``
starts it on a free local port — as the ``postgres`` OS user when run as root, since PostgreSQL
refuses to run as root. Nothing of the machine's PostgreSQL changes but that slot, which is
dropped at the end; a slot left behind by a killed run is dropped by the next one.
"""

import asyncio
import os
import pwd
import random
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url

SLOT_PREFIX = "tthc_test_standby_"
# Settings a hot standby must hold at least as high as its primary's, or it refuses to start.
_AT_LEAST_PRIMARY = (
    "max_connections",
    "max_worker_processes",
    "max_wal_senders",
    "max_prepared_transactions",
    "max_locks_per_transaction",
)


class ReplicationNotPermitted(Exception):
    """The primary refuses replication connections (pg_hba.conf, wal_level): see scripts/allow-replication."""


def _free_port() -> int:
    """A port no one listens on, below the kernel's ephemeral range: a server killed and started
    again on it (the failover tests) must find it free, and a port of that range may meanwhile
    be taken as the local end of any outgoing connection (then its start fails, "Address already
    in use")."""
    low = _ephemeral_ports()[0]
    for port in random.sample(range(max(1024, low - 12_000), low), 200):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port below {low}")


def _ephemeral_ports() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
    except (OSError, ValueError):
        return 32768, 60999  # Linux's default
    return int(low), int(high)


def _as_server_user() -> list[str]:
    return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []


def _dsn(url: str) -> str:
    """An asyncpg DSN from a SQLAlchemy URL."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def _query(url: str, statement: str, *args: Any) -> list[asyncpg.Record]:
    connection = await asyncpg.connect(_dsn(url), timeout=5)
    try:
        return list(await connection.fetch(statement, *args))
    finally:
        await connection.close()


def query(url: str, statement: str, *args: Any) -> list[asyncpg.Record]:
    """Run one statement on a server from synchronous code (fixtures, the benchmark driver)."""
    return asyncio.run(_query(url, statement, *args))


@dataclass
class Standby:
    """A running hot standby of ``primary_url``: ``url`` is the same database on the standby."""

    primary_url: str
    directory: Path
    port: int
    slot: str
    bin_dir: Path

    @property
    def data(self) -> Path:
        return self.directory / "data"

    @property
    def url(self) -> str:
        return make_url(self.primary_url).set(host="127.0.0.1", port=self.port).render_as_string(False)

    def _pg_ctl(self, *args: str) -> None:
        command = [*_as_server_user(), str(self.bin_dir / "pg_ctl"), "-D", str(self.data), *args]
        subprocess.run(command, check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        self._pg_ctl("-l", str(self.directory / "standby.log"), "-w", "-t", "90", "start")

    def stop(self) -> None:
        """Stop at once, as a crash or a pulled cable would (``-m immediate``)."""
        self._pg_ctl("-m", "immediate", "-w", "stop")

    def is_running(self) -> bool:
        command = [*_as_server_user(), str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "status"]
        return subprocess.run(command, capture_output=True, timeout=30).returncode == 0

    def wait_until_caught_up(self, timeout: float = 60.0) -> None:
        """Until the standby has replayed everything the primary had written when this was called."""
        target = query(self.primary_url, "SELECT pg_current_wal_lsn() AS lsn")[0]["lsn"]
        deadline = time.monotonic() + timeout
        while True:
            rows = query(self.url, "SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn AS done", target)
            if rows[0]["done"]:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"the standby did not replay up to {target} within {timeout} s")
            time.sleep(0.05)

    def pause_replay(self) -> None:
        query(self.url, "SELECT pg_wal_replay_pause()")

    def resume_replay(self) -> None:
        query(self.url, "SELECT pg_wal_replay_resume()")

    def destroy(self) -> None:
        if self.is_running():
            self.stop()
        _drop_slots(self.primary_url, [self.slot])
        shutil.rmtree(self.directory, ignore_errors=True)


def _drop_slots(primary_url: str, names: Sequence[str], timeout: float = 20.0) -> None:
    # A slot is busy until its stopped standby's walsender has gone, a moment after the stop.
    deadline = time.monotonic() + timeout
    for name in names:
        while True:
            try:
                query(
                    primary_url,
                    "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                    "WHERE slot_name = $1",
                    name,
                )
                break
            except asyncpg.ObjectInUseError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)


def _server_bin_dir(primary_url: str) -> Path:
    """The programs of the primary's own major version (Debian keeps one directory per version)."""
    version = int(query(primary_url, "SHOW server_version_num")[0][0]) // 10000
    debian = Path(f"/usr/lib/postgresql/{version}/bin")
    if (debian / "pg_ctl").exists():
        return debian
    found = shutil.which("pg_ctl")
    if found is None:
        raise FileNotFoundError("pg_ctl is not installed")
    return Path(found).parent


def _left_behind(slot: str) -> bool:
    """Whether the run that made ``slot`` (named after its process) has ended."""
    pid = slot.removeprefix(SLOT_PREFIX)
    if not pid.isdigit():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, as another user
        return False
    return False


def start_standby(primary_url: str) -> Standby:
    """Copy the primary with ``pg_basebackup -R`` and start it as a hot standby; raises
    ReplicationNotPermitted when the primary does not allow the copy."""
    unused = query(
        primary_url,
        "SELECT slot_name FROM pg_replication_slots WHERE slot_name LIKE $1 AND NOT active",
        SLOT_PREFIX + "%",
    )
    # A slot is named after the process of its run: that of another run still going (another
    # pytest-xdist worker, whose standby a test has stopped) is not stale.
    stale = [row["slot_name"] for row in unused if _left_behind(row["slot_name"])]
    _drop_slots(primary_url, stale)
    settings = {
        row["name"]: row["setting"]
        for row in query(
            primary_url,
            "SELECT name, setting FROM pg_settings WHERE name = ANY($1::text[])",
            list(_AT_LEAST_PRIMARY),
        )
    }
    bin_dir = _server_bin_dir(primary_url)
    directory = Path(tempfile.mkdtemp(prefix="tthc-standby-"))
    if os.geteuid() == 0:
        server_user = pwd.getpwnam("postgres")
        os.chown(directory, server_user.pw_uid, server_user.pw_gid)
    standby = Standby(primary_url, directory, _free_port(), f"{SLOT_PREFIX}{os.getpid()}", bin_dir)
    primary = make_url(primary_url)
    copy = [
        *_as_server_user(),
        str(bin_dir / "pg_basebackup"),
        "-h", primary.host or "127.0.0.1",
        "-p", str(primary.port or 5432),
        "-U", primary.username or "postgres",
        "-D", str(standby.data),
        "-R", "-X", "stream", "-c", "fast", "-C", "-S", standby.slot,
    ]  # fmt: skip
    done = subprocess.run(copy, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        shutil.rmtree(directory, ignore_errors=True)
        message = done.stderr.strip()
        if "pg_hba.conf" in message or "replication" in message:
            raise ReplicationNotPermitted(message)
        raise RuntimeError(f"pg_basebackup failed: {message}")
    # The copy has the primary's data and recovery settings but not its configuration files
    # (Debian keeps those in /etc): the standby gets a small one of its own.
    lines = {
        "port": str(standby.port),
        "listen_addresses": "'127.0.0.1'",
        "unix_socket_directories": f"'{directory}'",
        "hot_standby": "on",
        "hot_standby_feedback": "on",
        # Replay cancels a conflicting query after a second, as docs/deployment.md recommends
        # (a few seconds), instead of waiting 30 s behind it.
        "max_standby_streaming_delay": "'1s'",
        "shared_buffers": "'64MB'",
        "fsync": "off",
        "wal_receiver_status_interval": "'1s'",
        **settings,
    }
    (standby.data / "postgresql.conf").write_text("".join(f"{k} = {v}\n" for k, v in lines.items()))
    (standby.data / "pg_hba.conf").write_text("local all all trust\nhost all all 127.0.0.1/32 trust\n")
    (standby.data / "pg_ident.conf").write_text("")
    if os.geteuid() == 0:
        for name in ("postgresql.conf", "pg_hba.conf", "pg_ident.conf"):
            os.chown(standby.data / name, server_user.pw_uid, server_user.pw_gid)
    try:
        standby.start()
    except subprocess.CalledProcessError:
        log = (directory / "standby.log").read_text(errors="replace")[-2000:]
        standby.destroy()
        raise RuntimeError(f"the standby did not start:\n{log}") from None
    return standby
