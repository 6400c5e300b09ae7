"""Vietnamese text folding for case- and accent-insensitive search, and text fit to print."""

import re
import unicodedata

_SPACES = re.compile(r"\s+")
# Control characters other than tab, line feed and carriage return, and DEL: no field has a use
# for them, PostgreSQL cannot store NUL, and XML (so XLSX) cannot hold most of the others.
CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
REPLACEMENT_CHARACTER = "\ufffd"


def fold(text: str) -> str:
    """Lower-case, strip diacritics and fold ``đ`` to ``d``: "Kiến Thụy" → "kien thuy"."""
    decomposed = unicodedata.normalize("NFD", text.replace("đ", "d").replace("Đ", "D"))
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return _SPACES.sub(" ", stripped.lower()).strip()


def like_escape(term: str) -> str:
    """Escape LIKE wildcards so user input matches literally (use with ``escape='\\\\'``)."""
    return term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def printable(text: str) -> str:
    """The text with each control character replaced by U+FFFD, for exports of stored text.

    The edge refuses control characters, but rows written before it did, or by hand, may hold them;
    an export must not fail on them (openpyxl refuses them outright), nor pass them to a reader.
    Replaced rather than dropped, so the damage stays visible and words are not run together."""
    return CONTROL_CHARACTERS.sub(REPLACEMENT_CHARACTER, text)
