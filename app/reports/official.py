"""The form of an administrative document (Decree 30/2020/NĐ-CP, Appendix I): what stands around a
report's body when a unit sends it — the issuing body, the national title and motto, the number
and the place and date, the title and subject, the recipients and the signature block.

Who issues and signs, the document's code, the place and the day are the unit's to give (query
parameters of the report): nothing is invented. What is not given is left as a dotted blank for
the officer to fill in by hand, as drafts are; the number itself is always blank, since the
registry (văn thư) gives it when the document is issued.
"""

from dataclasses import dataclass
from datetime import date

from app.calendar.periods import Period
from app.reports.formatting import period_phrase

NATIONAL_TITLE = "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM"
MOTTO = "Độc lập - Tự do - Hạnh phúc"
DOCUMENT_KIND = "BÁO CÁO"
BLANK = "…"
"""Where the officer writes by hand."""
FILED = "Lưu: VT."
"""The last recipient of every document: the issuing body's own archive (văn thư)."""

# A4 and the decree's margins (Appendix I, II.2): top and bottom 20–25 mm, left 30–35 mm, right
# 15–20 mm; the narrowest allowed, so that the wide tables fit.
PAGE_MM = (210, 297)
MARGINS_MM = {"top": 20, "bottom": 20, "left": 30, "right": 15}
FONT = "Times New Roman"


@dataclass(frozen=True)
class DocumentForm:
    """What the unit says about the document it sends."""

    issuer: str | None = None
    """The issuing body, e.g. ``PHÒNG NỘI VỤ``; the unit's people's committee when not given."""
    superior: str | None = None
    """The body the issuer belongs to, written above it, e.g. ``UBND HUYỆN KIẾN THỤY``."""
    code: str | None = None
    """The document's code after its number: ``BC-PNV`` gives ``Số: …/BC-PNV``."""
    place: str | None = None
    """The place name before the date: ``Kiến Thụy``."""
    issued_on: date | None = None
    signer: str | None = None
    """The signer's title, e.g. ``TRƯỞNG PHÒNG`` (the name is left to be written under the signature)."""
    recipients: tuple[str, ...] = ()


@dataclass(frozen=True)
class FormLines:
    """The form's lines as they are printed, by the Word document and by the HTML page alike."""

    bodies: tuple[str, ...]
    """The superior, if given, then the issuing body: in capitals, top left."""
    number: str
    place_and_date: str
    subject: str
    recipients: list[str]
    signer: str


def lines(form: DocumentForm, unit_name: str, period: Period) -> FormLines:
    """What the form prints for the report of ``unit_name`` over ``period``. The issuing body, when
    not given, is the unit's people's committee (``ỦY BAN NHÂN DÂN HUYỆN KIẾN THỤY``)."""
    issuer = form.issuer or f"ỦY BAN NHÂN DÂN {unit_name}"
    return FormLines(
        bodies=tuple(body.upper() for body in (form.superior, issuer) if body),
        number=number_line(form),
        place_and_date=place_and_date(form),
        subject=subject(period),
        recipients=recipient_lines(form),
        signer=form.signer or BLANK,
    )


def number_line(form: DocumentForm) -> str:
    """``Số: …/BC-PNV`` (the number is given when the document is issued)."""
    return f"Số: {BLANK}/{form.code or 'BC-' + BLANK}"


def _day_or_month(value: int, *, pad_below: int) -> str:
    # The decree writes days below 10 and the months January and February with a leading zero.
    return f"{value:02d}" if value < pad_below else str(value)


def place_and_date(form: DocumentForm) -> str:
    """``Kiến Thụy, ngày 05 tháng 10 năm 2023``, with blanks for what was not given."""
    place = form.place or BLANK
    if form.issued_on is None:
        return f"{place}, ngày {BLANK} tháng {BLANK} năm {BLANK}"
    day = _day_or_month(form.issued_on.day, pad_below=10)
    month = _day_or_month(form.issued_on.month, pad_below=3)
    return f"{place}, ngày {day} tháng {month} năm {form.issued_on.year}"


def recipient_lines(form: DocumentForm) -> list[str]:
    """``- Sở Nội vụ;`` for each recipient, then ``- Lưu: VT.``."""
    return [*(f"- {recipient};" for recipient in form.recipients), f"- {FILED}"]


def subject(period: Period) -> str:
    """The subject under the title (trích yếu)."""
    return f"Kết quả thực hiện cải cách thủ tục hành chính {period_phrase(period)}"
