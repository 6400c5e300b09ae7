"""Resource limits (OWASP API4): request body size and rate limits, per IP and per client."""

import logging
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from limits import RateLimitItem, WindowStats, parse
from limits.aio.storage import MemoryStorage, RedisStorage
from limits.aio.strategies import FixedWindowRateLimiter
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.asgi import HTTPMiddleware
from app.core.config import Settings
from app.core.errors import NotFound, TooManyRequests, problem_response

logger = logging.getLogger("tthc.limits")

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Probes and scrapers must never be throttled.
UNLIMITED_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})

_R = TypeVar("_R")


@dataclass(frozen=True)
class Quota:
    """One policy's allowance as a request left it, for the ``RateLimit-Policy`` and ``RateLimit``
    fields (draft-ietf-httpapi-ratelimit-headers): ``"ip-read";q=6000;w=60`` and
    ``"ip-read";r=5990;t=42``."""

    policy: str
    quota: int
    window: int
    remaining: int
    reset: int
    """Seconds until the window starts afresh."""

    @classmethod
    def of(cls, name: str, rule: RateLimitItem, stats: WindowStats) -> "Quota":
        return cls(
            policy=name.replace(":", "-"),
            quota=rule.amount,
            window=rule.get_expiry(),
            remaining=stats.remaining,
            reset=max(0, math.ceil(stats.reset_time - time.time())),
        )


def quotas_of(scope: Scope) -> dict[str, Quota]:
    """The allowances a request has drawn on, by policy: its answer shows them."""
    state: dict[str, Any] = scope.setdefault("state", {})
    quotas: dict[str, Quota] = state.setdefault("rate_limits", {})
    return quotas


def quota_headers(quotas: Iterable[Quota]) -> list[tuple[bytes, bytes]]:
    shown = list(quotas)
    policies = ", ".join(f'"{q.policy}";q={q.quota};w={q.window}' for q in shown)
    states = ", ".join(f'"{q.policy}";r={q.remaining};t={q.reset}' for q in shown)
    return [(b"ratelimit-policy", policies.encode()), (b"ratelimit", states.encode())]


class RateLimiter:
    """Fixed-window counters, in this process or — with ``TTHC_REDIS_URL`` — shared in Redis.

    While Redis cannot be reached, this process counts on its own (as without Redis): a limit
    held by each worker instead of by all of them together, never no limit at all. The PIN
    protections (``pin_attempt``) must hold through an outage of the counters' store.
    """

    def __init__(self, settings: Settings) -> None:
        self._local = FixedWindowRateLimiter(MemoryStorage())
        self._shared: FixedWindowRateLimiter | None = None
        if settings.redis_url:
            uri = settings.redis_url.replace("redis://", "async+redis://", 1)
            # Short timeouts: an unresponsive Redis must cost a request a fraction of a second.
            storage = RedisStorage(
                uri, implementation="redispy", socket_timeout=0.25, socket_connect_timeout=0.25
            )
            self._shared = FixedWindowRateLimiter(storage)
        self.rules: dict[str, RateLimitItem | None] = {
            "ip:read": _rule(settings.rate_limit_ip_reads),
            "ip:write": _rule(settings.rate_limit_ip_writes),
            "client:read": _rule(settings.rate_limit_client_reads),
            "client:write": _rule(settings.rate_limit_client_writes),
            "lookup:read": _rule(settings.rate_limit_lookup),
            "pin-failures:read": _rule(settings.pin_failures_per_dossier),
        }
        # While Redis is unreachable, it is not asked again until this instant (each request would
        # otherwise pay its timeout), and the outage is logged once, not once per request.
        self._down_until = 0.0
        self._down = False

    async def hit(self, kind: str, method: str, identity: str, shown: dict[str, Quota]) -> None:
        """Count one request of ``identity``; raise 429 when its window is used up. What is left
        of the allowance goes into ``shown`` (``quotas_of`` the request), refused or not."""
        name = f"{kind}:{'read' if method in READ_METHODS else 'write'}"
        rule = self.rules[name]
        if rule is None:
            return

        async def counted(strategy: FixedWindowRateLimiter) -> tuple[bool, WindowStats]:
            allowed = await strategy.hit(rule, name, identity)
            return allowed, await strategy.get_window_stats(rule, name, identity)

        allowed, stats = await self._counted(counted)
        shown[name] = Quota.of(name, rule, stats)
        if not allowed:
            raise TooManyRequests(_seconds_until(stats))

    async def refuse_if_locked(self, kind: str, identity: str) -> None:
        """429 when ``identity`` has used up its allowance of failures (e.g. wrong PINs on a dossier)."""
        name = f"{kind}:read"
        rule = self.rules[name]
        if rule is None:
            return

        async def locked_for(strategy: FixedWindowRateLimiter) -> WindowStats | None:
            if await strategy.test(rule, name, identity):
                return None
            return await strategy.get_window_stats(rule, name, identity)

        if (stats := await self._counted(locked_for)) is not None:
            raise TooManyRequests(_seconds_until(stats))

    async def count_failure(self, kind: str, identity: str) -> None:
        name = f"{kind}:read"
        rule = self.rules[name]
        if rule is not None:
            await self._counted(lambda strategy: strategy.hit(rule, name, identity))

    async def _counted(self, use: Callable[[FixedWindowRateLimiter], Awaitable[_R]]) -> _R:
        """``use`` on Redis's counters, or on this process's while Redis cannot be reached."""
        if self._shared is not None and time.monotonic() >= self._down_until:
            try:
                result = await use(self._shared)
            except Exception as exc:
                self._unavailable(exc)
            else:
                self._recovered()
                return result
        return await use(self._local)

    def _unavailable(self, exc: Exception) -> None:
        self._down_until = time.monotonic() + 5
        if not self._down:
            self._down = True
            logger.warning(
                "rate limiter's Redis unavailable (%s: %s); this process counts on its own until it is back",
                type(exc).__name__,
                exc,
            )

    def _recovered(self) -> None:
        if self._down:
            self._down = False
            logger.warning("rate limiter's Redis available again; counting shared by every process")


