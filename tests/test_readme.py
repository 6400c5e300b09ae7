"""README.md's examples run, in order, against a fresh server and answer what the README shows.

The convention, for whoever edits the README (invisible on GitHub, which reads only the first word of
a fence's info string):

- ```` ```sh readme-test ```` — run, in document order, with bash (``set -euo pipefail``) in the
  repository, against a server started here on a fresh SQLite database after ``tthc migrate`` and
  ``tthc units import``. ``http://127.0.0.1:8000`` becomes that server's address and ``.venv/bin/tthc``
  this interpreter's ``tthc``; shell variables a block sets (``KEY=$(…)``) reach the later blocks.
  Every request it makes must answer below 400, but for one shown by an answer block.
- ```` ```json readme-answer ```` or ```` ```http readme-answer ```` right after a readme-test block —
  the answer of that block's last request. ``json``: a 2xx status and this JSON; ``http``: the status
  line (``HTTP/1.1 201 Created``, the code is compared), optional header lines, a blank line and
  optional JSON. The expected JSON is a subset of the answer: an object's members not shown are not
  compared, a list is compared item by item (a last item ``"…"`` allows more), ``"…"`` matches any
  value and ``"tthc_…"`` any string starting ``tthc_`` (keys, ids and timestamps).
- ```` ```sh readme-skip ```` — a shell block that is not run (``make run``, PostgreSQL). Every
  ``sh``/``bash``/``shell``/``console``/``http`` block carries one of the two marks, so a new example
  cannot escape the test by being forgotten.

"Right after" means the next fenced block; prose may stand between. Each example runs twice, each
time on a server of its own: with the machine's curl (skipped where there is none) and with
tests/readme_curl.py, an httpx stand-in for the options the README uses, so CI needs no curl.
"""

import json
import os
import shlex
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from markdown_it import MarkdownIt

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
README_BASE = "http://127.0.0.1:8000"
SHELL_LANGUAGES = {"sh", "bash", "shell", "console", "http"}
WILDCARD = "…"
STARTUP_TIMEOUT = 60.0
BLOCK_TIMEOUT = 120.0


@dataclass(frozen=True)
class Answer:
    line: int
    status: int | None  # None: any 2xx
    headers: dict[str, str]
    body: Any  # None: not compared


@dataclass(frozen=True)
class Example:
    line: int
    script: str
    answer: Answer | None


def _parse_answer(line: int, language: str, text: str) -> Answer:
    if language == "json":
        return Answer(line, None, {}, json.loads(text))
    if language != "http":
        raise ValueError(f"README.md:{line}: an answer block is json or http, not {language!r}")
    head, _, body = text.partition("\n\n")
    status_line, *header_lines = head.strip().splitlines()
    headers = {}
    for header in header_lines:
        name, _, value = header.partition(":")
        headers[name.strip().lower()] = value.strip()
    return Answer(line, int(status_line.split()[1]), headers, json.loads(body) if body.strip() else None)


def readme_examples(text: str) -> list[Example]:
    """The readme-test blocks in document order, each with its answer block if one follows it."""
    examples: list[Example] = []
    previous_was_example = False
    for token in MarkdownIt("commonmark").parse(text):
        if token.type != "fence":
            continue
        line = (token.map[0] if token.map else 0) + 1
        words = token.info.split()
        language = words[0] if words else ""
        if "readme-answer" in words:
            if not previous_was_example:
                raise ValueError(f"README.md:{line}: an answer block must follow a readme-test block")
            last = examples[-1]
            examples[-1] = Example(last.line, last.script, _parse_answer(line, language, token.content))
            previous_was_example = False
            continue
        previous_was_example = "readme-test" in words
        if previous_was_example:
            examples.append(Example(line, token.content, None))
        elif language in SHELL_LANGUAGES and "readme-skip" not in words:
            raise ValueError(f"README.md:{line}: mark the ```{language} block readme-test or readme-skip")
    return examples


