"""gzip for answers of 1 KiB or more, to clients that send ``Accept-Encoding: gzip``."""

from starlette.datastructures import Headers, MutableHeaders
from starlette.middleware.gzip import DEFAULT_EXCLUDED_CONTENT_TYPES, GZipMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.asgi import HTTPMiddleware

MINIMUM_SIZE = 1024
# Already deflated inside (a workbook is a zip file): compressing again costs CPU and gains nothing.
_ALREADY_COMPRESSED = ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",)
# zlib's own default: level 9 costs several times the CPU for a percent or two on JSON.
_LEVEL = 6


class CompressionMiddleware(HTTPMiddleware):
    """Starlette's ``GZipMiddleware``, which sends ``Vary: Accept-Encoding`` with every answer large
    enough to compress (compressed or not) and compresses a stream piece by piece, each flushed as
    it goes (a streamed export still reaches its client, and its send timeout still applies).

    On top of it, entity tags: a strong tag promises the very bytes it was computed on, which a
    compressed answer does not carry (RFC 9110 §8.8.1), so a compressed answer's tag is made weak
    (``W/"…"``), as nginx does. Conditional requests compare tags weakly (``If-None-Match``
    always; this service's ``If-Match`` too), so the weak tag still gets a 304 or passes an update,
    and a 304 repeats the tag as the client holds it — the tag of the answer it revalidates.
    """

    def __init__(self, app: ASGIApp) -> None:
        super().__init__(app)
        self.gzip = GZipMiddleware(
            app,
            minimum_size=MINIMUM_SIZE,
            compresslevel=_LEVEL,
            exclude_content_types=(*DEFAULT_EXCLUDED_CONTENT_TYPES, *_ALREADY_COMPRESSED),
        )

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        held = Headers(scope=scope).get("if-none-match", "")

        async def send_with_weak_tag(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                etag = headers.get("etag")
                if etag is not None and not etag.startswith("W/"):
                    compressed = headers.get("content-encoding") == "gzip"
                    revalidated_weak = message["status"] == 304 and f"W/{etag}" in held
                    if compressed or revalidated_weak:
                        headers["etag"] = f"W/{etag}"
            await send(message)

        await self.gzip(scope, receive, send_with_weak_tag)
