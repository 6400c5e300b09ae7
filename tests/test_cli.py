"""The ``tthc`` command itself: its version, and a help that answers without importing the app."""

import json
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

from app import cli
from app.dossiers import bulk

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("app.main", "app.core.config", "sqlalchemy", "fastapi", "pydantic", "uvicorn", "asyncio")


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args], capture_output=True, text=True, cwd=ROOT, check=False
    )


def test_version_is_the_package_version() -> None:
    done = _run("--version")
    assert (done.returncode, done.stdout, done.stderr) == (0, f"tthc {version('tthc')}\n", "")


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["--help"],
        ["dossiers", "import", "--help"],
        ["clients", "create", "--help"],
        ["stats", "rebuild", "--help"],
        ["no-such-command"],
    ],
)
def test_help_and_usage_errors_import_nothing_heavy(argv: list[str]) -> None:
    """What ``tthc --help`` imports is what makes it slow: the app and its libraries take seconds
    on a small machine. Checked by the modules loaded, in a fresh interpreter (not by a clock)."""
    script = (
        "import json, sys\n"
        "from app.cli import main\n"
        "try:\n"
        f"    main({argv!r})\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(json.dumps(sorted(sys.modules)), file=sys.stderr)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, check=False
    )
    loaded = set(json.loads(done.stderr.strip().splitlines()[-1]))
    assert {
        name for name in loaded for heavy in HEAVY if name == heavy or name.startswith(heavy + ".")
    } == set()
    assert {name for name in loaded if name.startswith("app.")} == {"app.cli"}
    assert "usage: tthc" in done.stdout + done.stderr


def test_the_import_help_names_every_exit_status() -> None:
    done = _run("dossiers", "import", "--help")
    assert done.returncode == 0
    for status in ("0", "1", "2", "3", "130", "143"):
        assert f"\n  {status} " in done.stdout or f" {status} by SIGTERM" in done.stdout, status


def test_the_help_shows_the_loaders_chunk_size() -> None:
    assert cli._DEFAULT_CHUNK == bulk.DEFAULT_CHUNK


def test_a_chunk_size_below_one_is_a_usage_error() -> None:
    done = _run("dossiers", "import", "x.jsonl", "--client", "c", "--chunk", "0")
    assert done.returncode == 2
    assert "0 is not a positive number" in done.stderr


def test_an_import_of_a_file_missing_or_of_no_known_kind_fails_with_a_line(tmp_path: Path) -> None:
    (tmp_path / "notes.jsonl").write_text('{"hello": "world"}\n')
    for name, message in [
        ("missing.jsonl", "No such file or directory"),
        ("notes.jsonl", "notes.jsonl: neither dossier events (event_id) nor DongBoHoSoMC records (MaHoSo)"),
    ]:
        done = _run("dossiers", "import", str(tmp_path / name), "--client", "one-stop")
        assert done.returncode == 1
        assert done.stderr.startswith("tthc: ") and message in done.stderr
        assert "Traceback" not in done.stderr


def test_every_command_that_opens_the_database_finds_every_table(tmp_path: Path) -> None:
    """Commands import what they need on demand: one that queries a model must still know the
    tables its foreign keys name (a client's unit) — each command run as a process, on a new file."""
    env = {"TTHC_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}", "PATH": ""}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "app.cli", *args],
            capture_output=True,
            text=True,
            cwd=ROOT,
            check=False,
            env=env,
        )

    for args in (
        ("migrate",),
        ("units", "import"),
        ("clients", "create", "--name", "portal", "--scope", "dossiers:write"),
        ("clients", "key", "portal"),
        ("clients", "list"),
        ("stats", "rebuild"),
    ):
        done = run(*args)
        assert done.returncode == 0, (args, done.stderr)
        assert "Traceback" not in done.stderr
    listed = run("clients", "list").stdout
    assert "portal" in listed
