"""Listing and searching the catalogue: filters, search ranks, pages and export chunks."""

import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from pydantic import BaseModel, Field, field_validator
from sqlalchemy import ColumnElement, Select, Text, and_, cast, or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.db import plan_with_values
from app.core.filters import equal, given, where_given
from app.core.pagination import PageParams, SortKey, Window, cursor_int, keyset_rows, window_of
from app.core.text import fold, like_escape
from app.procedures.models import Channel, OnlineService, Procedure, ProcedureStatus
from app.procedures.schemas import ProcedureRead
from app.procedures.service import to_read
from app.units.models import UnitLevel


class ProcedureFilters(BaseModel):
    """The query of ``GET /procedures`` and its export (FastAPI builds it from the query string)."""

    q: str | None = Field(
        default=None,
        max_length=200,
        description="Code or name, case- and accent-insensitive (`dang ky ket hon`)",
    )
    sector: str | None = Field(default=None, max_length=32)
    level: UnitLevel | None = None
    online_service: OnlineService | None = None
    status: ProcedureStatus | None = None
    channel: Channel | None = None

    @field_validator("q")
    @classmethod
    def _blank_is_none(cls, q: str | None) -> str | None:
        return q.strip() if q and q.strip() else None


def _filtered(filters: ProcedureFilters) -> Select[Procedure]:
    return where_given(
        select(Procedure),
        equal(Procedure.sector_code, filters.sector),
        given(filters.level, lambda level: _flag(f"level_{level.value}")),
        given(filters.channel, lambda channel: _flag(f"channel_{channel.value}")),
        given(filters.online_service, lambda service: Procedure.online_service == service.value),
        given(filters.status, lambda status: Procedure.status == status.value),
    )


def _flag(column: str) -> ColumnElement[bool]:
    """One of the procedure's yes/no columns (a level it is done at, a channel it takes) is set."""
    flag: ColumnElement[bool] = getattr(Procedure, column).is_(True)
    return flag


def _search_ranks(q: str) -> list[ColumnElement[bool]]:
    """The conditions of the ranks of a search, best first; each excludes the ranks before it.

    0: the exact code; 1: the name starts with the words; 2: the name contains them; 3: the code
    starts with ``q``. Each rank can be served by an index, so a page costs a few index scans.
    """
    code = q.strip().lower()
    name = like_escape(fold(q))
    exact_code = Procedure.search_code == code
    name_starts = Procedure.search_name.like(f"{name}%", escape="\\")
    name_contains = Procedure.search_name.like(f"%{name}%", escape="\\")
    code_starts = Procedure.search_code.like(f"{like_escape(code)}%", escape="\\")
    return [
        exact_code,
        and_(name_starts, ~exact_code),
        and_(name_contains, ~name_starts, ~exact_code),
        and_(code_starts, ~name_contains, ~exact_code),
    ]


@dataclass(frozen=True)
class ListedProcedure:
    """A procedure as listed: its stored JSON is passed through, not parsed and re-serialised."""

    code: str
    version: int
    in_force_from: date | None
    updated_at: datetime
    data_json: str

    def json(self) -> str:
        meta = json.dumps(
            {
                "code": self.code,
                "version": self.version,
                "in_force_from": self.in_force_from.isoformat() if self.in_force_from else None,
                "updated_at": self.updated_at.isoformat().replace("+00:00", "Z"),
            },
            ensure_ascii=False,
        )
        return meta[:-1] + "," + self.data_json.lstrip()[1:]

    @classmethod
    def of(cls, row: Sequence[Any]) -> "ListedProcedure":
        """The procedure of a row of ``_LISTED_COLUMNS``."""
        code, version, in_force_from, updated_at, data_json = row
        return cls(code, version, in_force_from, updated_at, data_json)


@dataclass(frozen=True)
class _Ranked:
    """A search result with what orders it: its rank, then its name and code within the rank."""

    rank: int
    search_name: str
    procedure: ListedProcedure

    def sort_key(self) -> list[Any]:
        return [self.rank, self.search_name, self.procedure.code]


