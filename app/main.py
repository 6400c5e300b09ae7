"""Application factory: ``uvicorn --factory app.main:create_app`` serves the app configured from the
environment, and so do ``uvicorn app.main:app`` and ``fastapi run app/main.py``, whose ``app`` is
built on first access (importing this module creates nothing, so tests, which build apps of their
own, and commands that only need the factory load without reading settings)."""

import asyncio
import functools
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from app.audit.router import router as audit_router
from app.calendar.working_time import calendar_from_settings
from app.clients.router import router as clients_router
from app.core.asgi import HeadAsGetMiddleware
from app.core.collector import settle_after_start_up
from app.core.compression import CompressionMiddleware
from app.core.config import Settings, get_settings
from app.core.db import create_engine, create_sessionmaker
from app.core.docs import install_docs
from app.core.errors import RequestIdMiddleware, UnhandledErrorMiddleware, install_exception_handlers
from app.core.headers import ResponseHeadersMiddleware
from app.core.http_caching import Route, answer_cache
from app.core.hygiene import TextHygieneMiddleware
from app.core.idempotency import IdempotencyMiddleware
from app.core.limits import UNLIMITED_PATHS, BodySizeMiddleware, RateLimiter, RateLimitMiddleware
from app.core.links import API_PREFIX
from app.core.logging import configure_logging, take_over_uvicorn_defaults
from app.core.metrics import Metrics
from app.core.metrics import router as metrics_router
from app.core.migrations import head_revision
from app.core.observe import ObservedRequestsMiddleware, log_access, record_metrics
from app.core.openapi import install_openapi
from app.core.pagination import use_cursor_key
from app.core.replicas import LONGEST_CHECK, ReadReplicas
from app.core.timezone import utcnow
from app.core.version import package_version
from app.dossiers.router import BATCH_PATHS, dossiers_router, events_router, public_router, sync_router
from app.dossiers.schemas import EVENT_STATUSES
from app.feedback.router import ratings_router
from app.feedback.router import router as feedback_router
from app.health.router import baseline_router
from app.health.router import router as health_router
from app.procedures.router import procedures_router, sectors_router
from app.proposals.router import router as proposals_router
from app.reports.router import router as reports_router
from app.stats.calendar_in_force import CalendarGuard
from app.stats.router import router as stats_router
from app.units.router import router as units_router

TAGS = [
    {"name": "units", "description": "Administrative units (đơn vị hành chính): province, district, commune"},
    {
        "name": "catalogue",
        "description": "Sectors (lĩnh vực) and the procedure catalogue (thủ tục hành chính)",
    },
    {"name": "proposals", "description": "Reform proposals (phương án đơn giản hóa, bãi bỏ, giảm phí)"},
    {"name": "dossiers", "description": "Dossiers (hồ sơ) and the events the one-stop systems push"},
    {"name": "public", "description": "Citizen look-up of a dossier (tra cứu hồ sơ) with the receipt PIN"},
    {"name": "feedback", "description": "Citizen feedback (phản ánh, kiến nghị) and satisfaction ratings"},
    {
        "name": "statistics",
        "description": "Counts and rates of SPEC §5 per unit and period (số liệu thống kê)",
    },
    {"name": "reports", "description": "Generated reports (báo cáo cải cách thủ tục hành chính)"},
    {"name": "clients", "description": "API clients and keys (admin)"},
    {"name": "audit", "description": "The audit log of writes (nhật ký)"},
    {"name": "health", "description": "Liveness, readiness and Prometheus metrics"},
]

