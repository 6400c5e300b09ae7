"""Answers people save as files: the name a browser saves them under (``Content-Disposition``,
RFC 6266 with RFC 8187's ``filename*`` for names beyond ASCII), and the header row of CSV files."""

import re
import unicodedata
from typing import Annotated, Any, Literal
from urllib.parse import quote

from fastapi import Query

# A part of a name keeps letters and digits of any script, '-' and '_': no path separators, quotes or
# dots that could pass for an extension.
_UNSAFE_IN_PART = re.compile(r"[^\w-]+")
# Agents that ignore `filename*` read `filename` as ISO-8859-1 and some trip on quoting: keep it to
# characters that need neither.
_UNSAFE_IN_FALLBACK = re.compile(r"[^A-Za-z0-9._-]+")
# Letters NFKD does not take apart into a base letter and its accents.
_ASCII_LETTERS = str.maketrans({"đ": "d", "Đ": "D"})


def download_name(*parts: str, extension: str) -> str:
    """``download_name("tthc-stats", "dossiers", "313", "2023-Q3", extension="csv")`` is
    ``tthc-stats-dossiers-313-2023-Q3.csv``: the non-empty parts, each cleaned, joined by '-'."""
    cleaned = (_UNSAFE_IN_PART.sub("-", unicodedata.normalize("NFC", part)).strip("-_") for part in parts)
    return "-".join(part for part in cleaned if part) + "." + extension


def _ascii_fallback(filename: str) -> str:
    decomposed = unicodedata.normalize("NFKD", filename.translate(_ASCII_LETTERS))
    bare = "".join(char for char in decomposed if not unicodedata.combining(char))
    fallback = _UNSAFE_IN_FALLBACK.sub("-", bare).strip("-")
    # A name with nothing left before its extension would be a hidden file.
    return fallback if fallback and not fallback.startswith(".") else "download" + fallback


def content_disposition(filename: str, *, inline: bool = False) -> str:
    """``attachment; filename="…"``, with ``filename*=UTF-8''…`` as well when the name is not plain ASCII
    (``báo-cáo.xlsx`` is also offered as ``bao-cao.xlsx`` to agents that only read ``filename``).

    ``inline`` answers (a page a browser shows) still name the file that "Save as" writes.
    """
    kind = "inline" if inline else "attachment"
    fallback = _ascii_fallback(filename)
    if fallback == filename:
        return f'{kind}; filename="{filename}"'
    return f"{kind}; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


DISPOSITION_HEADER: dict[str, dict[str, Any]] = {
    "Content-Disposition": {
        "description": 'The name to save the answer under, e.g. `attachment; filename="tthc-procedures.csv"`',
        "schema": {"type": "string"},
    }
}
"""The ``Content-Disposition`` of a download, for the ``headers`` of its documented answer."""

HeaderLabels = Literal["names", "vi"]
_LABELS_DESCRIPTION = (
    "CSV only: the one header row holds the field names (`names`, the default, as in JSON) or the "
    "Vietnamese terms of the reports (`vi`)"
)
LabelsQuery = Annotated[HeaderLabels, Query(description=_LABELS_DESCRIPTION)]