_LISTED_COLUMNS = (
    Procedure.code,
    Procedure.version,
    Procedure.in_force_from,
    Procedure.updated_at,
    cast(Procedure.data, Text),
)
# Cursors: `[code]` when listing, `[rank, search_name, code]` when searching.
_Listing = Select[str, int, date | None, datetime, str]
_CODE_ORDER = SortKey([Procedure.code])
_IN_RANK_ORDER = SortKey([Procedure.search_name, Procedure.code])


async def _listed_page(session: AsyncSession, query: _Listing, page: PageParams) -> Window[ListedProcedure]:
    window = await keyset_rows(session, query, _CODE_ORDER, page, lambda row: [row.code])
    return window.map(ListedProcedure.of)


async def _searched_page(
    session: AsyncSession, query: _Listing, q: str, page: PageParams
) -> Window[ListedProcedure]:
    # A generic plan cannot turn `LIKE 'prefix%'` into an index range: plan each search afresh.
    await plan_with_values(session)
    # Rank by rank, each an index-served query in name order, until the page (and one more row)
    # is full: a common word fills the page from the first ranks and never reaches the others.
    start_rank, in_rank_after = 0, None
    if page.after is not None:
        in_rank_after = _IN_RANK_ORDER.after(page.after[1:])
        start_rank = cursor_int(page.after[0])
    wanted = page.limit + 1
    found: list[_Ranked] = []
    for rank, condition in enumerate(_search_ranks(q)):
        if rank < start_rank or len(found) >= wanted:
            continue
        ranked = query.add_columns(Procedure.search_name).where(condition)
        if rank == start_rank and in_rank_after is not None:
            ranked = ranked.where(in_rank_after)
        batch = await session.execute(ranked.order_by(*_IN_RANK_ORDER.ordering()).limit(wanted - len(found)))
        found += [_Ranked(rank, row[-1], ListedProcedure.of(row[:-1])) for row in batch]
    window = window_of(found, page, _Ranked.sort_key)
    return Window([ranked.procedure for ranked in window.items], window.next_cursor)


async def list_procedures(
    session: AsyncSession, filters: ProcedureFilters, page: PageParams
) -> Window[ListedProcedure]:
    """One page of the filtered catalogue, ranked when searching, with the next page's cursor."""
    query = _filtered(filters).with_only_columns(*_LISTED_COLUMNS)
    if filters.q is None:
        return await _listed_page(session, query, page)
    return await _searched_page(session, query, filters.q, page)


async def procedure_chunks(
    session: AsyncSession, filters: ProcedureFilters, chunk: int = 500
) -> AsyncIterator[list[ProcedureRead]]:
    """The filtered catalogue in code order, a chunk at a time (for streaming exports)."""
    query = _filtered(filters).order_by(*_CODE_ORDER.ordering()).limit(chunk)
    if filters.q is not None:
        query = query.where(or_(*_search_ranks(filters.q)))
    after: str | None = None
    while True:
        rows = (
            await session.scalars(query if after is None else query.where(_CODE_ORDER.after([after])))
        ).all()
        if not rows:
            return
        yield [to_read(row) for row in rows]
        after = rows[-1].code


async def chunks_apart(
    sessionmaker: async_sessionmaker[AsyncSession], filters: ProcedureFilters
) -> AsyncIterator[list[ProcedureRead]]:
    """The export's chunks, each read in a transaction of its own that ends before it is sent.

    The answer outlives the request's session, and its client may read slowly or not at all: a
    transaction (and the pooled connection under it) held across the sending would be held as long
    as the client likes. The commit only gives the connection back; the session's objects stay
    loaded (``expire_on_commit=False``), which the next chunk's query starts from.
    """
    async with sessionmaker() as session:
        async for chunk in procedure_chunks(session, filters):
            await session.commit()
            yield chunk