def _seconds_until(stats: WindowStats) -> int:
    """The ``Retry-After`` of a used-up window: whole seconds until it starts afresh, at least 1."""
    return max(1, math.ceil(stats.reset_time - time.time()))


def _rule(value: str) -> RateLimitItem | None:
    return parse(value) if value else None


class _BodyTooLarge(StarletteHTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"The request body exceeds {limit} bytes")


class RateLimitMiddleware(HTTPMiddleware):
    """Counts every request against its client address (429 over the allowance), and shows in
    the answer what is left of each allowance the request drew on: its address's here, its API
    client's or its PIN look-ups' further in (``quotas_of``)."""

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        limiter: RateLimiter | None = getattr(scope["app"].state, "rate_limiter", None)
        if limiter is None or scope["path"] in UNLIMITED_PATHS:
            await self.app(scope, receive, send)
            return
        shown = quotas_of(scope)

        async def send_with_quotas(message: Message) -> None:
            if message["type"] == "http.response.start" and shown:
                message["headers"] = [*message.get("headers", []), *quota_headers(shown.values())]
            await send(message)

        client = scope.get("client")
        try:
            await limiter.hit("ip", scope["method"], client[0] if client else "unknown", shown)
        except TooManyRequests as exc:
            await _reject(exc, scope, receive, send_with_quotas)
            return
        await self.app(scope, receive, send_with_quotas)


class BodySizeMiddleware(HTTPMiddleware):
    """Refuses bodies over the size limit (413): a declared length at once, a chunked body as soon
    as it outgrows the limit while being read."""

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        super().__init__(app)
        self.max_body_bytes = max_body_bytes

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["path"] in UNLIMITED_PATHS:
            await self.app(scope, receive, send)
            return
        limit = self.max_body_bytes
        try:
            declared = int(dict(scope["headers"]).get(b"content-length", b"0"))
        except ValueError:
            declared = 0
        if declared > limit:
            await _reject(_BodyTooLarge(limit), scope, receive, send)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _BodyTooLarge(limit)
            return message

        response_started = False

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            response_started = response_started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _BodyTooLarge as exc:
            if response_started:
                raise
            await _reject(exc, scope, receive, send)


async def _reject(exc: Exception, scope: Scope, receive: Receive, send: Send) -> None:
    if isinstance(exc, TooManyRequests):
        response = problem_response(None, 429, detail=exc.detail, slug=exc.slug, headers=exc.headers)
    else:
        assert isinstance(exc, StarletteHTTPException)
        response = problem_response(None, 413, detail=str(exc.detail), slug="body-too-large")
    await response(scope, receive, send)


@asynccontextmanager
async def pin_attempt(request: Request, dossier_code: str) -> AsyncIterator[None]:
    """Around a check of a receipt PIN (look-up, rating): one allowance per address for both
    endpoints, and a dossier that collected too many wrong PINs is locked for the window."""
    limiter: RateLimiter = request.app.state.rate_limiter
    client = request.client.host if request.client else "unknown"
    await limiter.hit("lookup", "GET", client, quotas_of(request.scope))
    await limiter.refuse_if_locked("pin-failures", dossier_code)
    try:
        yield
    except NotFound:
        await limiter.count_failure("pin-failures", dossier_code)
        raise
