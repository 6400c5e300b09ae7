"""Entity tags for single resources and statistics (SPEC §9)."""

import hashlib
import re

from cachetools import LRUCache
from fastapi import Request, Response
from pydantic import BaseModel

from app.core.errors import PreconditionFailed, PreconditionRequired


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


def cached_json(
    request: Request,
    model: BaseModel | bytes,
    *,
    status_code: int = 200,
    media_type: str = "application/json",
    vary: str | None = None,
    etag: str | None = None,
) -> Response:
    """Render ``model`` as JSON with an ``ETag``; answer 304 when the client already has it.

    The tag is the body's hash unless the caller names the representation with its own ``etag``.
    """
    body = model if isinstance(model, bytes) else model.model_dump_json().encode()
    etag = etag or etag_of(body)
    headers = {"ETag": etag}
    if vary:
        headers["Vary"] = vary
    if status_code == 200 and (unchanged := not_modified(request, etag, headers)) is not None:
        return unchanged
    return Response(body, status_code=status_code, media_type=media_type, headers=headers)


def current_etag(model: BaseModel) -> str:
    return etag_of(model.model_dump_json().encode())


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
