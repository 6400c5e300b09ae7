"""Problem documents in Vietnamese: `Accept-Language` negotiation and the tables that translate.

The people who read this service's errors are Vietnamese officials, while the code (and the
machines that act on a problem's `type` and `errors[].type`) speak English. English is the source:
the domain raises English messages, often with data in them (codes, dates, limits). A problem asked
for in Vietnamese takes its `title` from a table by problem type, its field messages from pydantic's
error `type` (with pydantic's context, e.g. a length limit) when pydantic found the error, and
everything else through a catalogue of English message templates whose `{placeholders}` carry the
data across. A message no template matches stays in English: the catalogue covers the messages
answered most, not every one.
"""

import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any, Literal

Language = Literal["en", "vi"]
DEFAULT_LANGUAGE: Language = "en"
SUPPORTED: tuple[Language, ...] = ("en", "vi")


def negotiate(accept_language: str | None) -> Language:
    """The language of ``Accept-Language`` (RFC 9110 §12.5.4) this service speaks best: the highest
    q-value wins, then the range listed first; a range names its language by its primary subtag
    (``vi-VN`` asks for Vietnamese), and one naming the language outweighs ``*``. English when the
    header names neither (an error is answered in some language rather than with a 406)."""
    explicit: dict[Language, tuple[float, int]] = {}
    wildcard: tuple[float, int] | None = None
    for position, item in enumerate((accept_language or "").split(",")):
        tag, _, parameters = item.partition(";")
        primary = tag.strip().lower().partition("-")[0]
        quality = _quality(parameters)
        if not primary or quality is None:
            continue  # a malformed range says nothing
        rank = (quality, -position)
        if primary == "*":
            wildcard = max(wildcard or rank, rank)
        elif primary in SUPPORTED:
            language: Language = "vi" if primary == "vi" else "en"
            explicit[language] = max(explicit.get(language, rank), rank)
    ranks = {language: explicit.get(language, wildcard) for language in SUPPORTED}
    # Between equals (both only through `*`), the default.
    acceptable = [
        (*rank, language == DEFAULT_LANGUAGE, language)
        for language, rank in ranks.items()
        if rank is not None and rank[0] > 0
    ]
    return max(acceptable)[-1] if acceptable else DEFAULT_LANGUAGE


def _quality(parameters: str) -> float | None:
    name, _, value = parameters.partition("=")
    if not name.strip():
        return 1.0
    if name.strip().lower() != "q":
        return None
    try:
        quality = float(value)
    except ValueError:
        return None
    return quality if 0 <= quality <= 1 else None


# --- titles ---------------------------------------------------------------------------------------

TITLES_VI: dict[str, str] = {
    # By problem type (the `urn:tthc:problem:` slug); those a status names, for problems that have
    # no type of their own, are the status phrase's slug.
    "bad-request": "Yêu cầu không hợp lệ",
    "malformed-json": "JSON không đúng cú pháp",
    "unauthorized": "Chưa xác thực",
    "forbidden": "Không có quyền",
    "not-found": "Không tìm thấy",
    "method-not-allowed": "Phương thức không được hỗ trợ",
    "not-acceptable": "Không có định dạng phù hợp",
    "request-timeout": "Quá thời gian chờ yêu cầu",
    "conflict": "Xung đột dữ liệu",
    "out-of-sequence": "Sự kiện chưa đúng trình tự",
    "out-of-place": "Sự kiện không thể đặt vào lịch sử hồ sơ",
    "idempotency-key-in-use": "Idempotency-Key đang được xử lý",
    "idempotent-answer-withheld": "Kết quả không được gửi lại",
    "precondition-failed": "Điều kiện tiên quyết không thỏa mãn",
    "body-too-large": "Nội dung yêu cầu quá lớn",
    "request-entity-too-large": "Nội dung yêu cầu quá lớn",
    "content-too-large": "Nội dung yêu cầu quá lớn",
    "unsupported-media-type": "Định dạng nội dung không được hỗ trợ",
    "validation-error": "Dữ liệu không hợp lệ",
    "invalid-input": "Dữ liệu không đáp ứng quy tắc nghiệp vụ",
    "unprocessable-entity": "Dữ liệu không hợp lệ",
    "unprocessable-content": "Dữ liệu không hợp lệ",
    "precondition-required": "Thiếu điều kiện tiên quyết",
    "rate-limited": "Vượt giới hạn số yêu cầu",
    "too-many-requests": "Vượt giới hạn số yêu cầu",
    "internal-server-error": "Lỗi máy chủ",
    "service-unavailable": "Dịch vụ tạm thời không sẵn sàng",
    "database-unavailable": "Cơ sở dữ liệu tạm thời không sẵn sàng",
    "not-ready": "Dịch vụ chưa sẵn sàng",
    "calendar-change": "Đang chuyển sang lịch làm việc mới",
}


