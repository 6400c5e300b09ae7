"""A real pg_auto_failover cluster on this machine, for the failover tests (issue 31).

A monitor and two PostgreSQL data nodes (Debian's ``postgresql-15-auto-failover`` and
``pg-auto-failover-cli``; ``scripts/ensure-auto-failover``), each on a free local port, in a
temporary directory: ``pg_autoctl`` keeps its configuration and state under ``XDG_*`` directories
there, so nothing of the machine's own PostgreSQL or home directories changes. Each node's keeper
(``pg_autoctl run``) runs in a process group of its own: ``kill`` ends the keeper and its
PostgreSQL with SIGKILL, as a lost machine would; ``rejoin`` starts the keeper again, which asks
the monitor, rewinds the node and brings it back as a secondary.
"""

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tests.standby import _as_server_user, _free_port, query

DATABASE = "tthc"
PG_AUTOCTL = "pg_autoctl"

# pg_auto_failover's defaults take about 50 s to fail over (20 s before a node is unhealthy, then
# 30 s for the lost primary to demote itself). Scaled down here, keeping their order: a primary
# cut off from the monitor and its standby demotes itself (the keeper's network partition timeout)
# before the monitor's demote timeout lets the standby take writes. docs/deployment.md.
MONITOR_SETTINGS = {
    "pgautofailover.health_check_period": "1000",
    "pgautofailover.health_check_timeout": "1000",
    "pgautofailover.health_check_max_retries": "1",
    "pgautofailover.health_check_retry_delay": "500",
    "pgautofailover.node_considered_unhealthy_timeout": "4000",
    "pgautofailover.primary_demote_timeout": "8000",
}
KEEPER_SETTINGS = {"timeout.network_partition_timeout": "5"}


class FailoverNotInstalled(Exception):
    """pg_auto_failover is not installed here (scripts/ensure-auto-failover)."""


@dataclass
class Node:
    name: str
    port: int
    data: Path
    keeper: subprocess.Popen[bytes] | None = None

    @property
    def server(self) -> str:
        return f"127.0.0.1:{self.port}"

    def url(self, database: str = DATABASE) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{database}"


