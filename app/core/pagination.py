"""Opaque cursor pagination (SPEC §9): ``limit`` + ``cursor`` in, ``items`` + ``next_cursor`` out."""

import base64
import binascii
import hashlib
import hmac
import json
from contextvars import ContextVar
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Depends, Query, Request
from pydantic import BaseModel

from app.core.errors import InvalidInput

DEFAULT_LIMIT = 50
MAX_LIMIT = 500


T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = None


class PageParams(BaseModel):
    limit: int
    after: list[Any] | None
    """The sort key of the last item of the previous page, decoded from the cursor."""


# Cursors are signed, so a tampered one is refused here and never reaches a query (where a forged
# sort key could overflow a column type). The key is the server's secret (``use_cursor_key``).
_key = {"secret": b"tthc-cursor"}


def use_cursor_key(secret: str) -> None:
    _key["secret"] = hashlib.sha256(b"tthc-cursor\x00" + secret.encode()).digest()


# A cursor is good for the list that issued it only: another list's sort key could be of
# another type (a code where an id is expected).
_list_path: ContextVar[str] = ContextVar("cursor_list_path", default="")


def _signature(raw: bytes) -> str:
    digest = hmac.new(_key["secret"], _list_path.get().encode() + b"\x00" + raw, hashlib.sha256).digest()[:12]
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def encode_cursor(sort_key: list[Any]) -> str:
    raw = json.dumps(sort_key, separators=(",", ":"), ensure_ascii=False).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=") + "." + _signature(raw)


def _foreign() -> InvalidInput:
    return InvalidInput.for_field("query.cursor", "The cursor is not one this API issued", "cursor")


def decode_cursor(cursor: str) -> list[Any]:
    body, _, signature = cursor.partition(".")
    try:
        raw = base64.urlsafe_b64decode((body + "=" * (-len(body) % 4)).encode())
    except (binascii.Error, ValueError) as exc:
        raise _foreign() from exc
    if not hmac.compare_digest(signature, _signature(raw)):
        raise _foreign()
    try:
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise _foreign() from exc
    if not isinstance(value, list):
        raise _foreign()
    return value


async def page_params(
    request: Request,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Items per page")] = DEFAULT_LIMIT,
    cursor: Annotated[str | None, Query(description="`next_cursor` of the previous page")] = None,
) -> PageParams:
    _list_path.set(request.url.path)
    return PageParams(limit=limit, after=decode_cursor(cursor) if cursor else None)


PageDep = Annotated[PageParams, Depends(page_params)]
