"""The base of the service's middleware: pure ASGI, for HTTP requests only."""

from starlette.types import ASGIApp, Receive, Scope, Send


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