def mismatches(expected: Any, actual: Any, where: str = "$") -> list[str]:
    """How ``actual`` differs from ``expected`` under the subset-and-wildcard rules of the module doc."""
    if expected == WILDCARD:
        return []
    if isinstance(expected, str) and expected.endswith(WILDCARD):
        prefix = expected.removesuffix(WILDCARD)
        if isinstance(actual, str) and actual.startswith(prefix):
            return []
        return [f"{where}: expected a string starting {prefix!r}, got {actual!r}"]
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [f"{where}: expected an object, got {actual!r}"]
        problems = []
        for key, value in expected.items():
            if key not in actual:
                problems.append(f"{where}.{key}: missing")
            else:
                problems += mismatches(value, actual[key], f"{where}.{key}")
        return problems
    if isinstance(expected, list):
        if not isinstance(actual, list):
            return [f"{where}: expected a list, got {actual!r}"]
        open_ended = bool(expected) and expected[-1] == WILDCARD
        items = expected[:-1] if open_ended else expected
        if len(actual) < len(items) or (not open_ended and len(actual) != len(items)):
            return [
                f"{where}: expected {len(items)}{' or more' if open_ended else ''} items, got {len(actual)}"
            ]
        problems = []
        for index, item in enumerate(items):
            problems += mismatches(item, actual[index], f"{where}[{index}]")
        return problems
    # bool is an int to Python, not to a reader of JSON: true must not match 1.
    if expected != actual or isinstance(expected, bool) != isinstance(actual, bool):
        return [f"{where}: expected {expected!r}, got {actual!r}"]
    return []


# --- the server and the shell ------------------------------------------------------------------


def _tthc() -> str:
    script = Path(sys.executable).parent / "tthc"
    if script.exists():
        return shlex.quote(str(script))
    return f"{shlex.quote(sys.executable)} -m app.cli"


@dataclass
class Server:
    base: str
    env: dict[str, str]


