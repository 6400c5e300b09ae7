"""Cells of CSV and XLSX exports that a spreadsheet cannot run (OWASP "CSV injection").

A text cell starting with `=`, `+`, `-`, `@`, a tab or a carriage return is read as a formula by
spreadsheet programs: a procedure named `=HYPERLINK(…)` would become a live link in the report.
Such a cell gets a leading apostrophe; importing strips it again, so exports still round-trip.
"""

from typing import Any

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def safe_row(values: list[Any]) -> list[Any]:
    return [safe_cell(value) for value in values]


def unquote_cell(value: str) -> str:
    """The text an exported cell stood for (the apostrophe ``safe_cell`` added taken away)."""
    if value.startswith("'") and value[1:].startswith(FORMULA_STARTS):
        return value[1:]
    return value
