"""The national public-service portal's dossier sync record (DVCQG `DongBoHoSoMC`), SPEC §4.

One-stop systems send the portal a dossier's whole state, not its events. A record is mapped onto
the same history as events (each part an event with an id derived from the dossier code), so a
record sent again with a later state replaces the parts that changed, and a dossier's numbers are
the same whichever way it came. Pure: nothing here touches the database.

Portal data is loose (SPEC §4): an empty string or `null` in an optional field means absent;
`TrangThaiHoSo` 10 with `NgayTra` and no `NgayKetThucXuLy` finishes the dossier at `NgayTra`; a
`HoSoBoSungId` repeated within one record is that record's 422 (its parts would share an event id).

Choices where the portal's documents are silent (see README):
- TrangThaiHoSo 1 (registered online, not received) carries no event; 6 (waiting for a financial
  obligation) is kept as 4 (processing): the statistics know no such state.
- Statuses 4–10 add a `processing` event at the reception instant, so that the dossier reads 4.
- `NgayHenTra` is the source's due date: with supplements, the due date before the first one
  (`NgayHenTraTruoc`) is the reception's, and the pauses move it as SPEC §3 says.
"""

import hashlib
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints

from app.core.bounds import LATEST
from app.core.documented import DocumentedAs
from app.core.errors import FieldError, InvalidInput, Problem
from app.core.hygiene import is_unicode_text, text_without_controls
from app.core.timezone import VIETNAM
from app.dossiers.schemas import DossierCode, ResultStatus

MAX_RECORDS = 1000


def _absent(value: Any) -> Any:
    """Portal data is loose: an empty string means the same as `null`, absent."""
    return None if isinstance(value, str) and value == "" else value


def _digits(value: str) -> bool:
    return value.isascii() and value.isdigit()


def _portal_time(value: Any) -> Any:
    """`yyyyMMddHHmmss` in Vietnam time → an aware UTC instant; empty means absent."""
    if value is None or value == "":
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or len(value) != 14 or not _digits(value):
        raise ValueError("must be a timestamp yyyyMMddHHmmss (Vietnam time)")
    try:
        # Fixed width, as the format says (strptime reads the same, at five times the cost).
        year, month, day = int(value[:4]), int(value[4:6]), int(value[6:8])
        parsed = datetime(year, month, day, int(value[8:10]), int(value[10:12]), int(value[12:]))
    except ValueError as exc:
        raise ValueError("must be a valid timestamp yyyyMMddHHmmss (Vietnam time)") from exc
    if not 1990 <= parsed.year <= LATEST.year:
        raise ValueError(f"must lie between 1990 and {LATEST.year}")
    return parsed.replace(tzinfo=VIETNAM).astimezone(UTC)


def _number(value: Any) -> Any:
    """A number sent as text (`"2"`) is the number; empty means absent."""
    if isinstance(value, str) and _digits(value.strip()):
        return int(value)
    return _absent(value)


def _storable(value: str) -> str:
    """Text that can be stored and echoed back: no control character, no lone UTF-16 surrogate."""
    if not is_unicode_text(value):
        raise ValueError("is not valid Unicode text (a lone surrogate)")
    return text_without_controls(value)


def _list(value: Any) -> Any:
    return [] if value is None or value == "" else value


# What the portal may send, for the contract (validation reads more: a time as a number, digits
# with spaces). Portal data is loose (SPEC §4): an empty string in an optional field means absent.
_PORTAL_TIME_TEXT = Annotated[
    str,
    StringConstraints(pattern=r"^([0-9]{14})?$"),
    Field(description="`yyyyMMddHHmmss` in Vietnam time; empty means absent"),
]


def _number_or_text(number: Any, text_pattern: str) -> Any:
    """A number field as the portal sends it: the number, or the same as text (`"2"`)."""
    return number | Annotated[str, StringConstraints(pattern=text_pattern)]


PortalTime = Annotated[
    datetime | None, BeforeValidator(_portal_time, json_schema_input_type=_PORTAL_TIME_TEXT | None)
]
Code = Annotated[
    str, Field(min_length=1, max_length=64, pattern=r"^[^\x00-\x1f]+$"), AfterValidator(_storable)
]
OptionalCode = Annotated[
    Code | None,
    BeforeValidator(
        _absent,
        json_schema_input_type=Annotated[str, Field(max_length=64, pattern=r"^[^\x00-\x1f]*$")] | None,
    ),
]


