"""Opaque cursor pagination (SPEC §9): ``limit`` + ``cursor`` in, ``items`` + ``next_cursor`` out."""

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Generic, TypeVar, TypeVarTuple

from fastapi import Depends, Query, Request, Response
from pydantic import BaseModel, PrivateAttr
from sqlalchemy import BigInteger, ColumnElement, Integer, Row, Select, SmallInteger, String, and_, or_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import QueryableAttribute

from app.core.base import UTCDateTime
from app.core.errors import InvalidInput
from app.core.links import next_page_link

DEFAULT_LIMIT = 50
MAX_LIMIT = 500


T = TypeVar("T")
U = TypeVar("U")
Ts = TypeVarTuple("Ts")


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = None


class PageParams(BaseModel):
    limit: int
    after: list[Any] | None
    """The sort key of the last item of the previous page, decoded from the cursor."""
    # The answer of the list asked for (``page_params``), whose ``Link`` names the next page: none
    # when a resource shows the first page of a list of its own.
    _answer: tuple[Request, Response] | None = PrivateAttr(default=None)

    def answered_in(self, request: Request, response: Response) -> "PageParams":
        self._answer = (request, response)
        return self

    def link_next(self, cursor: str) -> None:
        if self._answer is not None:
            request, response = self._answer
            response.headers["Link"] = next_page_link(request.url, cursor)


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


@contextmanager
def cursors_for(path: str) -> Iterator[None]:
    """Cursors made inside are those of the list at ``path``, not of the request's own path: a
    resource showing the first page of a list of its own hands out a cursor that list takes."""
    token = _list_path.set(path)
    try:
        yield
    finally:
        _list_path.reset(token)


def _as_json(value: object) -> str:
    # An instant travels as ISO 8601 text; SortKey.after reads it back for its column.
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"a sort key cannot carry {value!r}")


def encode_cursor(sort_key: list[Any]) -> str:
    raw = json.dumps(sort_key, separators=(",", ":"), ensure_ascii=False, default=_as_json).encode()
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
    # Signed is not enough: whoever knows the key (the development default is in the source) signs
    # anything. A sort key is codes, names, ids, ranks and instants: whole numbers and text (an
    # instant as ISO 8601), nothing else.
    if not isinstance(value, list) or not all(_scalar(item) for item in value):
        raise _foreign()
    return value


def _scalar(value: object) -> bool:
    if isinstance(value, str):
        return _storable(value)
    return type(value) is int  # bool is an int subclass, and never a sort key


def _storable(text: str) -> bool:
    """Text every backend can take as a parameter: no NUL (PostgreSQL refuses it in text), and no
    lone surrogate (JSON's `\\ud800` decodes to one, which no driver can encode)."""
    if "\x00" in text:
        return False
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def cursor_int(value: object, low: int = 0, high: int = 2**31 - 1) -> int:
    """A whole number of a cursor outside the sort columns (a search rank): ``low``–``high``, or 422."""
    if type(value) is not int or not low <= value <= high:
        raise _foreign()
    return value


async def page_params(
    request: Request,
    response: Response,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Items per page")] = DEFAULT_LIMIT,
    cursor: Annotated[str | None, Query(description="`next_cursor` of the previous page")] = None,
) -> PageParams:
    _list_path.set(request.url.path)
    params = PageParams(limit=limit, after=decode_cursor(cursor) if cursor else None)
    # FastAPI copies this response's headers onto the answer; a route answering with a Response
    # of its own passes them on itself.
    return params.answered_in(request, response)


PageDep = Annotated[PageParams, Depends(page_params)]


@dataclass(frozen=True)
class SortKey:
    """The order of a list: its columns, all ascending or all descending, the last one unique."""

    columns: Sequence[ColumnElement[Any] | QueryableAttribute[Any]]
    descending: bool = False

    def ordering(self) -> list[ColumnElement[Any]]:
        return [column.desc() if self.descending else column.asc() for column in self.columns]

    def after(self, values: Sequence[Any]) -> ColumnElement[bool]:
        """Rows past ``values`` in this order (written out column by column: row-value comparison
        is not served by every index on every backend)."""
        if len(values) != len(self.columns):
            raise _foreign()
        bound = [_parameter(column, value) for column, value in zip(self.columns, values, strict=True)]
        past: ColumnElement[bool] | None = None
        for position in reversed(range(len(self.columns))):
            column, value = self.columns[position], bound[position]
            beyond = column < value if self.descending else column > value
            equal_before = [self.columns[i] == bound[i] for i in range(position)]
            step = and_(*equal_before, beyond) if equal_before else beyond
            past = step if past is None else or_(step, past)
        assert past is not None
        return past