def title(slug: str, status_slug: str, english: str, language: Language) -> str:
    """The title of problem type ``slug``: English is the status phrase; Vietnamese comes from the
    table by type, else by the status (a type added without its title still reads Vietnamese)."""
    if language == "en":
        return english
    return TITLES_VI.get(slug) or TITLES_VI.get(status_slug) or english


# --- messages from pydantic, by error type --------------------------------------------------------

PYDANTIC_VI: dict[str, str] = {
    "missing": "Thiếu trường bắt buộc",
    "extra_forbidden": "Trường này không được phép",
    "string_type": "Giá trị phải là chuỗi ký tự",
    "string_unicode": "Giá trị phải là chuỗi ký tự Unicode hợp lệ",
    "string_too_short": "Chuỗi phải có ít nhất {min_length} ký tự",
    "string_too_long": "Chuỗi chỉ được có tối đa {max_length} ký tự",
    "string_pattern_mismatch": "Chuỗi phải khớp mẫu '{pattern}'",
    "int_type": "Giá trị phải là số nguyên",
    "int_parsing": "Giá trị phải là số nguyên hợp lệ",
    "int_from_float": "Giá trị phải là số nguyên, không có phần thập phân",
    "float_type": "Giá trị phải là số",
    "float_parsing": "Giá trị phải là số hợp lệ",
    "decimal_parsing": "Giá trị phải là số thập phân hợp lệ",
    "finite_number": "Giá trị phải là số hữu hạn",
    "multiple_of": "Giá trị phải là bội số của {multiple_of}",
    "bool_type": "Giá trị phải là true hoặc false",
    "bool_parsing": "Giá trị phải là true hoặc false",
    "greater_than": "Giá trị phải lớn hơn {gt}",
    "greater_than_equal": "Giá trị phải lớn hơn hoặc bằng {ge}",
    "less_than": "Giá trị phải nhỏ hơn {lt}",
    "less_than_equal": "Giá trị phải nhỏ hơn hoặc bằng {le}",
    "datetime_type": "Giá trị phải là thời điểm (ngày giờ) hợp lệ",
    "datetime_parsing": "Giá trị phải là thời điểm (ngày giờ) hợp lệ theo ISO 8601",
    "datetime_from_date_parsing": "Giá trị phải là thời điểm hoặc ngày hợp lệ theo ISO 8601",
    "timezone_aware": "Thời điểm phải có múi giờ (ví dụ +07:00)",
    "timezone_naive": "Thời điểm không được có múi giờ",
    "date_type": "Giá trị phải là ngày hợp lệ",
    "date_parsing": "Giá trị phải là ngày hợp lệ dạng YYYY-MM-DD",
    "date_from_datetime_parsing": "Giá trị phải là ngày hoặc thời điểm hợp lệ",
    "date_from_datetime_inexact": "Ngày không được có phần giờ",
    "time_parsing": "Giá trị phải là giờ hợp lệ",
    "enum": "Giá trị phải là một trong: {expected}",
    "literal_error": "Giá trị phải là một trong: {expected}",
    "list_type": "Giá trị phải là danh sách (mảng JSON)",
    "dict_type": "Giá trị phải là đối tượng JSON",
    "model_type": "Giá trị phải là đối tượng JSON",
    "model_attributes_type": "Giá trị phải là đối tượng JSON",
    "too_short": "Phải có ít nhất {min_length} phần tử",
    "too_long": "Chỉ được có tối đa {max_length} phần tử",
    "json_invalid": "JSON không hợp lệ",
    "json_type": "Giá trị JSON phải là chuỗi",
    "uuid_parsing": "Giá trị phải là UUID hợp lệ",
    "url_parsing": "Giá trị phải là URL hợp lệ",
    "none_required": "Giá trị phải là null",
    # The validators' own messages: their English `error` goes through the catalogue below.
    "value_error": "Giá trị không hợp lệ: {error}",
    "assertion_error": "Giá trị không hợp lệ: {error}",
}


