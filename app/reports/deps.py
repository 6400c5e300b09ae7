"""The query parameters that fill in the form of the report as an official document."""

from datetime import date
from typing import Annotated

from fastapi import Depends, Query
from pydantic import StringConstraints

from app.reports.official import DocumentForm

_Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


def document_form(
    issuer: Annotated[
        _Text | None,
        Query(
            description="The issuing body, e.g. `PHÒNG NỘI VỤ`; the unit's `ỦY BAN NHÂN DÂN …` when absent"
        ),
    ] = None,
    superior: Annotated[
        _Text | None, Query(description="The body the issuer belongs to, e.g. `UBND HUYỆN KIẾN THỤY`")
    ] = None,
    code: Annotated[
        _Text | None,
        Query(description="The document's code after its number, e.g. `BC-PNV` (`Số: …/BC-PNV`)"),
    ] = None,
    place: Annotated[
        _Text | None, Query(description="The place name before the date, e.g. `Kiến Thụy`")
    ] = None,
    issued_on: Annotated[
        date | None, Query(description="The day of the document; blank to fill in when absent")
    ] = None,
    signer: Annotated[
        _Text | None, Query(description="The signer's title, e.g. `TRƯỞNG PHÒNG`; the name is signed by hand")
    ] = None,
    recipient: Annotated[
        list[_Text],
        Query(max_length=20, description="A recipient (`Sở Nội vụ`), once per recipient, in order"),
    ] = [],  # noqa: B006  (FastAPI copies a default list; Query(default_factory=…) is not accepted here)
) -> DocumentForm:
    return DocumentForm(
        issuer=issuer,
        superior=superior,
        code=code,
        place=place,
        issued_on=issued_on,
        signer=signer,
        recipients=tuple(recipient),
    )


DocumentFormDep = Annotated[DocumentForm, Depends(document_form)]
