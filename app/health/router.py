from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from app.core.db import SessionDep
from app.core.errors import problem_response, problem_responses
from app.core.http_caching import Route
from app.core.links import API_PREFIX
from app.core.primary import NoPrimary
from app.health.service import migration_of, select_one

router = APIRouter(tags=["health"], route_class=Route)
# Only with TTHC_BENCHMARK_BASELINE: the least a database-backed request can cost on this stack.
baseline_router = APIRouter(include_in_schema=False, route_class=Route)


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    status: str
    database: str
    migration: str | None


@router.get("/healthz", operation_id="healthz", response_model=Health, summary="The process is alive")
async def healthz() -> Health:
    return Health(status="ok")


_RETRY = {"Retry-After": "5"}


@router.get(
    "/readyz",
    operation_id="readyz",
    response_model=Readiness,
    responses=problem_responses(503),
    summary="The database is reachable and migrated to head",
)
async def readyz(request: Request) -> JSONResponse:
    engine = request.app.state.engine
    expected: str | None = request.app.state.migration_head
    try:
        revision = await migration_of(engine)
    except NoPrimary as exc:
        # Several servers, none a primary to write to: each is named with why it was passed over.
        return problem_response(
            request, 503, detail=f"The database is not writable: {exc}", slug="not-ready", headers=_RETRY
        )
    except Exception:
        return problem_response(
            request, 503, detail="The database is not reachable", slug="not-ready", headers=_RETRY
        )
    if revision != expected:
        return problem_response(
            request,
            503,
            detail=f"The database is at migration {revision or 'none'}, expected {expected}; "
            "run `tthc migrate`",
            slug="not-ready",
            headers=_RETRY,
        )
    return JSONResponse(
        Readiness(status="ready", database=engine.dialect.name, migration=revision).model_dump()
    )


@baseline_router.get(f"{API_PREFIX}/_baseline")
async def baseline(session: SessionDep) -> Response:
    """One `SELECT 1` through the same session dependency, pool and middleware as every endpoint."""
    await select_one(session)
    return Response(b'{"status":"ok"}', media_type="application/json")