_LAST_OR = re.compile(r" or (?=[^,]*$)")


def pydantic_message(kind: str, context: Mapping[str, Any], english: str, language: Language) -> str:
    """The message of a pydantic error of type ``kind`` (``context``: its ``ctx``)."""
    template = PYDANTIC_VI.get(kind) if language == "vi" else None
    if template is None:
        return text(english, language)
    values = {name: text(str(value), language) for name, value in context.items()}
    if "expected" in values:  # pydantic lists the values it expects as "'a', 'b' or 'c'"
        values["expected"] = _LAST_OR.sub(" hoặc ", values["expected"])
    try:
        return template.format_map(values)
    except (KeyError, IndexError, ValueError):  # a context this version of pydantic does not give
        return text(english, language)


# --- the catalogue of English message templates ---------------------------------------------------

# English template → Vietnamese. A `{placeholder}` stands for data (a code, a date, a number) and
# is carried over as it is, except `{text}`: English of its own, translated in turn.
CATALOGUE_VI: dict[str, str] = {
    # request validation, parsing and hygiene
    "The request has invalid fields": "Yêu cầu có trường dữ liệu không hợp lệ",
    "The request body is not valid JSON": "Nội dung yêu cầu không phải JSON hợp lệ",
    "The body contains control characters": "Nội dung yêu cầu chứa ký tự điều khiển",
    "A text contains a control character (e.g. NUL)": "Một chuỗi văn bản chứa ký tự điều khiển (ví dụ NUL)",
    "contains a control character (e.g. NUL)": "chứa ký tự điều khiển (ví dụ NUL)",
    "is not valid Unicode text (a lone surrogate)": "không phải văn bản Unicode hợp lệ (ký tự surrogate lẻ)",
    "The JSON nests deeper than {levels} levels": "JSON lồng nhau sâu quá {levels} cấp",
    "The path contains control characters": "Đường dẫn chứa ký tự điều khiển",
    "A query parameter contains control characters": "Một tham số truy vấn chứa ký tự điều khiển",
    "The body did not arrive within {seconds} s": "Nội dung yêu cầu không đến kịp trong {seconds} giây",
    "The cursor is not one this API issued": "Con trỏ phân trang (cursor) không do API này cấp",
    # generic answers of the HTTP layer
    "No resource exists at this address": "Không có tài nguyên nào tại địa chỉ này",
    "This method is not allowed on this resource; the Allow header lists those that are": (
        "Tài nguyên này không hỗ trợ phương thức đã dùng; tiêu đề Allow liệt kê các phương thức được phép"
    ),
    "The request could not be understood": "Không hiểu được yêu cầu",
    "Not found": "Không tìm thấy",
    # limits
    "The request body exceeds {limit} bytes": "Nội dung yêu cầu vượt quá {limit} byte",
    "Rate limit exceeded; retry in {seconds} s": (
        "Đã vượt giới hạn số yêu cầu; hãy thử lại sau {seconds} giây"
    ),
    # authentication and authorization
    "This operation needs an API key: send `Authorization: Bearer <key>`": (
        "Thao tác này cần khóa API: hãy gửi `Authorization: Bearer <key>`"
    ),
    "The API key is unknown or revoked": "Khóa API không tồn tại hoặc đã bị thu hồi",
    "This operation needs the scope {scopes}": "Thao tác này cần quyền (scope) {scopes}",
    "This operation needs one of the scopes {scopes}": (
        "Thao tác này cần một trong các quyền (scope) {scopes}"
    ),
    "This client is bound to unit {unit} and cannot act outside it": (
        "Ứng dụng khách này gắn với đơn vị {unit} và không được thao tác ngoài phạm vi đơn vị đó"
    ),
    "This client is bound to unit {unit} and cannot read outside it": (
        "Ứng dụng khách này gắn với đơn vị {unit} và không được đọc dữ liệu ngoài phạm vi đơn vị đó"
    ),
    "Moving a proposal to {state} needs the scope {scope}": (
        "Chuyển phương án sang trạng thái {state} cần quyền (scope) {scope}"
    ),
    # conditional requests
    "This update needs `If-Match` with the ETag of the version you read, to avoid lost updates": (
        "Thao tác cập nhật này cần tiêu đề `If-Match` với ETag của phiên bản đã đọc, để tránh ghi đè "
        "mất thay đổi"
    ),
    "The resource has changed since it was read; fetch it again and retry": (
        "Tài nguyên đã thay đổi kể từ khi được đọc; hãy tải lại rồi thử lại"
    ),
    # idempotency
    "1 to 255 visible ASCII characters": "Từ 1 đến 255 ký tự ASCII hiển thị được",
    "This Idempotency-Key was used for another request": (
        "Idempotency-Key này đã được dùng cho một yêu cầu khác"
    ),
    "A request with this Idempotency-Key is still being answered; retry it later": (
        "Một yêu cầu với Idempotency-Key này vẫn đang được xử lý; hãy thử lại sau"
    ),
    # the database and unexpected failures
    "The database is unavailable; retry shortly": (
        "Cơ sở dữ liệu tạm thời không truy cập được; hãy thử lại sau giây lát"
    ),
    "The database is not reachable": "Không kết nối được cơ sở dữ liệu",
    "A concurrent request changed the same data (a unique key is taken); read it again": (
        "Một yêu cầu đồng thời đã thay đổi cùng dữ liệu (khóa duy nhất đã được dùng); hãy đọc lại dữ liệu"
    ),
    "The database cancelled the request's transaction (a conflict with concurrent work, or with a "
    "standby's replay of the primary); retry it": (
        "Cơ sở dữ liệu đã hủy giao dịch của yêu cầu (xung đột với công việc đồng thời, hoặc với việc "
        "máy chủ dự phòng áp dụng lại thay đổi từ máy chủ chính); hãy gửi lại yêu cầu"
    ),
    "A date lies outside the range this service computes with": (
        "Có ngày tháng nằm ngoài khoảng thời gian dịch vụ này tính toán được"
    ),
    "An unexpected error occurred; quote the request id when reporting it": (
        "Đã xảy ra lỗi không mong muốn; khi báo lỗi, hãy nêu mã yêu cầu (request_id)"
    ),
    "The figures are being brought onto the working calendar in force; retry shortly": (
        "Số liệu đang được tính lại theo lịch làm việc hiện hành; hãy thử lại sau giây lát"
    ),
    # objects that do not exist, or exist already
    "Unit {code} does not exist": "Đơn vị {code} không tồn tại",
    "Parent unit {code} does not exist": "Đơn vị cấp trên {code} không tồn tại",
    "Unit {code} did not exist on {day}": "Đơn vị {code} không tồn tại vào ngày {day}",
    "Sector {code} does not exist": "Lĩnh vực {code} không tồn tại",
    "Procedure {code} does not exist": "Thủ tục {code} không tồn tại",
    "Procedure {code} was not in force on {day}": "Thủ tục {code} không có hiệu lực vào ngày {day}",
    "Procedure {code} was not yet in force on {day}": "Thủ tục {code} chưa có hiệu lực vào ngày {day}",
    "Procedure {code} was abolished on that date": "Thủ tục {code} đã bị bãi bỏ vào ngày đó",
    "Procedure {code} is already abolished": "Thủ tục {code} đã bị bãi bỏ",
    "Dossier {code} does not exist": "Hồ sơ {code} không tồn tại",
    "No dossier matches this code and PIN": "Không có hồ sơ nào khớp với mã hồ sơ và mã PIN này",
    "Proposal {id} does not exist": "Phương án {id} không tồn tại",
    "Feedback {id} does not exist": "Phản ánh, kiến nghị {id} không tồn tại",
    "Client {id} does not exist": "Ứng dụng khách {id} không tồn tại",
    "Client {id} has no key {key}": "Ứng dụng khách {id} không có khóa {key}",
    "Unit {code} already exists": "Đơn vị {code} đã tồn tại",
    "Sector {code} already exists": "Lĩnh vực {code} đã tồn tại",
    "Procedure {code} already exists": "Thủ tục {code} đã tồn tại",
    "A client named {name} already exists": "Đã có ứng dụng khách tên {name}",
    # units
    "The unit does not fit the hierarchy": "Đơn vị không phù hợp với hệ thống phân cấp hành chính",
    "The change does not fit the hierarchy": "Thay đổi không phù hợp với hệ thống phân cấp hành chính",
    "valid_from must not be after valid_to": "valid_from không được sau valid_to",
    "A {level} unit cannot belong to a {parent} unit": (
        "Đơn vị cấp {level} không thể trực thuộc đơn vị cấp {parent}"
    ),
    # the catalogue and proposals
    "The change makes the procedure invalid": "Thay đổi làm thủ tục không còn hợp lệ",
    "{count} rows are invalid; nothing was imported": "{count} dòng không hợp lệ; không dòng nào được nhập",
    "Code repeated from row {row}": "Mã bị lặp lại từ dòng {row}",
    "Send the catalogue as application/json, text/csv or multipart/form-data": (
        "Hãy gửi danh mục dưới dạng application/json, text/csv hoặc multipart/form-data"
    ),
    "The proposed change is not a valid procedure change": (
        "Thay đổi được đề xuất không phải thay đổi hợp lệ của thủ tục"
    ),
    "Proposal {id} is {state}; only a draft can be edited": (
        "Phương án {id} đang ở trạng thái {state}; chỉ sửa được bản nháp (draft)"
    ),
    "A proposal cannot go from {current} to {to}": "Phương án không thể chuyển từ {current} sang {to}",
    "Feedback cannot go from {current} to {to}": (
        "Phản ánh, kiến nghị không thể chuyển từ {current} sang {to}"
    ),
    "{name} cannot be null": "{name} không được là null",
    # dossiers and their events
    "The event is invalid": "Sự kiện không hợp lệ",
    "The record is invalid": "Bản ghi không hợp lệ",
    "occurred_at lies more than 5 minutes in the future": "occurred_at ở tương lai quá 5 phút",
    "{field} lies in the future": "{field} là thời điểm trong tương lai",
    "A {kind} event needs {field}": "Sự kiện {kind} cần có {field}",
    "{field} belongs to the received event only": "{field} chỉ dùng cho sự kiện received (tiếp nhận)",
    "An online dossier needs online_level (partial or full)": (
        "Hồ sơ trực tuyến cần có online_level (partial hoặc full)"
    ),
    "online_level goes only with channel online": "online_level chỉ đi kèm channel online",
    "due_at must be after the reception": "due_at phải sau thời điểm tiếp nhận",
    "An apology carries the new return date": "Văn bản xin lỗi phải có ngày hẹn trả mới",
    "This event_id was already used for a different event": "event_id này đã được dùng cho một sự kiện khác",
    "A correction cannot move an event to another dossier": (
        "Bản đính chính không thể chuyển sự kiện sang hồ sơ khác"
    ),
    "Dossier {code} was already received": "Hồ sơ {code} đã được tiếp nhận",
    "Dossier {code} was already refused": "Hồ sơ {code} đã bị từ chối tiếp nhận",
    "Dossier {code} has not been received yet; the event waits for its reception": (
        "Hồ sơ {code} chưa được tiếp nhận; sự kiện được giữ lại chờ đến khi tiếp nhận"
    ),
    "Dossier {code} was refused and takes no further events": (
        "Hồ sơ {code} đã bị từ chối tiếp nhận và không nhận thêm sự kiện"
    ),
    "Dossier {code} is not waiting for a supplement": "Hồ sơ {code} không ở trạng thái chờ bổ sung",
    "Dossier {code} is waiting for a supplement; no supplement_received yet": (
        "Hồ sơ {code} đang chờ bổ sung; chưa có sự kiện supplement_received"
    ),
    "Dossier {code} has not finished; it can be rated once it has": (
        "Hồ sơ {code} chưa giải quyết xong; chỉ đánh giá được khi đã xong"
    ),
    "Dossier {code} has been rated already": "Hồ sơ {code} đã được đánh giá",
    "The same events are being ingested concurrently; retry the request": (
        "Các sự kiện này đang được tiếp nhận đồng thời; hãy gửi lại yêu cầu"
    ),
    "At most {limit} items of one request may name the same {field}; send the others in another request": (
        "Một yêu cầu chỉ được có tối đa {limit} phần tử cùng một {field}; hãy gửi các phần tử còn lại "
        "trong yêu cầu khác"
    ),
    "Only pending=true is supported": "Chỉ hỗ trợ pending=true",
    # DongBoHoSoMC records: their detail is "<field>: <message>"
    "must be a timestamp yyyyMMddHHmmss (Vietnam time)": (
        "phải là thời điểm dạng yyyyMMddHHmmss (giờ Việt Nam)"
    ),
    "must be a valid timestamp yyyyMMddHHmmss (Vietnam time)": (
        "phải là thời điểm hợp lệ dạng yyyyMMddHHmmss (giờ Việt Nam)"
    ),
    "must lie between 1990 and {year}": "phải nằm trong khoảng từ năm 1990 đến năm {year}",
    "A dossier in status {status} needs {field}": "Hồ sơ ở trạng thái {status} cần có {field}",
    "A refused dossier (status 3) needs NgayTuChoi": "Hồ sơ bị từ chối (trạng thái 3) cần có NgayTuChoi",
    "The due date must be after NgayTiepNhan": "Ngày hẹn trả phải sau NgayTiepNhan",
    "The dossier cannot end before NgayTiepNhan": "Hồ sơ không thể kết thúc trước NgayTiepNhan",
    "The result cannot be returned before NgayKetThucXuLy": "Không thể trả kết quả trước NgayKetThucXuLy",
    "A supplement request needs NgayBoSung": "Yêu cầu bổ sung cần có NgayBoSung",
    "A supplement cannot be received before it was asked for": (
        "Không thể nhận hồ sơ bổ sung trước khi yêu cầu bổ sung"
    ),
    "Status 5 needs an open supplement request": "Trạng thái 5 cần một yêu cầu bổ sung đang mở",
    "{field}: {text}": "{field}: {text}",
    # feedback
    "Feedback on a procedure names it": "Phản ánh, kiến nghị về thủ tục phải nêu thủ tục đó",
    "Feedback on an officer names the officer": "Phản ánh, kiến nghị về cán bộ phải nêu cán bộ đó",
    "This reference was received with other content": "Mã tham chiếu này đã được nhận với nội dung khác",
    # statistics periods
    "A period looks like 2023, 2023-H1, 2023-Q3 or 2023-07": "Kỳ có dạng 2023, 2023-H1, 2023-Q3 hoặc 2023-07",
    "The year {year} is out of range": "Năm {year} nằm ngoài khoảng cho phép",
    "`from` must not be after `to`": "`from` không được sau `to`",
    "A period spans at most 10 years": "Một kỳ dài tối đa 10 năm",
    "Give `period`, or both `from` and `to`": "Hãy cho `period`, hoặc cả `from` và `to`",
    "Give either `period` or `from`/`to`, not both": "Chỉ cho `period` hoặc `from`/`to`, không cho cả hai",
}

