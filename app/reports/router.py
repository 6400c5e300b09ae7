from enum import StrEnum
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response

from app.core.db import SessionDep
from app.core.downloads import DISPOSITION_HEADER, content_disposition, download_name
from app.core.errors import NotAcceptable, problem_responses
from app.core.http_caching import generation_of, not_modified, versioned_etag
from app.core.replicas import StandbyReads
from app.reports import render
from app.reports.deps import DocumentFormDep
from app.reports.service import reform_report
from app.stats.caching import POLLED_HEADERS
from app.stats.deps import DataETag, NowDep, PeriodDep

router = APIRouter(prefix="/reports", tags=["reports"], route_class=StandbyReads)

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


class ReportFormat(StrEnum):
    markdown = "markdown"
    html = "html"
    xlsx = "xlsx"
    docx = "docx"


MEDIA_TYPES = {
    ReportFormat.markdown: "text/markdown",
    ReportFormat.html: "text/html",
    ReportFormat.xlsx: XLSX,
    ReportFormat.docx: DOCX,
}
EXTENSIONS = {format: format.value for format in ReportFormat} | {ReportFormat.markdown: "md"}
# Files that are only ever saved, never shown in the browser.
BINARY = (ReportFormat.xlsx, ReportFormat.docx)


def negotiate(accept: str | None) -> ReportFormat | None:
    """The format the ``Accept`` header prefers (RFC 9110 §12.5.1); Markdown when anything goes."""
    if not accept or not accept.strip():
        return ReportFormat.markdown
    best: tuple[float, int, ReportFormat] | None = None
    for item in accept.split(","):
        media_range, *parameters = (part.strip() for part in item.split(";"))
        quality = 1.0
        for parameter in parameters:
            name, _, value = parameter.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if quality <= 0:
            continue
        kind = media_range.lower()
        for format, media_type in MEDIA_TYPES.items():
            main = media_type.split("/")[0]
            if kind in (media_type, f"{main}/*", "*/*"):
                # Exact types beat wildcards at equal quality; earlier formats win ties among wildcards.
                rank = (quality, 2 if kind == media_type else 1 if kind != "*/*" else 0, format)
                if best is None or rank[:2] > best[:2]:
                    best = rank
                break
    return best[2] if best else None


_TEXT = {"type": "string"}
_CONTENT: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The report: Markdown, HTML (with inline SVG charts), an XLSX workbook or a Word "
        "document in the form of Decree 30/2020/NĐ-CP",
        # The workbook and the document are bytes, not text: generated clients read them as blobs.
        "content": {
            MEDIA_TYPES[format]: {
                "schema": {"type": "string", "format": "binary"} if format in BINARY else _TEXT
            }
            for format in ReportFormat
        },
        "headers": {"ETag": {"schema": {"type": "string"}}, **DISPOSITION_HEADER},
    },
    304: {"description": "Not Modified"},
}


@router.get(
    "/reform",
    operation_id="get_reform_report",
    response_class=Response,
    responses={**_CONTENT, **problem_responses(404, 406, 422)},
    summary="The quarterly administrative-reform report of a unit (báo cáo cải cách thủ tục hành chính)",
    description=(
        "The proposals of the period's year (simplify, abolish, fee cuts; by level and sector), the "
        "dossiers of the period per level, online dossiers and citizen feedback, written in Vietnamese "
        "as district press releases print them (`1.473 hồ sơ`, `99,46%`). The format follows `format=` "
        "or else `Accept`: `text/markdown` (the default), `text/html` (with charts of the last four "
        "quarters), the XLSX spreadsheet type, or the Word document type (`docx`): the report as an "
        "official document in the form of Decree 30/2020/NĐ-CP, A4, Times New Roman — the issuing body "
        "and the national title and motto side by side, `Số: …/<code>`, place and date, the title "
        "`BÁO CÁO` and its subject, the body, the recipients and the signer's title with room to sign. "
        "Who issues and signs, the code, the place, the day and the recipients come from the query "
        "(`issuer`, `superior`, `code`, `place`, `issued_on`, `signer`, `recipient`); what is not given "
        "is a dotted blank to fill in by hand. The HTML page prints with the same heading and closing. "
        "A period that starts on or after 2025-07-01 has the province and commune levels only; one "
        "that spans that day shows the district level too, with a note."
    ),
)
async def get_reform_report(
    session: SessionDep,
    request: Request,
    etag: DataETag,
    chosen: PeriodDep,
    now: NowDep,
    unit: Annotated[str, Query(max_length=32, description="The unit; its descendants are included")],
    form: DocumentFormDep,
    format: Annotated[
        str | None,
        Query(max_length=20, description="`markdown`, `html`, `xlsx` or `docx`; overrides `Accept`"),
    ] = None,
) -> Response:
    # An unknown format= is a representation we cannot give (406), like an unsatisfiable Accept.
    chosen_format = (
        ReportFormat.__members__.get(format)
        if format is not None
        else negotiate(request.headers.get("accept"))
    )
    if chosen_format is None:
        raise NotAcceptable(
            f"The report is available as text/markdown, text/html, {XLSX} or {DOCX}; ask for one of "
            "them in Accept or with format="
        )
    # The document's form is part of what is answered: another signer is another representation.
    tag = versioned_etag(generation_of(etag), etag, chosen_format, repr(form))
    headers = {**POLLED_HEADERS, "ETag": tag}
    if (unchanged := not_modified(request, tag, headers)) is not None:
        return unchanged
    report = await reform_report(session, unit, chosen, now, with_quarters=chosen_format is ReportFormat.html)
    filename = download_name("bao-cao-cai-cach", unit, chosen.label, extension=EXTENSIONS[chosen_format])
    # A page or text a browser can show is shown (inline), and still saved under its name; the
    # workbook is only ever saved.
    headers["Content-Disposition"] = content_disposition(filename, inline=chosen_format not in BINARY)
    if chosen_format is ReportFormat.docx:
        return Response(render.docx(report, form), media_type=DOCX, headers=headers)
    if chosen_format is ReportFormat.xlsx:
        return Response(render.xlsx(report), media_type=XLSX, headers=headers)
    if chosen_format is ReportFormat.html:
        return Response(
            render.html(report, form),
            media_type="text/html; charset=utf-8",
            headers=headers,
        )
    return Response(render.markdown(report), media_type="text/markdown; charset=utf-8", headers=headers)
