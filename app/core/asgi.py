"""The base of the service's middleware: pure ASGI, for HTTP requests only."""

from collections.abc import Collection

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class HTTPMiddleware:
    """Runs ``handle`` for each HTTP request; lifespan and other scopes pass by untouched.

    Pure ASGI rather than Starlette's ``BaseHTTPMiddleware``: the body streams through, and an
    exception reaches the middleware outside it as raised.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await self.handle(scope, receive, send)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        raise NotImplementedError


class HeadAsGetMiddleware(HTTPMiddleware):
    """``HEAD`` on ``paths`` answered as ``GET`` is, without the body (RFC 9110 §9.3.2): probes
    (load balancers, uptime checks) that ask with HEAD get the GET's status and headers instead
    of a 405. FastAPI's routes take only the methods they declare, and declaring HEAD beside GET
    would describe every such route twice in the OpenAPI document."""

    def __init__(self, app: ASGIApp, paths: Collection[str]) -> None:
        super().__init__(app)
        self.paths = frozenset(paths)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] != "HEAD" or scope["path"] not in self.paths:
            await self.app(scope, receive, send)
            return

        async def send_headers_only(message: Message) -> None:
            if message["type"] == "http.response.body":
                # Content-Length stays the GET's, as HEAD's should.
                message = {**message, "body": b""}
            await send(message)

        await self.app({**scope, "method": "GET"}, receive, send_headers_only)