class SupplementRequest(BaseModel):
    """One entry of `DanhSachHoSoBoSung`."""

    model_config = ConfigDict(extra="ignore")

    HoSoBoSungId: Annotated[
        str,
        BeforeValidator(
            lambda v: str(v) if isinstance(v, int) and not isinstance(v, bool) else v,
            json_schema_input_type=Annotated[str, Field(min_length=1, max_length=100)] | int,
        ),
        AfterValidator(_storable),
    ] = Field(min_length=1, max_length=100)
    NgayBoSung: PortalTime = Field(description="When the papers were asked for")
    NgayTiepNhanBoSung: PortalTime = Field(default=None, description="When they came back")
    NgayHenTraTruoc: PortalTime = Field(default=None, description="The due date before the request")
    NgayHenTraMoi: PortalTime = Field(default=None, description="The due date after it")


class PortalRecord(BaseModel):
    """A dossier's whole state as one-stop systems sync it to the national portal (DVCQG `DongBoHoSoMC`)."""

    model_config = ConfigDict(extra="ignore")

    MaHoSo: DossierCode
    MaTTHC: OptionalCode = Field(default=None, description="The procedure's code")
    DonViXuLy: OptionalCode = Field(default=None, description="The handling unit's code")
    NgayNopHoSo: PortalTime = Field(default=None, description="Submitted")
    NgayTiepNhan: PortalTime = Field(default=None, description="Received")
    NgayHenTra: PortalTime = Field(default=None, description="Due")
    NgayKetThucXuLy: PortalTime = Field(default=None, description="Finished")
    NgayTra: PortalTime = Field(default=None, description="Returned")
    NgayTuChoi: PortalTime = Field(default=None, description="Refused")
    TrangThaiHoSo: Annotated[
        int,
        Field(ge=1, le=10),
        BeforeValidator(
            _number,
            json_schema_input_type=_number_or_text(Annotated[int, Field(ge=1, le=10)], "^(10|[1-9])$"),
        ),
    ] = Field(description="The national status 1–10 (SPEC §4)")
    KenhThucHien: Annotated[
        Literal[1, 2, 3] | None,
        BeforeValidator(_number, json_schema_input_type=_number_or_text(Literal[1, 2, 3], "^[1-3]?$") | None),
    ] = Field(default=None, description="1 direct, 2 online, 3 postal")
    MucDo: Annotated[
        Annotated[int, Field(ge=1, le=4)] | None,
        BeforeValidator(
            _number,
            json_schema_input_type=_number_or_text(Annotated[int, Field(ge=1, le=4)], "^[1-4]?$") | None,
        ),
    ] = Field(default=None, description="The online service level; 3 partial, 4 full")
    DanhSachHoSoBoSung: Annotated[
        list[SupplementRequest],
        BeforeValidator(_list, json_schema_input_type=list[SupplementRequest] | None),
        Field(max_length=100),
    ] = Field(default_factory=list, description="The supplement requests, in order")


class SyncBody(BaseModel):
    service: Literal["DongBoHoSoMC"]
    isUpdating: Annotated[bool | None, BeforeValidator(_absent)] = Field(
        default=None,
        description="Accepted as sent; a record replaces what its dossier's code described before",
    )
    # Each record is validated by the route, which answers it alone (SPEC §4).
    data: list[Annotated[Any, DocumentedAs(PortalRecord)]] = Field(min_length=1, max_length=MAX_RECORDS)


# The members a record is answered with (a Literal, as app.dossiers.schemas.EventStatus).
RecordStatus = Literal[ResultStatus.created, ResultStatus.updated, ResultStatus.unchanged, ResultStatus.error]


class RecordResult(BaseModel):
    MaHoSo: str | None
    status: RecordStatus = Field(
        description="`created`: a new dossier; `updated`: the record changed its dossier's history; "
        "`unchanged`: the same state as last sent; `error`: nothing of the record applied, see `problem`"
    )
    problem: Problem | None = None


class SyncResult(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "results": [
                        {"MaHoSo": "000.00.31.H56-230801-0001", "status": "created"},
                        {"MaHoSo": "000.00.31.H56-230801-0002", "status": "unchanged"},
                    ]
                }
            ]
        }
    )

    results: list[RecordResult] = Field(description="One per record, in the order sent")


