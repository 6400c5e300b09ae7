"""What each finished request leaves behind: an access-log line and its metrics."""

import logging
import time
from collections.abc import Callable, Sequence

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.asgi import HTTPMiddleware
from app.core.metrics import UNMATCHED

access_logger = logging.getLogger("tthc.access")

Observer = Callable[[Scope, int, float], None]
"""Told of every finished request: its scope, the status sent and the seconds it took."""


class ObservedRequestsMiddleware(HTTPMiddleware):
    """Times every request and tells the observers the status it was answered with (a request
    that raised was answered by UnhandledErrorMiddleware, inside this one: 503, 409, 422 or 500;
    500 is recorded when nothing was sent at all)."""

    def __init__(self, app: ASGIApp, observers: Sequence[Observer]) -> None:
        super().__init__(app)
        self.observers = observers

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        status = 500
        started = time.perf_counter()

        async def send_watched(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_watched)
        finally:
            seconds = time.perf_counter() - started
            for observer in self.observers:
                observer(scope, status, seconds)


def route_of(scope: Scope) -> str:
    """The route template (``/api/v1/units/{code}``): a label of bounded cardinality."""
    # ``scope["route"]`` is the route as its router declared it, without the prefix the router is
    # mounted under (API_PREFIX); FastAPI keeps the whole template in the route's effective context.
    effective = scope.get("fastapi", {}).get("effective_route_context")
    template = getattr(effective, "path_format", None) or getattr(scope.get("route"), "path", None)
    return template or UNMATCHED


def log_access(scope: Scope, status: int, seconds: float) -> None:
    """One line per request; the client's name, never its key."""
    method = scope.get("method", "")
    client = scope.get("state", {}).get("client_name", "-")
    access_logger.info(
        "%s %s %s %.1fms client=%s",
        method,
        scope.get("path"),
        status,
        seconds * 1000,
        client,
        extra={
            "method": method,
            "route": route_of(scope),
            "path": scope.get("path"),
            "status": status,
            "duration_ms": round(seconds * 1000, 2),
            "client": client,
        },
    )


def record_metrics(scope: Scope, status: int, seconds: float) -> None:
    metrics = getattr(getattr(scope.get("app"), "state", None), "metrics", None)
    if metrics is not None:
        metrics.observe_request(scope.get("method", ""), route_of(scope), status, seconds)
