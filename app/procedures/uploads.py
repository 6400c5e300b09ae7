"""The catalogue as uploaded for an import: a JSON array or a CSV file, sent as the body or as the
``file`` of a form, read into the rows that ``importing`` validates."""

import asyncio
import json
from typing import Any

from fastapi import Request
from starlette.datastructures import UploadFile

from app.core.errors import InvalidInput, UnsupportedMediaType
from app.core.hygiene import body_problem
from app.procedures import exchange, importing


async def uploaded_rows(request: Request) -> list[dict[str, Any] | Any]:
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type == "multipart/form-data":
        form = await request.form(max_files=1, max_fields=5)
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise InvalidInput.for_field(
                "body.file", "Attach the catalogue as the form field `file`", "missing"
            )
        raw = await upload.read()
        is_json = (upload.filename or "").lower().endswith(".json") or "json" in (upload.content_type or "")
    elif media_type in ("application/json", "text/csv", "application/csv"):
        raw = await request.body()
        is_json = media_type == "application/json"
    else:
        raise UnsupportedMediaType("Send the catalogue as application/json, text/csv or multipart/form-data")
    # Up to the body limit of text, read in a worker thread: the event loop keeps serving others.
    return await asyncio.to_thread(_rows_of, raw, is_json)


def _rows_of(raw: bytes, is_json: bool) -> list[dict[str, Any] | Any]:
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidInput.for_field("body", "The upload is not UTF-8 text", "encoding") from exc
    # A file part of a multipart upload passes the edge's check uninspected.
    problem = body_problem(raw, b"application/json" if is_json else b"text/csv")
    if problem is not None:
        raise InvalidInput(problem.message, errors=[problem])
    if not is_json:
        return exchange.read_csv(text, max_rows=importing.MAX_IMPORT_ROWS)
    try:
        rows = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInput.for_field("body", "The upload is not valid JSON", "json_invalid") from exc
    if not isinstance(rows, list):
        raise InvalidInput.for_field("body", "The JSON upload must be an array of procedures", "type")
    return rows