def _parameter(column: ColumnElement[Any] | QueryableAttribute[Any], value: object) -> object:
    """``value`` of a cursor as a parameter of ``column``, or a 422."""
    if isinstance(column.type, UTCDateTime):
        return _instant(value)
    if not _fits(column, value):
        raise _foreign()
    return value


def _fits(column: ColumnElement[Any] | QueryableAttribute[Any], value: object) -> bool:
    """Whether ``value`` is one of ``column``'s: what a driver would refuse (a 500) is a 422 here."""
    column_type = column.type
    if isinstance(column_type, Integer):
        # PostgreSQL's widths (SQLite's integers are 64-bit, so a bound that holds there holds here).
        bits = 31
        if isinstance(column_type, BigInteger):
            bits = 63
        elif isinstance(column_type, SmallInteger):
            bits = 15
        return type(value) is int and -(2**bits) <= value < 2**bits
    if isinstance(column_type, String):
        return isinstance(value, str) and _storable(value)
    raise TypeError(f"cursors cannot check a sort column of type {column_type!r}: add it to _parameter")


def _instant(value: object) -> datetime:
    """An instant of a cursor, bound as a datetime (SQLite keeps instants as text in its own format,
    which an ISO string would not compare with); one without its offset is no instant we issued."""
    if not isinstance(value, str):
        raise _foreign()
    try:
        instant = datetime.fromisoformat(value)
    except ValueError as exc:
        raise _foreign() from exc
    if instant.tzinfo is None:
        raise _foreign()
    try:
        return instant.astimezone(UTC)
    except OverflowError as exc:  # year 1 or 9999 with an offset: beyond the calendar in UTC
        raise _foreign() from exc


@dataclass(frozen=True)
class Window(Generic[T]):
    """One page of a list as the service read it; ``Page`` is what the API shows of it."""

    items: list[T]
    next_cursor: str | None

    def map(self, convert: Callable[[T], U]) -> "Window[U]":
        return Window([convert(item) for item in self.items], self.next_cursor)

    def page(self, show: Callable[[T], U]) -> Page[U]:
        return Page[U](items=[show(item) for item in self.items], next_cursor=self.next_cursor)


def keyset_query(query: Select[*Ts], sort: SortKey, page: PageParams) -> Select[*Ts]:
    """The statement of the page after the cursor in ``sort`` order, reading ``limit + 1`` rows:
    the extra one only tells whether a next page exists."""
    if page.after is not None:
        query = query.where(sort.after(page.after))
    return query.order_by(*sort.ordering()).limit(page.limit + 1)


async def keyset_window(
    session: AsyncSession,
    query: Select[T],
    sort: SortKey,
    page: PageParams,
    key_of: Callable[[T], Sequence[Any]],
) -> Window[T]:
    """One page of a query of one entity (or column); ``key_of`` gives an item's sort key, which
    the next cursor carries."""
    rows = list((await session.scalars(keyset_query(query, sort, page))).all())
    return window_of(rows, page, key_of)


async def keyset_rows(
    session: AsyncSession,
    query: Select[*Ts],
    sort: SortKey,
    page: PageParams,
    key_of: Callable[[Row[*Ts]], Sequence[Any]],
) -> Window[Row[*Ts]]:
    """One page of a query of several columns or entities, as rows."""
    rows = list((await session.execute(keyset_query(query, sort, page))).all())
    return window_of(rows, page, key_of)


def window_of(rows: list[T], page: PageParams, key_of: Callable[[T], Sequence[Any]]) -> Window[T]:
    """``limit + 1`` rows read in order → the page and, when the extra row came, the next cursor."""
    items = rows[: page.limit]
    if len(rows) <= page.limit:
        return Window(items, None)
    # The one place a list's next cursor is made: its Link header goes with it.
    cursor = encode_cursor(list(key_of(items[-1])))
    page.link_next(cursor)
    return Window(items, cursor)
