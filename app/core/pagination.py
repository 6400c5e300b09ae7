"""Opaque cursor pagination (SPEC §9): ``limit`` + ``cursor`` in, ``items`` + ``next_cursor`` out."""

import base64
import binascii
import json
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Depends, Query
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


def encode_cursor(sort_key: list[Any]) -> str:
    raw = json.dumps(sort_key, separators=(",", ":"), ensure_ascii=False).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> list[Any]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        value = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput.for_field(
            "query.cursor", "The cursor is not one this API issued", "cursor"
        ) from exc
    if not isinstance(value, list):
        raise InvalidInput.for_field("query.cursor", "The cursor is not one this API issued", "cursor")
    return value


async def page_params(
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Items per page")] = DEFAULT_LIMIT,
    cursor: Annotated[str | None, Query(description="`next_cursor` of the previous page")] = None,
) -> PageParams:
    return PageParams(limit=limit, after=decode_cursor(cursor) if cursor else None)


PageDep = Annotated[PageParams, Depends(page_params)]
