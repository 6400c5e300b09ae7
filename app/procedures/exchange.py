"""The catalogue as CSV, JSON and CPSV-AP JSON-LD, for spreadsheets and other catalogue tools."""

import csv
import io
import json
from collections.abc import AsyncIterator
from typing import Any

from app.calendar.working_time import TimeUnit
from app.core.downloads import HeaderLabels
from app.core.errors import FieldError
from app.core.export import FORMULA_STARTS
from app.core.hygiene import MAX_JSON_DEPTH, json_depth
from app.procedures.schemas import ProcedureRead

# Nested lists travel as JSON inside a cell; short enumerations as `a;b`.
CSV_COLUMNS = (
    "code",
    "name",
    "sector_code",
    "levels",
    "implementing_agency",
    "procedure_type",
    "channels",
    "processing_time_value",
    "processing_time_unit",
    "fees",
    "online_service",
    "required_documents",
    "results",
    "legal_basis",
    "status",
    "effective_from",
    "effective_to",
    "description",
)
# The header of an export with labels=vi: the terms of the national procedure database (CSDLQG TTHC).
CSV_LABELS_VI = {
    "code": "Mã thủ tục",
    "name": "Tên thủ tục",
    "sector_code": "Mã lĩnh vực",
    "levels": "Cấp thực hiện",
    "implementing_agency": "Cơ quan thực hiện",
    "procedure_type": "Loại thủ tục",
    "channels": "Cách thức thực hiện",
    "processing_time_value": "Thời hạn giải quyết",
    "processing_time_unit": "Đơn vị thời hạn",
    "fees": "Phí, lệ phí",
    "online_service": "Dịch vụ công trực tuyến",
    "required_documents": "Thành phần hồ sơ",
    "results": "Kết quả thực hiện",
    "legal_basis": "Căn cứ pháp lý",
    "status": "Trạng thái",
    "effective_from": "Ngày có hiệu lực",
    "effective_to": "Ngày hết hiệu lực",
    "description": "Mô tả",
}
_COLUMN_OF_LABEL = {label: column for column, label in CSV_LABELS_VI.items()}
_LIST_COLUMNS = ("levels", "channels")
_JSON_COLUMNS = ("fees", "required_documents", "results", "legal_basis")
# Free text whose schema keeps surrounding whitespace: its cell is taken as written, so that an
# export imports back to the same text (other cells are trimmed, for hand-edited files).
_VERBATIM_COLUMNS = ("description",)
BOM = "\ufeff"


def export_cell(value: str) -> str:
    """The cell of a text: one a spreadsheet cannot run as a formula, and that imports back to
    exactly the text.

    A text starting with a formula start gets a leading apostrophe (OWASP, as
    ``app.core.export.safe_cell``), and the import takes one away. A text that already starts with
    apostrophes before a formula start (``'=1+1``) gets one more too, so the apostrophe the import
    takes away is always one the export added; any other text is its own cell.
    """
    if value.lstrip("'").startswith(FORMULA_STARTS):
        return "'" + value
    return value


def import_cell(cell: str) -> str:
    """The text an exported cell stands for: the inverse of ``export_cell``."""
    if cell.startswith("'") and cell.lstrip("'").startswith(FORMULA_STARTS):
        return cell[1:]
    return cell


def _number(value: float) -> int | float:
    return int(value) if float(value).is_integer() else value


def procedure_to_row(procedure: ProcedureRead) -> dict[str, str]:
    data = procedure.model_dump(mode="json")
    row: dict[str, str] = {}
    for column in CSV_COLUMNS:
        if column == "processing_time_value":
            row[column] = str(_number(data["processing_time"]["value"]))
        elif column == "processing_time_unit":
            row[column] = data["processing_time"]["unit"]
        elif column in _LIST_COLUMNS:
            row[column] = ";".join(data[column])
        elif column in _JSON_COLUMNS:
            row[column] = json.dumps(data[column], ensure_ascii=False) if data[column] else ""
        else:
            row[column] = "" if data[column] is None else str(data[column])
    return row


