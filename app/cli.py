"""The ``tthc`` command: serve, migrate, and data imports.

Only the standard library is imported here at module level: ``tthc --help`` and a mistyped command
answer at once, and each command imports what it uses when it runs (the app, SQLAlchemy and
pydantic take seconds to import on a small machine). tests/test_cli.py holds that line.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:
    import asyncio
    from collections.abc import Awaitable, Callable, Sequence

    from sqlalchemy.ext.asyncio import AsyncSession

    from app.core.config import Settings
    from app.dossiers.bulk import FileProgress, Source

# app.dossiers.bulk.DEFAULT_CHUNK, which the help shows without importing the loader
# (tests/test_cli.py checks that the two agree).
_DEFAULT_CHUNK = 2000

_MOST_JOBS_BY_DEFAULT = 8
"""Parts at once when ``--jobs`` is not given: each holds two connections to the database."""


def _cores() -> int:
    """The cores this process may run on (its affinity where the system tells it), at most
    ``_MOST_JOBS_BY_DEFAULT``."""
    affinity = getattr(os, "sched_getaffinity", None)
    cores = len(affinity(0)) if affinity is not None else os.cpu_count() or 1
    return min(cores, _MOST_JOBS_BY_DEFAULT)


EXIT_LOADED = 0
EXIT_FAILED = 1
EXIT_REJECTED = 3
"""Loaded, with rejected lines (in the files' rejects files)."""
EXIT_INTERRUPTED = 128 + signal.SIGINT
EXIT_TERMINATED = 128 + signal.SIGTERM

_IMPORT_EPILOG = f"""\
exit status:
  {EXIT_LOADED}    every line loaded
  {EXIT_REJECTED}    loaded, with rejected lines: each with its problem in FILE.rejected.jsonl
  {EXIT_FAILED}    failed: a file unreadable or of no known kind, an unknown client or one without
       dossiers:write, an invalid configuration, an unreachable database
  2    the command line is wrong
  {EXIT_INTERRUPTED}  stopped by SIGINT (Ctrl-C), {EXIT_TERMINATED} by SIGTERM: after the chunk under way was
       committed with its checkpoint; a second signal stops at once, rolling that chunk back.
       Rerun the same command to continue where it stopped.
Each file's checkpoint is committed with every chunk: a load killed in any way continues on rerun,
with no line loaded twice; a finished file's rerun does nothing (its exit status is again 0 or 3)."""


def _settings_or_exit() -> Settings:
    from pydantic import ValidationError

    from app.core.config import get_settings

    try:
        return get_settings()
    except ValidationError as exc:
        details = "; ".join(str(err["msg"]).removeprefix("Value error, ") for err in exc.errors())
        sys.exit(f"tthc: invalid configuration: {details}")


def _serve(args: argparse.Namespace) -> None:
    import uvicorn

    from app.core.logging import uvicorn_log_config

    settings = _settings_or_exit()
    uvicorn.run(
        "app.main:served_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level=settings.log_level.lower(),
        # Applied in every worker process: uvicorn's lines in the service's format (with request ids).
        log_config=uvicorn_log_config(settings.log_level, settings.log_format),
        access_log=False,  # the service writes its own access line, with the client's name
        # X-Forwarded-For is believed only from the proxies named in TTHC_TRUSTED_PROXIES: from
        # anyone else it would let a client pick the address its rate limits count against.
        proxy_headers=bool(settings.trusted_proxies),
        forwarded_allow_ips=",".join(settings.trusted_proxies) or None,
        # On SIGTERM: stop accepting, let requests in flight finish (up to this many seconds).
        timeout_graceful_shutdown=30,
        # Idle keep-alive connections are closed; slow bodies get a 408 (TTHC_BODY_READ_TIMEOUT).
        # Slow headers are a reverse proxy's to cut (docs/deployment.md).
        timeout_keep_alive=5,
    )


def _migrate(args: argparse.Namespace) -> None:
    from app.core.logging import configure_logging
    from app.core.migrations import upgrade

    settings = _settings_or_exit()
    configure_logging(settings.log_level, settings.log_format)
    upgrade(settings.database_url, args.revision)
    print(f"tthc: database at {args.revision}")


def _units_import(_args: argparse.Namespace) -> None:
    from app.units.service import import_official_units

    def progress(done: int, total: int) -> None:
        print(f"\r  units {done:>5}/{total} ({100 * done // total:>3}%)", end="", flush=True)

    async def work(session: AsyncSession) -> None:
        started = time.monotonic()
        summary = await import_official_units(session, progress)
        print()
        print(
            f"tthc: units import done in {time.monotonic() - started:.1f}s: "
            f"{summary.created} created, {summary.updated} updated, {summary.unchanged} unchanged, "
            f"{len(summary.conflicts)} conflicts"
        )
        if summary.conflicts:
            print(f"  conflicting codes (left as they are): {', '.join(summary.conflicts[:50])}")

    _with_session(work)


def _with_session(work: Callable[[AsyncSession], Awaitable[None]]) -> None:
    """Run ``work`` in one transaction against the configured database."""
    import asyncio

    # Every mapper, so that a query of one model finds the tables its foreign keys name.
    import app.models  # noqa: F401
    from app.core.data_version import bump_version
    from app.core.db import create_engine, create_sessionmaker
    from app.core.errors import DomainError

    settings = _settings_or_exit()

    async def run() -> None:
        # Imports and rebuilds run for minutes: the request's command timeout is not theirs.
        engine = create_engine(settings.model_copy(update={"database_command_timeout": None}))
        try:
            async with create_sessionmaker(engine)() as session, session.begin():
                await work(session)
                await bump_version(session)
        finally:
            await engine.dispose()

    try:
        asyncio.run(run())
    except DomainError as exc:
        sys.exit(f"tthc: {exc.detail}" + "".join(f"; {e.field}: {e.message}" for e in exc.errors or ()))


def _clients_create(args: argparse.Namespace) -> None:
    from pydantic import ValidationError

    from app.clients.schemas import ClientCreate
    from app.clients.service import create_client

    try:
        data = ClientCreate(name=args.name, scopes=args.scope, unit_code=args.unit)
    except ValidationError as exc:
        sys.exit("tthc: " + "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()))

    async def work(session: AsyncSession) -> None:
        client, secret = await create_client(session, data, None)
        print(
            f"tthc: client {client.id} {client.name!r} created with scopes {', '.join(client.scopes)}"
            + (f", bound to unit {client.unit_code}" if client.unit_code else "")
        )
        print("tthc: the key below is shown only once; store it now")
        print(secret)

    _with_session(work)


def _clients_key(args: argparse.Namespace) -> None:
    from app.clients.service import add_key, get_client_by_name

    async def work(session: AsyncSession) -> None:
        client = await get_client_by_name(session, args.name)
        key, secret = await add_key(session, client, None)
        print(f"tthc: key {key.id} added to client {client.name!r}; it is shown only once")
        print(secret)

    _with_session(work)


def _clients_list(_args: argparse.Namespace) -> None:
    from sqlalchemy import select
    from sqlalchemy.orm import selectinload

    from app.clients.models import ApiClient

    async def work(session: AsyncSession) -> None:
        clients = (
            await session.scalars(
                select(ApiClient).options(selectinload(ApiClient.keys)).order_by(ApiClient.id)
            )
        ).all()
        print(f"{'id':>4}  {'name':<30} {'unit':<8} {'keys':>4}  scopes")
        for client in clients:
            active = sum(1 for key in client.keys if key.revoked_at is None)
            unit = client.unit_code or "-"
            print(f"{client.id:>4}  {client.name:<30} {unit:<8} {active:>4}  {', '.join(client.scopes)}")
        print(f"tthc: {len(clients)} clients")

    _with_session(work)


def _clients_revoke(args: argparse.Namespace) -> None:
    from app.clients.service import get_client_by_name, revoke_all_keys, revoke_key

    async def work(session: AsyncSession) -> None:
        client = await get_client_by_name(session, args.name)
        if args.key is not None:
            key = await revoke_key(session, client, args.key, None)
            print(f"tthc: key {key.id} of client {client.name!r} revoked")
            return
        revoked = await revoke_all_keys(session, client, None)
        print(f"tthc: {len(revoked)} keys of client {client.name!r} revoked")

    _with_session(work)


def _stats_rebuild(_args: argparse.Namespace) -> None:
    from app.calendar.working_time import calendar_from_settings
    from app.core.collector import settle_after_start_up
    from app.dossiers.counters import rebuild_counters

    calendar = calendar_from_settings(_settings_or_exit())
    settle_after_start_up()
    started = time.monotonic()

    def progress(done: int, total: int) -> None:
        seconds = max(time.monotonic() - started, 1e-6)
        rate = done / seconds
        eta = (total - done) / rate if rate else 0.0
        print(
            f"\r  dossiers {done:>11,}/{total:,} ({100 * done // max(total, 1):>3}%)  {rate:>9,.0f}/s  "
            f"ETA {eta:6.0f}s",
            end="",
            flush=True,
        )

    async def work(session: AsyncSession) -> None:
        count = await rebuild_counters(session, calendar, progress)
        print()
        print(f"tthc: statistics rebuilt from {count} dossiers in {time.monotonic() - started:.1f}s")

    _with_session(work)


def _dossiers_import(args: argparse.Namespace) -> int:
    """Load files of events or DongBoHoSoMC records as the named client sent them; the exit status
    is ``_IMPORT_EPILOG``'s."""
    import asyncio

    from app.calendar.working_time import calendar_from_settings
    from app.clients.service import get_client_by_name
    from app.core.collector import settle_after_start_up
    from app.core.db import create_engine, create_sessionmaker
    from app.core.errors import DomainError, Forbidden
    from app.core.security import Principal, Scope
    from app.dossiers.bulk import Source, Stopped, import_file
    from app.dossiers.ingestion.work import Ingestion

    settings = _settings_or_exit()
    calendar = calendar_from_settings(settings)
    try:
        sources = [Source.of(Path(name)) for name in args.files]
    except (OSError, DomainError) as exc:
        sys.exit(f"tthc: {getattr(exc, 'detail', exc)}")
    stop = _StopOnSignal()

    async def run() -> int:
        stop.install()
        settle_after_start_up()
        engine = create_engine(settings.model_copy(update={"database_command_timeout": None}))
        sessionmaker = create_sessionmaker(engine)
        try:
            async with sessionmaker() as session:
                client = await get_client_by_name(session, args.client)
            principal = Principal(client.id, client.name, frozenset(client.scopes), client.unit_code)
            if not principal.has(Scope.dossiers_write):
                raise Forbidden(f"Client {client.name!r} lacks the scope dossiers:write")

            def ingestion_of(session: AsyncSession) -> Ingestion:
                return Ingestion(session, principal, calendar, settings.secret_key)

            status = EXIT_LOADED
            for source in sources:
                if stop.asked.is_set():
                    _say(f"tthc: stopped before {source.path.name}; rerun the same command to continue")
                    return stop.status
                meter = _ImportMeter(source)
                try:
                    progress = await import_file(
                        sessionmaker,
                        ingestion_of,
                        source,
                        chunk_size=args.chunk,
                        jobs=args.jobs,
                        on_progress=meter.show,
                        stop=stop.asked,
                    )
                except Stopped as stopped:
                    meter.stopped(stopped.progress)
                    return stop.status
                meter.summary(progress)
                if progress.has_rejects:
                    status = EXIT_REJECTED
            return status
        finally:
            # The load has ended (done, stopped, or failed): a signal now must not cut the engine's
            # disposal short, which would leave a connection half closed and its traceback logged.
            stop.load_ended()
            await engine.dispose()

    try:
        return asyncio.run(run())
    except DomainError as exc:
        sys.exit(f"tthc: {exc.detail}")
    except asyncio.CancelledError:
        # The second signal: the chunk under way was rolled back (its rejects beyond the checkpoint
        # are cut off on rerun), so the checkpoint still says where to continue. The first one's
        # line was the last written: no progress line to end.
        print(
            "tthc: stopped at once, the chunk under way rolled back; rerun the same command to continue",
            file=sys.stderr,
        )
        return stop.status


def _say(message: str) -> None:
    """A line on stderr, after the progress line (which ends without a line break)."""
    print(f"\n{message}", file=sys.stderr, flush=True)


class _StopOnSignal:
    """SIGINT and SIGTERM during an import: the first asks the load to stop after the chunk under
    way (``asked``, which bulk.import_file checks after every committed chunk); a second cancels it
    at once — an operator who presses Ctrl-C twice means it."""

    def __init__(self) -> None:
        import asyncio

        self.asked = asyncio.Event()
        self.signal: int | None = None
        self._task: asyncio.Task[Any] | None = None

    def install(self) -> None:
        """On the running loop, for its current task (the loop removes them when it closes)."""
        import asyncio
        import threading

        if threading.current_thread() is not threading.main_thread():
            return  # signals reach the main thread only: a caller running main() elsewhere keeps its own
        loop = asyncio.get_running_loop()
        self._task = asyncio.current_task()
        for number in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(number, self._received, number)

    @property
    def status(self) -> int:
        return 128 + (self.signal or signal.SIGINT)

    def load_ended(self) -> None:
        """Nothing is left to stop: a later signal is not the load's to answer."""
        self._task = None

    def _received(self, number: int) -> None:
        if self.signal is None:
            self.signal = number
            self.asked.set()
            _say("tthc: stopping after the chunk under way (signal again to stop at once)")
        elif self._task is not None:
            self._task.cancel()


class _ImportMeter:
    """The progress line of one file (lines, rate, ETA by bytes read) and its summary."""

    def __init__(self, source: Source) -> None:
        self.source = source
        self.started = time.monotonic()
        self.folding_since: float | None = None

    def show(self, progress: FileProgress) -> None:
        if progress.phase == "folding":
            if self.folding_since is None:
                self.folding_since = time.monotonic()
                print(file=sys.stderr)
            seconds = max(time.monotonic() - self.folding_since, 1e-6)
            done, share = progress.folded_lines, progress.folded_lines / max(progress.staged_lines, 1)
            step = "folded"
        else:
            seconds = max(time.monotonic() - self.started, 1e-6)
            done = progress.lines_done - progress.resumed_from
            share = progress.position / max(progress.size, 1)
            step = "loaded" if progress.phase == "loading" else "read"
        rate = done / seconds
        eta = seconds * (1 - share) / share if share > 0 else 0.0
        print(
            f"\r  {self.source.path.name}: {step} {done:>10,} lines  {rate:>8,.0f}/s  "
            f"{100 * share:5.1f}%  ETA {eta:6.0f}s",
            end="",
            flush=True,
            file=sys.stderr,
        )

    def summary(self, progress: FileProgress) -> None:
        seconds = time.monotonic() - self.started
        outcomes = ", ".join(f"{count:,} {outcome}" for outcome, count in sorted(progress.outcomes.items()))
        resumed = f" (resumed after line {progress.resumed_from:,})" if progress.resumed_from else ""
        if progress.resumed_fold_after is not None:
            resumed = f" (all read before; folding resumed after dossier {progress.resumed_fold_after})"
        print(file=sys.stderr)
        print(
            f"tthc: {self.source.path.name}: {progress.kind}, {progress.lines_done:,} lines{resumed} "
            f"in {seconds:.1f}s: {outcomes or 'nothing new'}"
            + (f"; rejected lines in {self.source.rejects}" if progress.has_rejects else "")
        )

    def stopped(self, progress: FileProgress) -> None:
        where = f"line {progress.lines_done:,}"
        if progress.phase == "folding" and progress.folded_through is not None:
            where += f", every line read and the dossiers folded through {progress.folded_through}"
        elif progress.phase == "folding":  # in parts: each stopped where its checkpoint says
            where += f", every line read and {progress.folded_lines:,} of them folded"
        _say(f"tthc: {self.source.path.name}: stopped after {where}; rerun the same command to continue")


def _openapi(args: argparse.Namespace) -> None:
    from app.core.openapi import document_text
    from app.main import create_app

    text = document_text(create_app())
    if args.output:
        Path(args.output).write_text(text)
        print(f"tthc: OpenAPI document written to {args.output}")
    else:
        sys.stdout.write(text)


class _VersionAction(argparse.Action):
    """``--version``, its lookup (importlib.metadata) made only when asked for."""

    def __init__(self, option_strings: Sequence[str], dest: str, help: str | None = None) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, help=help)

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> NoReturn:
        from app.core.version import package_version

        print(f"{parser.prog} {package_version()}")
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tthc", description="Administrative-procedure reform service")
    parser.add_argument("--version", action=_VersionAction, help="print the version and exit")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="serve the HTTP API")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1)
    serve.set_defaults(handler=_serve)

    migrate = commands.add_parser("migrate", help="upgrade the database schema")
    migrate.add_argument("revision", nargs="?", default="head")
    migrate.set_defaults(handler=_migrate)

    openapi = commands.add_parser("openapi", help="print the OpenAPI document (or write it to --output)")
    openapi.add_argument("--output", help="file to write, e.g. openapi.json")
    openapi.set_defaults(handler=_openapi)

    units = commands.add_parser("units", help="administrative units")
    units_commands = units.add_subparsers(dest="units_command", required=True)
    units_import = units_commands.add_parser("import", help="load the official list (vietnam-provinces)")
    units_import.set_defaults(handler=_units_import)

    stats = commands.add_parser("stats", help="dossier statistics")
    stats_commands = stats.add_subparsers(dest="stats_command", required=True)
    rebuild = stats_commands.add_parser("rebuild", help="recompute the counters from the dossiers")
    rebuild.set_defaults(handler=_stats_rebuild)

    dossiers = commands.add_parser("dossiers", help="dossiers and their events")
    dossiers_commands = dossiers.add_subparsers(dest="dossiers_command", required=True)
    summary = "load JSON Lines of dossier events or DongBoHoSoMC records (.gz too), resumable"
    dossiers_import = dossiers_commands.add_parser(
        "import",
        help=summary,
        description=summary,
        epilog=_IMPORT_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    dossiers_import.add_argument("files", nargs="+", help="files of one kind each; kind is detected")
    dossiers_import.add_argument(
        "--client", required=True, help="the API client that sends them (event ids are per client)"
    )
    dossiers_import.add_argument(
        "--chunk", type=_positive, default=_DEFAULT_CHUNK, help="lines per transaction (default %(default)s)"
    )
    dossiers_import.add_argument(
        "--jobs",
        type=_positive,
        default=_cores(),
        help="processes that load a file at once, each a part of it, on PostgreSQL; each "
        "holds two connections (default the cores this command may run on, at most "
        f"{_MOST_JOBS_BY_DEFAULT}: %(default)s); a rerun keeps the parts of the run it continues",
    )
    dossiers_import.set_defaults(handler=_dossiers_import)

    clients = commands.add_parser("clients", help="API clients and their keys")
    clients_commands = clients.add_subparsers(dest="clients_command", required=True)
    create = clients_commands.add_parser("create", help="create a client; its key is the last line printed")
    create.add_argument("--name", required=True)
    create.add_argument("--scope", action="append", required=True, help="repeat for several scopes")
    create.add_argument("--unit", help="bind the client to this unit code and its descendants")
    create.set_defaults(handler=_clients_create)
    key = clients_commands.add_parser("key", help="add a key to a client; the key is the last line printed")
    key.add_argument("name")
    key.set_defaults(handler=_clients_key)
    listing = clients_commands.add_parser("list", help="list clients")
    listing.set_defaults(handler=_clients_list)
    revoke = clients_commands.add_parser("revoke", help="revoke one key (--key ID) or every key of a client")
    revoke.add_argument("name")
    revoke.add_argument("--key", type=int, help="the key id (see `tthc clients list` or the API)")
    revoke.set_defaults(handler=_clients_revoke)
    return parser


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a positive number")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; its exit status (a failure exits through SystemExit with its message)."""
    args = build_parser().parse_args(argv)
    try:
        status: int | None = args.handler(args)
    except KeyboardInterrupt:
        # Ctrl-C outside the import's own handling (which ends it cleanly): a line, not a traceback.
        print("\ntthc: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    return status or 0


if __name__ == "__main__":
    sys.exit(main())
