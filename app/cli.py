"""The ``tthc`` command: serve, migrate, and data imports."""

import argparse
import asyncio
import sys
import time
from collections.abc import Sequence

from pydantic import ValidationError

from app.core.config import Settings, get_settings


def _settings_or_exit() -> Settings:
    try:
        return get_settings()
    except ValidationError as exc:
        details = "; ".join(str(err["msg"]).removeprefix("Value error, ") for err in exc.errors())
        sys.exit(f"tthc: invalid configuration: {details}")


def _serve(args: argparse.Namespace) -> None:
    import uvicorn

    settings = _settings_or_exit()
    uvicorn.run(
        "app.main:app",
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level=settings.log_level.lower(),
        proxy_headers=True,
    )


def _migrate(args: argparse.Namespace) -> None:
    from app.core.migrations import upgrade

    settings = _settings_or_exit()
    upgrade(settings.database_url, args.revision)
    print(f"tthc: database at {args.revision}")


def _units_import(_args: argparse.Namespace) -> None:
    from app.core.db import create_engine, create_sessionmaker
    from app.units.service import import_official_units

    settings = _settings_or_exit()

    def progress(done: int, total: int) -> None:
        print(f"\r  units {done:>5}/{total} ({100 * done // total:>3}%)", end="", flush=True)

    async def run() -> None:
        engine = create_engine(settings)
        started = time.monotonic()
        try:
            async with create_sessionmaker(engine)() as session, session.begin():
                summary = await import_official_units(session, progress)
        finally:
            await engine.dispose()
        print()
        print(
            f"tthc: units import done in {time.monotonic() - started:.1f}s: "
            f"{summary.created} created, {summary.updated} updated, {summary.unchanged} unchanged, "
            f"{len(summary.conflicts)} conflicts"
        )
        if summary.conflicts:
            print(f"  conflicting codes (left as they are): {', '.join(summary.conflicts[:50])}")

    asyncio.run(run())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tthc", description="Administrative-procedure reform service")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="serve the HTTP API")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1)
    serve.set_defaults(handler=_serve)

    migrate = commands.add_parser("migrate", help="upgrade the database schema")
    migrate.add_argument("revision", nargs="?", default="head")
    migrate.set_defaults(handler=_migrate)

    units = commands.add_parser("units", help="administrative units")
    units_commands = units.add_subparsers(dest="units_command", required=True)
    units_import = units_commands.add_parser("import", help="load the official list (vietnam-provinces)")
    units_import.set_defaults(handler=_units_import)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    args.handler(args)


if __name__ == "__main__":
    main()
