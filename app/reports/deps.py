"""The query parameters that fill in the form of the report as an official document."""

from dataclasses import dataclass, replace
from datetime import date
from typing import Annotated

from fastapi import Depends, Query
from pydantic import StringConstraints

from app.reports.official import DocumentForm, default_issuer

_Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


@dataclass(frozen=True)
class RequestedForm:
    """The form as asked for; the issuer, when not given, is the unit's people's committee."""

    form: DocumentForm
    issuer_given: bool

    def for_unit(self, unit_name: str) -> DocumentForm:
        return self.form if self.issuer_given else replace(self.form, issuer=default_issuer(unit_name))


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
) -> RequestedForm:
    form = DocumentForm(
        issuer=issuer or "",
        superior=superior,
        code=code,
        place=place,
        issued_on=issued_on,
        signer=signer,
        recipients=tuple(recipient),
    )
    return RequestedForm(form=form, issuer_given=issuer is not None)


DocumentFormDep = Annotated[RequestedForm, Depends(document_form)]