_PLACEHOLDER = re.compile(r"\{(\w+)\}")
_TRANSLATED_PLACEHOLDER = "text"


def placeholders(template: str) -> set[str]:
    return set(_PLACEHOLDER.findall(template))


def _pattern(template: str) -> tuple[str, re.Pattern[str]]:
    """The literal start of ``template`` (to skip it cheaply) and the pattern it matches."""
    parts = _PLACEHOLDER.split(template)
    # split() alternates literal text and placeholder names, literal first.
    regex = "".join(
        re.escape(part) if index % 2 == 0 else f"(?P<{part}>.+?)" for index, part in enumerate(parts)
    )
    return parts[0], re.compile(regex, re.DOTALL)


_COMPILED = [(*_pattern(english), vietnamese) for english, vietnamese in CATALOGUE_VI.items()]


def text(message: str, language: Language) -> str:
    """``message`` in ``language``: from the catalogue, else as it is (English)."""
    return message if language == "en" else _vietnamese(message)


@lru_cache(maxsize=4096)
def _vietnamese(message: str) -> str:
    # Cached: the items of a batch repeat the same few messages.
    for start, pattern, vietnamese in _COMPILED:
        if not message.startswith(start):
            continue
        found = pattern.fullmatch(message)
        if found is None:
            continue
        values = found.groupdict()
        if _TRANSLATED_PLACEHOLDER in values:
            values[_TRANSLATED_PLACEHOLDER] = _vietnamese(values[_TRANSLATED_PLACEHOLDER])
        return vietnamese.format_map(values)
    return message
