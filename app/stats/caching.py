"""Statistics answers for pollers: short-lived public caching, revalidation by ETag, and the answers
kept in memory under their ETag (``app.state.stats_cache``) until the data changes."""

from fastapi import Request, Response
from pydantic import BaseModel

from app.core.http_caching import AnswerCache, etag_of, not_modified

# Polled by dashboards and portals: let caches keep an answer briefly, then revalidate by ETag.
CACHE_CONTROL = "public, max-age=60, must-revalidate"
# What every polled answer carries beside its ETag (its 304 too): the caching, and that JSON and
# CSV (or a report's formats) are told apart by Accept.
POLLED_HEADERS = {"Cache-Control": CACHE_CONTROL, "Vary": "Accept"}


def known_answer(request: Request, etag: str) -> Response | None:
    """Answer from what is already known of this data version: a 304, or the answer kept in memory."""
    counter = request.app.state.metrics.stats_cache
    if (unchanged := not_modified(request, etag, POLLED_HEADERS)) is not None:
        counter.labels("not_modified").inc()
        return unchanged
    cache: AnswerCache | None = request.app.state.stats_cache
    if cache is not None and (answer := cache.get(etag)) is not None:
        counter.labels("hit").inc()
        content, media_type = answer
        return Response(content, media_type=media_type, headers={**POLLED_HEADERS, "ETag": etag})
    counter.labels("miss").inc()
    return None


def polled_answer(
    request: Request, body: BaseModel | bytes, media_type: str, etag: str | None = None, *, keep: bool = True
) -> Response:
    """The answer with the polling headers, kept in memory under ``etag`` unless ``keep`` is false (an
    answer whose tag is only known once it is computed). Its route declares the ``ETag``, so a client
    that already has it is answered 304 there (``app.core.http_caching.Route``)."""
    content = body if isinstance(body, bytes) else body.model_dump_json().encode()
    headers = {**POLLED_HEADERS, "ETag": etag or etag_of(content)}
    response = Response(content, media_type=media_type, headers=headers)
    cache: AnswerCache | None = request.app.state.stats_cache
    if keep and etag is not None and cache is not None:
        cache[etag] = (content, media_type)
    return response