def row_to_object(row: dict[str, str | None], number: int) -> dict[str, Any] | FieldError:
    """A CSV row as the object the API takes; a cell that is not even readable gives an error."""
    values = {
        name: import_cell(text if name in _VERBATIM_COLUMNS else text.strip())
        for name, text in ((key.strip(), value or "") for key, value in row.items() if key)
    }
    obj: dict[str, Any] = {}
    for column, value in values.items():
        if column in ("processing_time_value", "processing_time_unit"):
            continue
        if column in _LIST_COLUMNS:
            obj[column] = [part.strip() for part in value.split(";") if part.strip()]
        elif column in _JSON_COLUMNS:
            if not value:
                obj[column] = []
                continue
            if json_depth(value.encode()) > MAX_JSON_DEPTH:
                return FieldError(
                    field=column,
                    message=f"The cell nests deeper than {MAX_JSON_DEPTH} levels",
                    type="too_deep",
                    row=number,
                )
            try:
                obj[column] = json.loads(value)
            except json.JSONDecodeError:
                return FieldError(
                    field=column, message="The cell is not valid JSON", type="json_invalid", row=number
                )
        elif value:
            obj[column] = value
    time_value = values.get("processing_time_value", "")
    if time_value or values.get("processing_time_unit"):
        obj["processing_time"] = {
            "value": time_value or None,
            "unit": values.get("processing_time_unit") or None,
        }
    return obj


def _is_label_row(row: dict[str, str | None]) -> bool:
    return all(
        (row.get(column) or "").strip() == label for column, label in CSV_LABELS_VI.items() if column in row
    )


def read_csv(text: str, max_rows: int) -> list[dict[str, Any] | FieldError]:
    """The rows of the file as objects (or errors), read no further than ``max_rows`` + 1 rows:
    a file with too many is refused for its size, whatever the rows beyond hold.

    The header holds the column names or their Vietnamese terms (an export with ``labels=vi``); a
    row of the Vietnamese terms under the names (a second header row) is passed over.
    """
    reader = csv.DictReader(io.StringIO(text.removeprefix(BOM)))
    reader.fieldnames = [_COLUMN_OF_LABEL.get(name.strip(), name) for name in reader.fieldnames or ()]
    missing = {"code", "name"} - set(reader.fieldnames or ())
    if missing:
        return [
            FieldError(field=", ".join(sorted(missing)), message="Missing CSV columns", type="missing", row=0)
        ]
    rows: list[dict[str, Any] | FieldError] = []
    try:
        for number, row in enumerate(reader, start=1):
            if number == 1 and _is_label_row(row):
                continue  # a second header row, numbered with the header (row 0)
            rows.append(row_to_object(row, len(rows) + 1))
            if len(rows) > max_rows:
                break
    except csv.Error as exc:  # a cell over the csv module's field size limit (128 KiB), say
        rows.append(
            FieldError(field="body", message=f"Unreadable CSV: {exc}", type="csv_invalid", row=len(rows) + 1)
        )
    return rows


