"""Entity tags for single resources and statistics (SPEC §9)."""

import hashlib
import re
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

from cachetools import LRUCache
from fastapi import Request, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel

from app.core.errors import PreconditionFailed, PreconditionRequired
from app.core.links import LOCATION_HEADER

ETAG_HEADER: dict[str, Any] = {
    "ETag": {"description": "Entity tag of the representation", "schema": {"type": "string"}}
}
_NOT_MODIFIED: dict[str, Any] = {"description": "Not Modified: the `If-None-Match` tag is current"}

# What a route declares in ``responses=`` is what ``Route`` does: an answer declared with an ``ETag``
# header gets one. One declaration for each kind of answer, so the description cannot drift from it.
TAGGED_READ: dict[int | str, dict[str, Any]] = {200: {"headers": ETAG_HEADER}, 304: _NOT_MODIFIED}
"""A ``GET`` of one resource: tagged, and 304 when the client's ``If-None-Match`` is current."""
TAGGED_WRITE: dict[int | str, dict[str, Any]] = {200: {"headers": ETAG_HEADER}}
"""A change answered with the resource as it now is, tagged as its ``GET`` would tag it."""
TAGGED_CREATED: dict[int | str, dict[str, Any]] = {201: {"headers": {**LOCATION_HEADER, **ETAG_HEADER}}}
"""A 201 with the created resource: its ``Location`` and its tag."""


def etag_of(body: bytes) -> str:
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def etag_from(*parts: object) -> str:
    """A tag naming a representation by what determines it, rather than by its bytes."""
    return etag_of("\x1f".join(map(str, parts)).encode())


def versioned_etag(generation: int, *parts: object) -> str:
    """``"<generation>-<hash>"``: a tag that also says how new its data is, so that a server can tell
    when a client has already been shown newer data than it holds (a lagging standby)."""
    return f'"{generation}-{etag_from(*parts).strip(chr(34))}"'


# A generation is a sum of row versions: 18 digits are ample, and a longer one is not ours.
_GENERATION = re.compile(r"[0-9]{1,18}")


def generation_of(etag: str) -> int:
    """The generation a versioned tag names; 0 for any other tag."""
    prefix, dash, _rest = etag.strip().removeprefix("W/").strip('"').partition("-")
    # ASCII digits only: str.isdigit() also takes "²", which int() refuses.
    if not dash or not _GENERATION.fullmatch(prefix):
        return 0
    return int(prefix)


def newest_generation_seen(request: Request) -> int:
    """The newest generation among the tags the client holds (``If-None-Match``); 0 when none."""
    header = request.headers.get("if-none-match") or ""
    return max((generation_of(tag) for tag in header.split(",")), default=0)


def _listed_etags(header: str) -> set[str]:
    # Weak and strong forms compare equal for If-None-Match (RFC 9110 §13.1.2).
    return {tag.strip().removeprefix("W/") for tag in header.split(",") if tag.strip()}


def not_modified(request: Request, etag: str, headers: dict[str, str] | None = None) -> Response | None:
    """A 304 when ``If-None-Match`` names ``etag`` (or ``*``); otherwise None."""
    if_none_match = request.headers.get("if-none-match")
    if if_none_match is None:
        return None
    tags = _listed_etags(if_none_match)
    if "*" in tags or etag in tags:
        return Response(status_code=304, headers={**(headers or {}), "ETag": etag})
    return None


# What a 304 repeats of the answer it stands for (RFC 9110 §15.4.5).
_KEPT_BY_NOT_MODIFIED = ("cache-control", "content-location", "expires", "vary")


def tagged_statuses(responses: Mapping[int | str, Mapping[str, Any]]) -> frozenset[int]:
    """The statuses whose declared answer carries an ``ETag`` header."""
    return frozenset(
        int(status) for status, answer in responses.items() if "ETag" in answer.get("headers", {})
    )


def tag_answer(request: Request, response: Response) -> Response:
    """Give ``response`` its ``ETag`` — the one the endpoint named, else its body's hash — and turn a
    ``GET`` whose ``If-None-Match`` already names it into a 304."""
    etag = response.headers.get("etag")
    if etag is None:
        etag = etag_of(bytes(response.body))
        response.headers["ETag"] = etag
    if response.status_code != 200 or request.method not in ("GET", "HEAD"):
        return response
    kept = {name: value for name in _KEPT_BY_NOT_MODIFIED if (value := response.headers.get(name))}
    return not_modified(request, etag, kept) or response


class Route(APIRoute):
    """Every route of the API. An answer its ``responses=`` declare with an ``ETag`` gets one here
    (``TAGGED_READ``, ``TAGGED_WRITE``, ``TAGGED_CREATED``), so endpoints return their typed models
    and no endpoint tags by hand; raw ``Response`` objects are left for files and streams."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        answer = super().get_route_handler()
        tagged = tagged_statuses(self.responses)
        if not tagged:
            return answer

        async def tagged_answer(request: Request) -> Response:
            response = await answer(request)
            return tag_answer(request, response) if response.status_code in tagged else response

        return tagged_answer


def current_etag(model: BaseModel) -> str:
    """The tag ``Route`` gives ``model`` as an answer (FastAPI renders it by alias)."""
    return etag_of(model.model_dump_json(by_alias=True).encode())


def require_match(if_match: str | None, model: BaseModel, *, required: bool = False) -> None:
    """Honour ``If-Match``: a stale tag means someone else changed the resource meanwhile."""
    if if_match is None:
        if required:
            raise PreconditionRequired(
                "This update needs `If-Match` with the ETag of the version you read, to avoid lost updates"
            )
        return
    tags = _listed_etags(if_match)
    if "*" not in tags and current_etag(model) not in tags:
        raise PreconditionFailed("The resource has changed since it was read; fetch it again and retry")


# An answer kept under its ETag: the body and its media type.
CachedAnswer = tuple[bytes, str]
AnswerCache = LRUCache[str, CachedAnswer]


def answer_cache(max_bytes: int) -> AnswerCache | None:
    """Answers by ETag, least recently used dropped first, bounded by the bytes of their bodies."""
    if max_bytes <= 0:
        return None
    return LRUCache(maxsize=max_bytes, getsizeof=lambda answer: len(answer[0]) + 200)
