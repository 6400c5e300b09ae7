"""Application factory: ``uvicorn app.main:app`` serves the app configured from the environment."""

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from app.core.config import Settings, get_settings
from app.core.db import create_engine, create_sessionmaker
from app.core.errors import RequestIdMiddleware, install_exception_handlers
from app.core.migrations import head_revision
from app.core.openapi import install_openapi
from app.health.router import router as health_router
from app.units.router import router as units_router

DESCRIPTION = """
Tracks administrative-procedure reform (*cải cách thủ tục hành chính*): administrative units,
the procedure catalogue, reform proposals, citizen dossiers (*hồ sơ*), feedback and the statistics
that provinces, ministries and the national public-service portal poll.

Errors are RFC 9457 `application/problem+json` documents.
"""


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        logging.getLogger("tthc").setLevel(settings.log_level)
        engine = create_engine(settings)
        app.state.engine = engine
        app.state.sessionmaker = create_sessionmaker(engine)
        try:
            yield
        finally:
            await engine.dispose()

    app = FastAPI(title="tthc", version="0.1.0", description=DESCRIPTION, lifespan=lifespan)
    app.state.settings = settings
    app.state.migration_head = head_revision()
    install_exception_handlers(app)
    install_openapi(app)
    app.add_middleware(RequestIdMiddleware)
    app.include_router(health_router)
    app.include_router(units_router)
    return app


app = create_app()
