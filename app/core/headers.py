"""Headers every answer carries, whatever produced it (a route, a problem, a middleware)."""

from starlette.types import Message, Receive, Scope, Send

from app.core.asgi import HTTPMiddleware
from app.core.links import API_PREFIX

PRIVATE_PATHS = (f"{API_PREFIX}/public/dossiers",)


class ResponseHeadersMiddleware(HTTPMiddleware):
    """``nosniff`` on every answer; ``no-store`` instead of any other caching on answers for a key
    or carrying a citizen's dossier, which must not sit in shared caches."""

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        private = b"authorization" in dict(scope["headers"]) or scope["path"].startswith(PRIVATE_PATHS)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    (name, value)
                    for name, value in message.get("headers", [])
                    if not (private and name.lower() == b"cache-control")
                ]
                headers.append((b"x-content-type-options", b"nosniff"))
                if private:
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)