@pytest.fixture(params=["curl", "shim"])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Server]:
    """``tthc serve`` in a subprocess on a fresh SQLite database holding the official unit list."""
    curl = request.param
    if curl == "curl" and shutil.which("curl") is None:
        pytest.skip("curl is not installed: the examples run through tests/readme_curl.py (the shim case)")
    env = {
        **os.environ,
        "TTHC_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'readme.db'}",
        "TTHC_LOG_LEVEL": "WARNING",
        "READMETEST_REQUESTS": str(tmp_path / "requests"),
        "READMETEST_CURL": curl,
        "READMETEST_PYTHON": sys.executable,
    }
    (tmp_path / "requests").mkdir()
    for command in ("migrate", "units import"):
        done = subprocess.run(
            f"{_tthc()} {command}", shell=True, env=env, cwd=ROOT, capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, f"tthc {command} failed:\n{done.stdout}\n{done.stderr}"
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    log = (tmp_path / "serve.log").open("w")
    process = subprocess.Popen(
        f"exec {_tthc()} serve --port {port}", shell=True, env=env, cwd=ROOT, stdout=log, stderr=log
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                log.flush()
                pytest.fail(f"tthc serve did not start:\n{(tmp_path / 'serve.log').read_text()}")
            time.sleep(0.1)  # a polling interval, not a wait for readiness
        yield Server(base, env)
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


# set -a exports every variable a block assigns, so the environment written at its end carries them
# to the next block; curl is wrapped to keep each answer's status, headers and body for comparison.
PRELUDE = """\
set -euo pipefail
set -a
if [ "$READMETEST_CURL" = shim ]; then
  _readme_http() { "$READMETEST_PYTHON" -m tests.readme_curl "$@"; }
else
  _readme_http() { command curl "$@"; }
fi
curl() {
  local n
  n=$(( $(cat "$READMETEST_REQUESTS/count" 2>/dev/null || echo 0) + 1 ))
  echo "$n" > "$READMETEST_REQUESTS/count"
  _readme_http -sS -D "$READMETEST_REQUESTS/$n.headers" -o "$READMETEST_REQUESTS/$n.body" "$@"
  cat "$READMETEST_REQUESTS/$n.body"
}
"""
EPILOGUE = '\nenv -0 > "$READMETEST_REQUESTS/env"\n'


@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[str, str]
    body: bytes


def _response(directory: Path, number: int) -> Response:
    # -D writes every header block of the exchange (a 100 Continue first, say): the last one counts.
    raw = (directory / f"{number}.headers").read_text(encoding="latin-1")
    block = [part for part in raw.replace("\r\n", "\n").split("\n\n") if part.startswith("HTTP/")][-1]
    status_line, *lines = block.splitlines()
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return Response(int(status_line.split()[1]), headers, (directory / f"{number}.body").read_bytes())


def _run(example: Example, server: Server) -> tuple[list[Response], str]:
    directory = Path(server.env["READMETEST_REQUESTS"])
    count_file = directory / "count"
    before = int(count_file.read_text()) if count_file.exists() else 0
    script = example.script.replace(README_BASE, server.base).replace(".venv/bin/tthc", _tthc())
    done = subprocess.run(
        ["bash", "-c", PRELUDE + script + EPILOGUE],
        env=server.env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=BLOCK_TIMEOUT,
    )
    output = f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    assert done.returncode == 0, f"README.md:{example.line}: the block failed ({done.returncode})\n{output}"
    server.env = dict(
        item.split("=", 1) for item in (directory / "env").read_text().split("\0") if "=" in item
    )
    after = int(count_file.read_text()) if count_file.exists() else 0
    return [_response(directory, number) for number in range(before + 1, after + 1)], output


def check(example: Example, responses: list[Response]) -> list[str]:
    """What is wrong with a block's answers: a failed request, or an answer unlike its answer block."""
    shown = example.answer
    problems = [
        f"request {index + 1} answered {response.status}: {response.body[:500]!r}"
        for index, response in enumerate(responses)
        if response.status >= 400 and not (shown is not None and index == len(responses) - 1)
    ]
    if shown is None:
        return problems
    if not responses:
        return [*problems, f"the answer block at line {shown.line} follows a block that made no request"]
    last = responses[-1]
    if shown.status is None and not 200 <= last.status < 300:
        problems.append(f"status {last.status}, expected 2xx: {last.body[:500]!r}")
    elif shown.status is not None and last.status != shown.status:
        problems.append(f"status {last.status}, expected {shown.status}: {last.body[:500]!r}")
    for name, value in shown.headers.items():
        problems += mismatches(value, last.headers.get(name), f"header {name}")
    if shown.body is not None:
        try:
            actual = json.loads(last.body)
        except ValueError:
            return [*problems, f"the answer is not JSON: {last.body[:500]!r}"]
        problems += mismatches(shown.body, actual)
    return problems


def test_readme_examples_answer_as_shown(server: Server) -> None:
    examples = readme_examples(README.read_text(encoding="utf-8"))
    assert examples, "README.md has no readme-test block"
    for example in examples:
        responses, output = _run(example, server)
        problems = check(example, responses)
        assert not problems, f"README.md:{example.line}:\n" + "\n".join(problems) + f"\n{output}"


# --- the runner's own rules, without a server --------------------------------------------------


def test_expected_json_is_a_subset_with_wildcards() -> None:
    actual = {"id": 7, "key": "tthc_abc", "scopes": ["a", "b"], "unit_code": "11680", "ok": True}
    assert mismatches({"id": "…", "key": "tthc_…", "scopes": ["a", "b"], "unit_code": "11680"}, actual) == []
    assert mismatches({"scopes": ["a", "…"]}, actual) == []
    assert mismatches({"unit_code": "313"}, actual) == ["$.unit_code: expected '313', got '11680'"]
    assert mismatches({"scopes": ["a"]}, actual) == ["$.scopes: expected 1 items, got 2"]
    assert mismatches({"key": "other_…"}, actual) != []
    assert mismatches({"missing": 1}, actual) == ["$.missing: missing"]
    assert mismatches({"ok": 1}, actual) != []


def test_a_changed_answer_fails() -> None:
    example = Example(1, "curl …", Answer(2, 201, {"content-type": "application/json"}, {"status": 5}))
    good = Response(201, {"content-type": "application/json"}, b'{"status": 5, "code": "HS-2"}')
    assert check(example, [good]) == []
    assert check(example, [Response(201, good.headers, b'{"status": 10}')]) == [
        "$.status: expected 5, got 10"
    ]
    assert check(example, [Response(200, good.headers, good.body)])[0].startswith("status 200, expected 201")
    assert check(Example(1, "", None), [Response(404, {}, b"{}")]) == ["request 1 answered 404: b'{}'"]


def test_every_shell_block_is_marked() -> None:
    with pytest.raises(ValueError, match="readme-test or readme-skip"):
        readme_examples("```sh\nmake run\n```\n")
    with pytest.raises(ValueError, match="must follow a readme-test block"):
        readme_examples("```sh readme-skip\nmake run\n```\n\n```json readme-answer\n{}\n```\n")
    parsed = readme_examples(
        "```sh readme-test\ncurl x\n```\n\n```http readme-answer\nHTTP/1.1 201 Created\nETag: …\n\n{}\n```\n"
    )
    assert parsed == [Example(1, "curl x\n", Answer(5, 201, {"etag": "…"}, {}))]