@dataclass
class Cluster:
    directory: Path
    bin_dir: Path
    monitor_port: int
    nodes: dict[str, Node] = field(default_factory=dict)
    monitor: subprocess.Popen[bytes] | None = None

    # The service's view: every data node, in the order given at creation.
    @property
    def url(self) -> str:
        hosts = "&".join(f"host={node.server}" for node in self.nodes.values())
        return f"postgresql+asyncpg://postgres@/{DATABASE}?{hosts}&target_session_attrs=primary"

    @property
    def monitor_url(self) -> str:
        return f"postgresql+asyncpg://autoctl_node@127.0.0.1:{self.monitor_port}/pg_auto_failover"

    def _environment(self) -> dict[str, str]:
        return {
            "PATH": f"{self.bin_dir}:{os.environ.get('PATH', '/usr/bin:/bin')}",
            "XDG_CONFIG_HOME": str(self.directory / "config"),
            "XDG_DATA_HOME": str(self.directory / "share"),
            "XDG_RUNTIME_DIR": str(self.directory / "run"),
            "PG_CONFIG": str(self.bin_dir / "pg_config"),
        }

    def _command(self, *args: str) -> list[str]:
        variables = [f"{name}={value}" for name, value in self._environment().items()]
        return [*_as_server_user(), "env", *variables, PG_AUTOCTL, *args]

    def _create(self, *args: str) -> None:
        done = subprocess.run(
            self._command(
                "create", *args, "--auth", "trust", "--no-ssl", "--pgctl", str(self.bin_dir / "pg_ctl")
            ),
            capture_output=True,
            text=True,
            timeout=120,
        )
        if done.returncode != 0:
            raise RuntimeError(f"pg_autoctl create {args[0]} failed: {done.stderr[-2000:]}")

    def _run(self, data: Path, log: str) -> subprocess.Popen[bytes]:
        with open(self.directory / log, "ab") as output:
            return subprocess.Popen(
                self._command("run", "--pgdata", str(data)),
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def start_monitor(self) -> None:
        data = self.directory / "monitor"
        self._create(
            "monitor", "--pgdata", str(data), "--pgport", str(self.monitor_port), "--hostname", "127.0.0.1"
        )
        _configure(data, MONITOR_SETTINGS)
        self.monitor = self._run(data, "monitor.log")
        self.wait_for(lambda: bool(query(self.monitor_url, "SELECT 1")), "the monitor to answer")

    def add_node(self, name: str) -> Node:
        node = Node(name, _free_port(), self.directory / name)
        self._create(
            "postgres",
            "--pgdata", str(node.data),
            "--pgport", str(node.port),
            "--pghost", "127.0.0.1",
            "--listen", "127.0.0.1",
            "--hostname", "127.0.0.1",
            "--name", name,
            "--dbname", DATABASE,
            "--monitor", f"postgres://autoctl_node@127.0.0.1:{self.monitor_port}/pg_auto_failover?sslmode=disable",
        )  # fmt: skip
        self.nodes[name] = node
        _configure(node.data, {})
        for key, value in KEEPER_SETTINGS.items():
            subprocess.run(
                self._command("config", "set", "--pgdata", str(node.data), key, value),
                check=True,
                capture_output=True,
                timeout=60,
            )
        node.keeper = self._run(node.data, f"{name}.log")
        return node

    def states(self) -> dict[str, tuple[str, str]]:
        """Each node's (reported, assigned) state, as the monitor sees them."""
        rows = query(
            self.monitor_url, "SELECT nodename, reportedstate::text, goalstate::text FROM pgautofailover.node"
        )
        return {row[0]: (row[1], row[2]) for row in rows}

    def primary(self) -> Node:
        """The node the monitor has made primary (alone: wait_primary, with a secondary: primary)."""
        for name, (reported, assigned) in self.states().items():
            if reported == assigned and reported in ("primary", "wait_primary"):
                return self.nodes[name]
        raise LookupError(f"no primary: {self.states()}")

    def wait_for(self, condition: Callable[[], bool], what: str, timeout: float = 120.0) -> float:
        """Until ``condition`` holds (errors count as not yet); the seconds it took."""
        started = time.monotonic()
        while True:
            try:
                if condition():
                    return time.monotonic() - started
            except Exception:
                pass
            if time.monotonic() - started > timeout:
                raise TimeoutError(f"waited {timeout} s for {what}; states: {self._states_or_error()}")
            time.sleep(0.1)

    def _states_or_error(self) -> object:
        try:
            return self.states()
        except Exception as exc:
            return exc

    def wait_until_in_sync(self, timeout: float = 120.0) -> None:
        """Both nodes serving: one primary, one secondary (writes acknowledged on both)."""
        self.wait_for(
            lambda: (
                sorted(state for state in self.states().values())
                == [("primary", "primary"), ("secondary", "secondary")]
            ),
            "a primary and a secondary",
            timeout,
        )

    def kill(self, node: Node) -> None:
        """SIGKILL to the node's keeper, postmaster and backends together: the node is gone, as with its
        machine (a postmaster killed alone leaves backends that still hold its shared memory)."""
        if node.keeper is not None:
            os.killpg(node.keeper.pid, signal.SIGKILL)
            node.keeper.wait(timeout=30)
            node.keeper = None
        for pid in _processes_in(node.data):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.wait_for(lambda: not _processes_in(node.data), f"{node.name}'s processes to end", timeout=30)
        # Its port free too: a start by hand once found it taken ("Address already in use").
        self.wait_for(lambda: _port_free(node.port), f"{node.name}'s port to be free", timeout=30)

    def switch_over(self) -> None:
        """A planned switchover: the monitor demotes the primary and promotes the secondary."""
        command = self._command("perform", "switchover", "--pgdata", str(self.directory / "monitor"))
        subprocess.run(command, check=True, capture_output=True, timeout=120)

    def rejoin(self, node: Node) -> None:
        """Start the node's keeper again: it is rewound and follows the new primary as a secondary."""
        node.keeper = self._run(node.data, f"{node.name}.log")

    def pg_ctl(self, node: Node, *args: str) -> None:
        """``pg_ctl`` on the node. A start is tried up to three times, a second apart: a node just
        killed once failed to start by hand in CI ("could not start server", its reason in the
        logging collector's file), and started at once on the next try here."""
        command = [*_as_server_user(), str(self.bin_dir / "pg_ctl"), "-D", str(node.data), *args]
        attempts = 3 if "start" in args else 1
        for attempt in range(1, attempts + 1):
            done = subprocess.run(command, capture_output=True, text=True, timeout=120)
            if done.returncode == 0:
                return
            if attempt < attempts:
                time.sleep(1)
        # pg_ctl only says "Examine the log output": the reason is in the server's log, or in the
        # logging collector's files when the node's configuration turns the collector on.
        log = Path(args[args.index("-l") + 1]) if "-l" in args else None
        told = log.read_text(errors="replace")[-4000:] if log is not None and log.exists() else ""
        collected = sorted((node.data / "log").glob("*"), key=lambda path: path.stat().st_mtime)
        if collected:
            told += f"\n{collected[-1]}:\n" + collected[-1].read_text(errors="replace")[-4000:]
        raise RuntimeError(
            f"pg_ctl {' '.join(args)} failed {attempts} time(s): {done.stdout}{done.stderr}\n{told}"
        )

    def destroy(self) -> None:
        for process in [*(node.keeper for node in self.nodes.values()), self.monitor]:
            if process is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=30)
        for data in [*(node.data for node in self.nodes.values()), self.directory / "monitor"]:
            for pid in _processes_in(data):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        shutil.rmtree(self.directory, ignore_errors=True)


