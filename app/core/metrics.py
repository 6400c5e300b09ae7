"""Prometheus metrics of one process: requests, latency, the database pool, ingestion, the cache."""

from collections.abc import Iterable

from fastapi import APIRouter, Request, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.http_caching import Route
from app.core.replicas import ReplicaMetrics

UNMATCHED = "unmatched"


class Metrics:
    """The service's metrics in a registry of their own (one per app, so tests can build many)."""

    def __init__(self, event_outcomes: Iterable[str]) -> None:
        """``event_outcomes``: the statuses an event is answered with (the dossiers' own to name),
        each shown from the start, at 0, so that a rate over them needs no first occurrence."""
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "tthc_http_requests",
            "HTTP requests answered, by method, route template and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "tthc_http_request_duration_seconds",
            "Time from receiving a request to the end of its response, by method and route template",
            ["method", "route"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )
        self.pool_in_use = Gauge(
            "tthc_db_pool_connections_in_use",
            "Database connections checked out of the pool",
            registry=self.registry,
        )
        self.pool_size = Gauge(
            "tthc_db_pool_size", "Connections the pool keeps open (without overflow)", registry=self.registry
        )
        self.events = Counter(
            "tthc_dossier_events_ingested",
            "Dossier events received, by outcome: the status each was answered with",
            ["outcome"],
            registry=self.registry,
        )
        self.stats_cache = Counter(
            "tthc_stats_cache_requests",
            "Statistics requests by how they were answered: not_modified (304), hit (kept answer) "
            "or miss (computed)",
            ["result"],
            registry=self.registry,
        )
        self.replicas = ReplicaMetrics.register(self.registry)
        for outcome in event_outcomes:
            self.events.labels(outcome)
        for result in ("not_modified", "hit", "miss"):
            self.stats_cache.labels(result)

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)

    def render(self, engine: AsyncEngine) -> bytes:
        pool = engine.pool
        checked_out = getattr(pool, "checkedout", None)
        self.pool_in_use.set(checked_out() if callable(checked_out) else 0)
        size = getattr(pool, "size", None)
        self.pool_size.set(size() if callable(size) else 0)
        return generate_latest(self.registry)


router = APIRouter(tags=["health"], route_class=Route)


@router.get(
    "/metrics",
    operation_id="get_metrics",
    response_class=Response,
    responses={
        200: {
            "description": "Prometheus text format",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        }
    },
    summary="Prometheus metrics of this worker process",
)
async def metrics(request: Request) -> Response:
    body = request.app.state.metrics.render(request.app.state.engine)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
