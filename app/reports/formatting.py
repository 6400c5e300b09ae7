"""Numbers, periods and names written the way Vietnamese administrative reports print them."""

import re
from datetime import date, timedelta

from app.calendar.periods import Period

LEVEL_NAMES = {"province": "cấp tỉnh", "district": "cấp huyện", "commune": "cấp xã"}
LEVEL_ORDER = ("province", "district", "commune")
ROMAN_QUARTERS = {1: "I", 2: "II", 3: "III", 4: "IV"}
_LINE_BREAKS = re.compile(r"[\t\n\r]+")
# What makes inline Markdown (CommonMark and GitHub's tables and strikethrough) of plain text:
# emphasis, code, links and images (`!` needs a `[`), table cells, entity references, escapes.
_MARKDOWN_SPECIALS = re.compile(r"[\\`*_\[\]|~&]")


def capitalize_first(text: str) -> str:
    """The first letter in capitals (``cấp huyện`` → ``Cấp huyện``), the rest as it is."""
    return text[:1].upper() + text[1:]


def number(value: int) -> str:
    """Thousands separated by dots: 19497 → ``19.497``."""
    return f"{value:,}".replace(",", ".")


def count(value: int) -> str:
    """A count as the reports write it: below ten with a leading zero (``02``, ``09``), else ``number``."""
    return f"{value:02d}" if 0 <= value < 10 else number(value)


def percent(value: float | None) -> str:
    """Two decimals after a comma: 99.46 → ``99,46%``; ``–`` when there is nothing to divide."""
    if value is None:
        return "–"
    return f"{value:.2f}".replace(".", ",") + "%"


# The words that open a unit's official name (its kind), capitalised at the start of the name as
# stored and written in lower case inside a sentence ("trên địa bàn huyện Kiến Thụy").
_UNIT_KINDS = ("Thành phố", "Thị trấn", "Thị xã", "Đặc khu", "Phường", "Huyện", "Quận", "Tỉnh", "Xã")


def in_sentence(name: str) -> str:
    """A unit's name as written inside a sentence: its kind in lower case, the proper name as it is
    (``Huyện Kiến Thụy`` → ``huyện Kiến Thụy``); a name of no known kind is left alone."""
    for kind in _UNIT_KINDS:
        if name.startswith(kind + " "):
            return kind.lower() + name[len(kind) :]
    return name


def day(value: date) -> str:
    return value.strftime("%d/%m/%Y")


def period_phrase(period: Period) -> str:
    """``quý III năm 2023``, ``tháng 7 năm 2023``, ``6 tháng đầu năm 2023``, ``năm 2023`` or dates."""
    label = period.label
    year, _, part = label.partition("-")
    if ".." in label:
        return f"từ ngày {day(period.start)} đến ngày {day(period.end - timedelta(days=1))}"
    if not part:
        return f"năm {year}"
    if part.startswith("Q"):
        return f"quý {ROMAN_QUARTERS[int(part[1])]} năm {year}"
    if part.startswith("H"):
        return f"6 tháng {'đầu' if part == 'H1' else 'cuối'} năm {year}"
    return f"tháng {int(part)} năm {year}"


def quarter_label(label: str) -> str:
    """A short axis label: ``2023-Q3`` → ``Q3/2023``."""
    year, _, part = label.partition("-")
    return f"{part}/{year}" if part else year


def markdown_text(text: str) -> str:
    """Text printed in a Markdown heading or sentence exactly as it reads, whatever it contains.

    On one line, so nothing in it starts a block of its own (a heading, a list, a quote); Markdown
    punctuation escaped with a backslash; ``<`` and ``>`` as entity references, so no HTML tag (a
    ``<script>``) is left in the text, not even in renderers without backslash escapes for them.
    """
    escaped = _MARKDOWN_SPECIALS.sub(lambda special: "\\" + special[0], _LINE_BREAKS.sub(" ", text))
    return escaped.replace("<", "&lt;").replace(">", "&gt;")