_CHANNELS = {1: "direct", 2: "online", 3: "postal"}
_LEVELS = {3: "partial", 4: "full"}
_ENDINGS = {7: "withdrawn", 8: "stopped", 9: "resolved", 10: "resolved"}
# Fields of an event and the record field they come from, to name the right one in a problem.
RECORD_FIELDS = {
    "procedure_code": "MaTTHC",
    "unit_code": "DonViXuLy",
    "channel": "KenhThucHien",
    "online_level": "MucDo",
    "due_at": "NgayHenTra",
}


def _invalid(field: str, message: str, kind: str = "invalid") -> InvalidInput:
    return InvalidInput(f"{field}: {message}", errors=[FieldError(field=field, message=message, type=kind)])


def event_prefix(code: str) -> str:
    return f"dvcqg:{code}#"


def _part_id(code: str, part: str) -> str:
    return event_prefix(code) + part


def _supplement_key(request: SupplementRequest) -> str:
    # Event ids are at most 100 characters: a long source id is shortened to its hash.
    key = request.HoSoBoSungId
    return key if len(key) <= 16 else hashlib.sha256(key.encode()).hexdigest()[:16]


def record_events(record: PortalRecord, online_level_of: Any) -> list[dict[str, Any]]:
    """The events that make up the record's state, in order; raises InvalidInput naming the field.

    ``online_level_of(procedure_code, received_at)`` gives the online level of the procedure in
    force, for an online dossier whose record carries no `MucDo`.
    """
    code = record.MaHoSo
    status = record.TrangThaiHoSo
    _check_supplement_ids(record)
    if status == 1:
        return []
    for name in ("MaTTHC", "DonViXuLy", "KenhThucHien"):
        if getattr(record, name) is None:
            raise _invalid(name, f"A dossier in status {status} needs {name}", "missing")
    assert record.KenhThucHien is not None
    channel = _CHANNELS[record.KenhThucHien]
    first: dict[str, Any] = {
        "dossier_code": code,
        "procedure_code": record.MaTTHC,
        "unit_code": record.DonViXuLy,
        "channel": channel,
    }
    if status == 3:
        if record.NgayTuChoi is None:
            raise _invalid("NgayTuChoi", "A refused dossier (status 3) needs NgayTuChoi", "missing")
        if channel == "online":
            first["online_level"] = _LEVELS.get(record.MucDo or 0) or online_level_of(
                record, record.NgayTuChoi
            )
        return [
            {
                **first,
                "event_id": _part_id(code, "refused"),
                "type": "refused",
                "occurred_at": record.NgayTuChoi,
            }
        ]
    received_at = record.NgayTiepNhan
    if received_at is None:
        raise _invalid("NgayTiepNhan", f"A dossier in status {status} needs NgayTiepNhan", "missing")
    if channel == "online":
        first["online_level"] = _LEVELS.get(record.MucDo or 0) or online_level_of(record, received_at)
    due = _reception_due(record)
    if due is not None:
        if due <= received_at:
            raise _invalid("NgayHenTra", "The due date must be after NgayTiepNhan", "before_reception")
        first["due_at"] = due
    events = [
        {**first, "event_id": _part_id(code, "received"), "type": "received", "occurred_at": received_at}
    ]
    if status != 2:
        events.append(_event(code, "processing", "processing", received_at))

    finished_at = None
    if status in _ENDINGS:
        finished_at, source = end_of(record)
        if finished_at is None:
            needed = "NgayKetThucXuLy or NgayTra" if status == 10 else "NgayKetThucXuLy"
            raise _invalid("NgayKetThucXuLy", f"A dossier in status {status} needs {needed}", "missing")
        if finished_at < received_at:
            raise _invalid(source, "The dossier cannot end before NgayTiepNhan", "before_reception")
    events += _supplement_events(record, received_at, finished_at)
    if finished_at is not None:
        events.append(_event(code, "finished", _ENDINGS[status], finished_at))
        if status == 10:
            returned_at = record.NgayTra or finished_at
            if returned_at < finished_at:
                raise _invalid(
                    "NgayTra", "The result cannot be returned before NgayKetThucXuLy", "before_finish"
                )
            events.append(_event(code, "returned", "returned", returned_at))
    return events