def _csv_line(values: list[str] | dict[str, str]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    cells = values if isinstance(values, list) else [values[column] for column in CSV_COLUMNS]
    writer.writerow([export_cell(cell) for cell in cells])
    return buffer.getvalue()


async def csv_stream(
    chunks: AsyncIterator[list[ProcedureRead]], labels: HeaderLabels
) -> AsyncIterator[bytes]:
    header = [CSV_LABELS_VI[column] for column in CSV_COLUMNS] if labels == "vi" else list(CSV_COLUMNS)
    yield (BOM + _csv_line(header)).encode()
    async for chunk in chunks:
        yield "".join(_csv_line(procedure_to_row(p)) for p in chunk).encode()


def exportable(procedure: ProcedureRead) -> dict[str, Any]:
    """The procedure as the import takes it (version metadata left out)."""
    return procedure.model_dump(mode="json", exclude={"version", "in_force_from", "updated_at"})


async def json_stream(chunks: AsyncIterator[list[ProcedureRead]]) -> AsyncIterator[bytes]:
    yield b"["
    first = True
    async for chunk in chunks:
        for procedure in chunk:
            yield (b"" if first else b",") + json.dumps(exportable(procedure), ensure_ascii=False).encode()
            first = False
    yield b"]"


# --- CPSV-AP ---------------------------------------------------------------------------------

CPSV_CONTEXT: dict[str, Any] = {
    "cpsv": "http://purl.org/vocab/cpsv#",
    "cv": "http://data.europa.eu/m8g/",
    "dct": "http://purl.org/dc/terms/",
    "adms": "http://www.w3.org/ns/adms#",
    "skos": "http://www.w3.org/2004/02/skos/core#",
    "xsd": "http://www.w3.org/2001/XMLSchema#",
    "PublicService": "cpsv:PublicService",
    "Cost": "cv:Cost",
    "Evidence": "cv:Evidence",
    "PublicOrganisation": "cv:PublicOrganisation",
    "identifier": "dct:identifier",
    "name": {"@id": "dct:title", "@language": "vi"},
    "description": {"@id": "dct:description", "@language": "vi"},
    "sector": "cv:sector",
    "hasCost": {"@id": "cv:hasCost", "@container": "@set"},
    "value": {"@id": "cv:value", "@type": "xsd:decimal"},
    "currency": {"@id": "cv:currency", "@type": "@id"},
    "processingTime": {"@id": "cv:processingTime", "@type": "xsd:duration"},
    "hasInput": {"@id": "cv:hasInput", "@container": "@set"},
    "hasCompetentAuthority": "cv:hasCompetentAuthority",
    "prefLabel": {"@id": "skos:prefLabel", "@language": "vi"},
    "status": {"@id": "adms:status", "@type": "@id"},
}
VND = "http://publications.europa.eu/resource/authority/currency/VND"
_STATUS_URIS = {
    "active": "http://purl.org/adms/status/Completed",
    "suspended": "http://purl.org/adms/status/UnderDevelopment",
    "abolished": "http://purl.org/adms/status/Deprecated",
}


def iso_duration(value: float, unit: TimeUnit) -> str:
    """xsd:duration of a processing time; fractions of a day become hours (8 per working day)."""
    hours_per_day = 24 if unit is TimeUnit.days else 8
    if unit is TimeUnit.working_hours:
        return f"PT{_number(value)}H"
    if float(value).is_integer():
        return f"P{int(value)}D"
    return f"PT{_number(round(value * hours_per_day, 2))}H"


def to_cpsv(procedure: ProcedureRead, sector_name: str | None, base_url: str) -> dict[str, Any]:
    document: dict[str, Any] = {
        "@context": CPSV_CONTEXT,
        "@id": f"{base_url}api/v1/procedures/{procedure.code}",
        "@type": "PublicService",
        "identifier": procedure.code,
        "name": procedure.name,
        "sector": sector_name or procedure.sector_code,
        "hasCost": [
            {"@type": "Cost", "value": str(fee.amount_vnd), "currency": VND, "description": fee.name}
            for fee in procedure.fees
        ],
        "processingTime": iso_duration(procedure.processing_time.value, procedure.processing_time.unit),
        "hasInput": [
            {"@type": "Evidence", "name": document.name} for document in procedure.required_documents
        ],
        "status": _STATUS_URIS[procedure.status.value],
    }
    if procedure.description:
        document["description"] = procedure.description
    if procedure.implementing_agency:
        document["hasCompetentAuthority"] = {
            "@type": "PublicOrganisation",
            "prefLabel": procedure.implementing_agency,
        }
    return document