DESCRIPTION = """
Tracks administrative-procedure reform (*cải cách thủ tục hành chính*): administrative units,
the procedure catalogue, reform proposals, citizen dossiers (*hồ sơ*), feedback and the statistics
that provinces, ministries and the national public-service portal poll.

Reads of units, the catalogue and statistics are public. Every write needs an API key with the
right scope (`Authorization: Bearer <key>`); a key bound to a unit reaches only that unit's subtree.
Errors are RFC 9457 `application/problem+json` documents, in Vietnamese for `Accept-Language: vi`.
"""


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(settings.log_level, settings.log_format)
        if settings.uses_development_key:
            logging.getLogger("tthc").warning(
                "TTHC_SECRET_KEY is the development default: PIN hashes and cursors are forgeable by anyone "
                "who has read the source; set a long random key (TTHC_ENVIRONMENT=production refuses it)"
            )
        engine = create_engine(settings)
        app.state.engine = engine
        app.state.sessionmaker = create_sessionmaker(engine)
        app.state.rate_limiter = RateLimiter(settings)
        app.state.stats_cache = answer_cache(settings.stats_cache_bytes)
        # Before any statistics are served: due dates and counters on the calendar in force.
        app.state.calendar_guard = CalendarGuard(settings, app.state.calendar)
        await app.state.calendar_guard.at_start()
        app.state.replicas = None
        watch: asyncio.Task[None] | None = None
        if settings.database_read_urls:
            replicas = ReadReplicas.connect(
                engine,
                settings.database_read_urls,
                pool_size=settings.database_pool_size,
                max_lag=settings.replica_max_lag,
                check_timeout=min(settings.replica_check_interval, LONGEST_CHECK),
                command_timeout=settings.database_command_timeout,
                metrics=app.state.metrics.replicas,
            )
            # Known before the first request: a standby serves from the start or not at all.
            await replicas.check()
            app.state.replicas = replicas
            watch = asyncio.create_task(replicas.watch(settings.replica_check_interval))
        try:
            yield
        finally:
            if watch is not None:
                watch.cancel()
                with suppress(asyncio.CancelledError):
                    await watch
                await app.state.replicas.dispose()
            await engine.dispose()

    app = FastAPI(
        title="tthc",
        version=package_version(),
        description=DESCRIPTION,
        lifespan=lifespan,
        openapi_tags=TAGS,
        # One schema per model: generated clients choke on FastAPI's "-Input"/"-Output" pairs.
        separate_input_output_schemas=False,
        # Served by install_docs from local assets instead of FastAPI's CDN pages.
        docs_url=None,
        redoc_url=None,
    )
    # The app's own pages (the docs) are routes like every other (app.core.http_caching.Route).
    app.router.route_class = Route
    app.state.settings = settings
    # What "now" is for statistics of a running period; tests put a clock of their own here.
    app.state.clock = utcnow
    use_cursor_key(settings.secret_key)
    app.state.metrics = Metrics(event_outcomes=EVENT_STATUSES)
    app.state.migration_head = head_revision()
    install_exception_handlers(app)
    install_openapi(app)
    install_docs(app)
    # Added innermost first: requests pass the request id, observation (access log, metrics),
    # response headers, HEAD on the probes (the never limited paths; outside compression, so that
    # its headers are the GET's to the letter), compression, the last-resort problem, CORS, the rate
    # limit, the body size, text hygiene and idempotency, then the routes.
    app.add_middleware(IdempotencyMiddleware)
    app.add_middleware(
        TextHygieneMiddleware, body_timeout=settings.body_read_timeout, per_item_paths=BATCH_PATHS
    )
    app.add_middleware(BodySizeMiddleware, max_body_bytes=settings.max_body_bytes)
    app.add_middleware(RateLimitMiddleware)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "If-Match", "If-None-Match", "X-Request-ID"],
            expose_headers=[
                "ETag",
                "Link",
                "Location",
                "RateLimit",
                "RateLimit-Policy",
                "Retry-After",
                "X-Request-ID",
            ],
        )
    app.add_middleware(UnhandledErrorMiddleware)
    app.add_middleware(CompressionMiddleware)
    app.add_middleware(HeadAsGetMiddleware, paths=UNLIMITED_PATHS)
    app.add_middleware(ResponseHeadersMiddleware)
    app.add_middleware(ObservedRequestsMiddleware, observers=[log_access, record_metrics])
    app.add_middleware(RequestIdMiddleware)
    app.state.calendar = calendar_from_settings(settings)
    app.include_router(health_router)
    for router in (
        units_router,
        sectors_router,
        procedures_router,
        proposals_router,
        events_router,
        sync_router,
        dossiers_router,
        public_router,
        feedback_router,
        ratings_router,
        stats_router,
        reports_router,
        clients_router,
        audit_router,
    ):
        app.include_router(router, prefix=API_PREFIX)
    app.include_router(metrics_router)
    if settings.benchmark_baseline:
        app.include_router(baseline_router)
    return app


def served_app() -> FastAPI:
    """``tthc serve``'s factory, called in each worker process: the app configured from the
    environment, with the collector settled once it is built (app.core.collector)."""
    app = create_app()
    settle_after_start_up()
    return app


@functools.cache
def _app_from_environment() -> FastAPI:
    settings = get_settings()
    take_over_uvicorn_defaults(settings.log_level, settings.log_format)
    app = create_app(settings)
    settle_after_start_up()
    return app


def __getattr__(name: str) -> FastAPI:
    # `app` on first access only: `uvicorn app.main:app` and `fastapi run` read it, tests never do.
    if name == "app":
        return _app_from_environment()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    # `fastapi run` looks for its app among dir(module), which a module __getattr__ does not add to.
    return [*globals(), "app"]