def _configure(data: Path, settings: dict[str, str]) -> None:
    """Settings after those pg_autoctl writes (its file is included first): pg_autoctl sizes
    shared_buffers for a server alone on the machine, and here three share it with the suite."""
    lines = {"shared_buffers": "'128MB'", **settings}
    with open(data / "postgresql.conf", "a") as conf:
        conf.writelines(f"{name} = {value}\n" for name, value in lines.items())


def _processes_in(data: Path) -> list[int]:
    """The live processes working in ``data``: a postmaster and its backends run in their data
    directory, and its keeper's processes name it (``--pgdata``, or ``PGDATA`` in their
    environment)."""
    found = []
    named = str(data).encode()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                mine = os.readlink(entry / "cwd") == str(data)
                if not mine:
                    words = (entry / "cmdline").read_bytes().split(b"\0")
                    environment = (entry / "environ").read_bytes().split(b"\0")
                    mine = named in words or b"PGDATA=" + named in environment
                if mine and _alive(int(entry.name)):
                    found.append(int(entry.name))
    return found


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _alive(pid: int | None) -> bool:
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (ended, not yet reaped by its parent) has ended.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def start_cluster(bin_dir: Path = Path("/usr/lib/postgresql/15/bin")) -> Cluster:
    """A monitor, node ``a`` (the first primary) and node ``b`` (its synchronous secondary)."""
    if shutil.which(PG_AUTOCTL) is None:
        raise FailoverNotInstalled("pg_autoctl is not installed (scripts/ensure-auto-failover)")
    directory = Path(tempfile.mkdtemp(prefix="tthc-failover-"))
    for sub in ("config", "share", "run"):
        (directory / sub).mkdir(mode=0o700)
    if os.geteuid() == 0:
        server_user = pwd.getpwnam("postgres")
        for path in [directory, *directory.iterdir()]:
            os.chown(path, server_user.pw_uid, server_user.pw_gid)
    cluster = Cluster(directory, bin_dir, _free_port())
    try:
        cluster.start_monitor()
        first = cluster.add_node("a")
        cluster.wait_for(lambda: cluster.states().get("a") == ("single", "single"), "node a to be ready")
        cluster.add_node("b")
        cluster.wait_until_in_sync()
        assert cluster.primary() is first
    except BaseException:
        cluster.destroy()
        raise
    return cluster