def history_parts(raw: Any) -> int:
    """The most events ``record_events`` makes of a record as sent, found without reading it: its
    reception, processing, end and return, and two per supplement request (asked, answered)."""
    supplements = raw.get("DanhSachHoSoBoSung") if isinstance(raw, dict) else None
    return 4 + 2 * (len(supplements) if isinstance(supplements, list) else 0)


def end_of(record: PortalRecord) -> tuple[datetime | None, str]:
    """When the dossier ended, and the record's field that says so: `NgayKetThucXuLy`, or for a
    returned dossier (status 10) that does not name it, `NgayTra` (it ended when it was returned)."""
    if record.NgayKetThucXuLy is None and record.TrangThaiHoSo == 10 and record.NgayTra is not None:
        return record.NgayTra, "NgayTra"
    return record.NgayKetThucXuLy, "NgayKetThucXuLy"


def _check_supplement_ids(record: PortalRecord) -> None:
    """Each supplement request's parts take their event ids from its `HoSoBoSungId`: one repeated
    within the record would make two parts of one id (SPEC §4: the record's 422)."""
    first_of: dict[str, int] = {}
    for number, request in enumerate(record.DanhSachHoSoBoSung):
        key = _supplement_key(request)
        if key in first_of:
            raise _invalid(
                f"DanhSachHoSoBoSung.{number}.HoSoBoSungId",
                f"HoSoBoSungId {request.HoSoBoSungId!r} is repeated within the record "
                f"(already at DanhSachHoSoBoSung.{first_of[key]})",
                "duplicate",
            )
        first_of[key] = number


def _event(code: str, part: str, kind: str, at: datetime) -> dict[str, Any]:
    return {"event_id": _part_id(code, part), "dossier_code": code, "type": kind, "occurred_at": at}


def _reception_due(record: PortalRecord) -> datetime | None:
    """The due date at reception: before the first supplement moved it, when the record says so."""
    requests = record.DanhSachHoSoBoSung
    if not requests:
        return record.NgayHenTra
    if requests[0].NgayHenTraTruoc is not None:
        return requests[0].NgayHenTraTruoc
    moved = [r.NgayHenTraMoi for r in requests if r.NgayHenTraMoi is not None]
    if moved and record.NgayHenTra == moved[-1]:
        return None  # NgayHenTra is the moved date: the reception's comes from the procedure
    return record.NgayHenTra


def _supplement_events(
    record: PortalRecord, received_at: datetime, finished_at: datetime | None
) -> list[dict[str, Any]]:
    code = record.MaHoSo
    status = record.TrangThaiHoSo
    events: list[dict[str, Any]] = []
    previous_end = received_at
    requests = record.DanhSachHoSoBoSung
    for number, request in enumerate(requests):
        field = f"DanhSachHoSoBoSung.{number}"
        asked, back = request.NgayBoSung, request.NgayTiepNhanBoSung
        if asked is None:
            raise _invalid(f"{field}.NgayBoSung", "A supplement request needs NgayBoSung", "missing")
        if asked < previous_end:
            raise _invalid(
                f"{field}.NgayBoSung",
                "A supplement is asked for after the reception and after the previous request "
                "(after its papers came back, when they did)",
                "out_of_order",
            )
        if finished_at is not None and asked > finished_at:
            raise _invalid(
                f"{field}.NgayBoSung", "A supplement is asked for before the dossier ended", "after_end"
            )
        key = _supplement_key(request)
        events.append(_event(code, f"bs:{key}", "supplement_requested", asked))
        if back is None:
            # Not the last: a further request followed while the dossier waited (SPEC §3: it
            # counts, and the pause runs on until papers come back).
            previous_end = asked
            if number == len(requests) - 1 and status in (2, 4, 6):
                raise _invalid(
                    "TrangThaiHoSo",
                    f"Status {status} contradicts a supplement request still open",
                    "contradiction",
                )
            continue
        if back < asked:
            raise _invalid(
                f"{field}.NgayTiepNhanBoSung",
                "A supplement cannot be received before it was asked for",
                "before_request",
            )
        if finished_at is not None and back > finished_at:
            raise _invalid(
                f"{field}.NgayTiepNhanBoSung", "The supplement came back after the dossier ended", "after_end"
            )
        events.append(_event(code, f"bsn:{key}", "supplement_received", back))
        previous_end = back
    if status == 5 and (not requests or requests[-1].NgayTiepNhanBoSung is not None):
        raise _invalid("TrangThaiHoSo", "Status 5 needs an open supplement request", "contradiction")
    return events
