"""The optional filters of the list queries: each a condition, or None when it was not asked for."""

from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import TypeVar, TypeVarTuple

from sqlalchemy import ColumnElement, Select, SQLColumnExpression

from app.core.timezone import start_of_day

_T = TypeVar("_T")
_Ts = TypeVarTuple("_Ts")

Condition = ColumnElement[bool] | None


def where_given(query: Select[*_Ts], *conditions: Condition) -> Select[*_Ts]:
    """The query narrowed by the conditions given, in their order; a None condition is skipped.

    A list's query string names only the filters its caller wants, and the others arrive as None: a
    None filter means "not asked", so it narrows nothing (it is not "the column is NULL"). The
    builders below return None for a None value, and every list service states its filters as one
    call, ``where_given(query, equal(...), at_least(...), given(units, Model.unit_code.in_), ...)``.
    """
    for condition in conditions:
        if condition is not None:
            query = query.where(condition)
    return query


def given(value: _T | None, condition: Callable[[_T], ColumnElement[bool]]) -> Condition:
    """``condition(value)``: a filter no single comparison says (a unit subtree, "valid on a day")."""
    return None if value is None else condition(value)


def equal(column: SQLColumnExpression[_T], value: _T | None) -> Condition:
    return None if value is None else column == value


def at_least(column: SQLColumnExpression[_T], value: _T | None) -> Condition:
    """``column >= value``: a lower bound, inclusive."""
    return None if value is None else column >= value


def before(column: SQLColumnExpression[_T], value: _T | None) -> Condition:
    """``column < value``: an upper bound, exclusive (an instant ``until``)."""
    return None if value is None else column < value


def from_day(column: SQLColumnExpression[datetime | None], day: date | None) -> Condition:
    """At or after the start of the Vietnamese day ``day``."""
    return None if day is None else column >= start_of_day(day)


def through_day(column: SQLColumnExpression[datetime | None], day: date | None) -> Condition:
    """Before the start of the Vietnamese day after ``day``: all of ``day`` included."""
    return None if day is None else column < start_of_day(day + timedelta(days=1))
