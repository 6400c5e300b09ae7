"""RFC 9457 problem details: one shape for every error the API returns."""

import logging
import re
import uuid
from collections.abc import Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, PrivateAttr
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import HTTPConnection
from starlette.types import Message, Receive, Scope, Send

from app.core import i18n
from app.core.asgi import HTTPMiddleware

PROBLEM_MEDIA_TYPE = "application/problem+json"
REQUEST_ID_HEADER = "X-Request-ID"

logger = logging.getLogger("tthc.errors")
request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)

_ACCEPTABLE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


class FieldError(BaseModel):
    field: str = Field(
        description="The offending input. In a request: its location and dotted path, as FastAPI names "
        "it (`body.parent_code`, `query.cursor`, `path.code`, `header.Idempotency-Key`; the location "
        "alone for the whole of it). In an item of a batch or a row of an import: the name within the "
        "item (`unit_code`, `DanhSachHoSoBoSung.0.NgayBoSung`), which `results` or `row` place"
    )
    message: str = Field(description="In the problem's language (see `Accept-Language`)")
    type: str = Field(description="Machine-readable error kind, e.g. `missing`, `unknown_reference`")
    row: int | None = Field(default=None, description="For uploads of many rows: the 1-based row")
    # pydantic's ``ctx`` when pydantic found the error ({} when it gave none): the message is then
    # rebuilt from ``type`` in another language, rather than matched as English text.
    _pydantic_context: dict[str, Any] | None = PrivateAttr(default=None)

    @classmethod
    def from_pydantic(
        cls, errors: Sequence[Mapping[str, Any]], prefix: str = "", *, row: int | None = None, whole: str = ""
    ) -> list["FieldError"]:
        """Pydantic's errors as ours: ``loc`` joined with dots under ``prefix`` (``body.change``);
        an error about the whole input (empty ``loc``) is named ``whole``, or the prefix itself."""
        found = []
        for err in errors:
            error = cls(
                field=".".join([*([prefix] if prefix else []), *(str(part) for part in err.get("loc", ()))])
                or whole,
                message=str(err.get("msg", "")),
                type=str(err["type"]),
                row=row,
            )
            error._pydantic_context = dict(err.get("ctx") or {})
            found.append(error)
        return found

    def in_language(self, language: i18n.Language) -> "FieldError":
        """This error with its message in ``language``."""
        if language == i18n.DEFAULT_LANGUAGE:
            return self
        if self._pydantic_context is not None:
            message = i18n.pydantic_message(self.type, self._pydantic_context, self.message, language)
        else:
            message = i18n.text(self.message, language)
        return self.model_copy(update={"message": message})


class Problem(BaseModel):
    """An RFC 9457 problem document (`application/problem+json`). `title` and `detail` (and the
    `message` of `errors`) are in English, or in Vietnamese for `Accept-Language: vi`."""

    type: str = Field(examples=["urn:tthc:problem:not-found"])
    title: str = Field(examples=["Not Found"])
    status: int = Field(examples=[404])
    detail: str = Field(examples=["Unit '31' does not exist"])
    instance: str | None = Field(
        default=None,
        examples=["/api/v1/units/31"],
        description="The path of the request answered (for an item of a batch: of the batch's request). "
        "Absent only from the rejects file of `tthc dossiers import`, which answers no request",
    )
    request_id: str | None = Field(
        default=None,
        description="The request's `X-Request-ID`, as in the server log; absent only where `instance` "
        "is absent",
    )
    errors: list[FieldError] | None = None

    def located(self, location: str) -> "Problem":
        """This problem of an item as the problem of a request the item was the body of: its fields
        named under ``location`` (``body``), as FastAPI names the request's own."""
        if not self.errors:
            return self
        errors = [error.model_copy(update={"field": f"{location}.{error.field}"}) for error in self.errors]
        return self.model_copy(update={"errors": errors})


class ProblemResponse(JSONResponse):
    media_type = PROBLEM_MEDIA_TYPE


def problem_type(slug: str) -> str:
    return f"urn:tthc:problem:{slug}"


def slug_for_status(status: int) -> str:
    return HTTPStatus(status).phrase.lower().replace(" ", "-").replace("'", "")


@dataclass(frozen=True)
class ProblemContext:
    """What a problem takes from the request it answers: the path (`instance`) and the language."""

    instance: str | None
    language: i18n.Language

    @classmethod
    def of(cls, scope: Scope) -> "ProblemContext":
        asked = b",".join(value for name, value in scope.get("headers", ()) if name == b"accept-language")
        return cls(instance=scope.get("path"), language=i18n.negotiate(asked.decode("latin-1")))


NO_REQUEST = ProblemContext(instance=None, language=i18n.DEFAULT_LANGUAGE)
# Set by RequestIdMiddleware for each request, so that problems built anywhere during it (in a
# middleware, a handler, the items of a batch) answer it without being handed the request.
problem_context_var: ContextVar[ProblemContext] = ContextVar("problem_context", default=NO_REQUEST)

# Details for the problems that come without one (Starlette's 404 and 405, a bare HTTPException).
_GENERIC_DETAILS = {
    400: "The request could not be understood",
    404: "No resource exists at this address",
    405: "This method is not allowed on this resource; the Allow header lists those that are",
}


def problem(
    status: int,
    *,
    detail: str | None = None,
    slug: str | None = None,
    errors: Sequence[FieldError] | None = None,
    context: ProblemContext | None = None,
) -> Problem:
    """The problem document: every problem of the service, whole or of a batch's item, is built
    here, in the language of the request it answers (``context``; by default the current one)."""
    context = context or problem_context_var.get()
    language = context.language
    phrase = HTTPStatus(status).phrase
    slug = slug or slug_for_status(status)
    return Problem(
        type=problem_type(slug),
        title=i18n.title(slug, slug_for_status(status), phrase, language),
        status=status,
        detail=i18n.text(detail or _GENERIC_DETAILS.get(status, phrase), language),
        instance=context.instance,
        request_id=request_id_var.get(),
        errors=[error.in_language(language) for error in errors] if errors else None,
    )


def problem_answer(
    document: Problem, *, headers: Mapping[str, str] | None = None, context: ProblemContext | None = None
) -> ProblemResponse:
    """The response carrying ``document``, which was built for ``context`` (by default the current
    request's): its language in `Content-Language`, and `Vary` saying the language was chosen."""
    response = ProblemResponse(
        document.model_dump(exclude_none=True), status_code=document.status, headers=headers
    )
    response.headers["Content-Language"] = (context or problem_context_var.get()).language
    response.headers.add_vary_header("Accept-Language")
    return response


def problem_response(
    request: HTTPConnection | None,
    status: int,
    *,
    detail: str | None = None,
    slug: str | None = None,
    errors: Sequence[FieldError] | None = None,
    headers: Mapping[str, str] | None = None,
) -> ProblemResponse:
    """A problem answer to ``request``, or (None) to the request in progress, as middlewares answer."""
    context = ProblemContext.of(request.scope) if request is not None else None
    document = problem(status, detail=detail, slug=slug, errors=errors, context=context)
    return problem_answer(document, headers=headers, context=context)


class DomainError(Exception):
    """An error the API reports on purpose; subclasses fix the status and problem type."""

    status: int = 400
    slug: str = "bad-request"

    def __init__(
        self,
        detail: str,
        *,
        errors: Sequence[FieldError] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors
        self.headers = headers


class NotFound(DomainError):
    status = 404
    slug = "not-found"


class Conflict(DomainError):
    status = 409
    slug = "conflict"


class InvalidInput(DomainError):
    """Input that is well-formed but breaks a domain rule (unknown reference, bad hierarchy …)."""

    status = 422
    slug = "invalid-input"

    @classmethod
    def for_field(cls, field: str, message: str, kind: str) -> "InvalidInput":
        return cls(message, errors=[FieldError(field=field, message=message, type=kind)])


class PreconditionFailed(DomainError):
    status = 412
    slug = "precondition-failed"


class UnsupportedMediaType(DomainError):
    status = 415
    slug = "unsupported-media-type"


class NotAcceptable(DomainError):
    status = 406
    slug = "not-acceptable"


class PreconditionRequired(DomainError):
    status = 428
    slug = "precondition-required"


class Unauthorized(DomainError):
    status = 401
    slug = "unauthorized"

    def __init__(self, detail: str, *, error: str | None = None) -> None:
        challenge = 'Bearer realm="tthc"' + (f', error="{error}"' if error else "")
        super().__init__(detail, headers={"WWW-Authenticate": challenge})


class Forbidden(DomainError):
    status = 403
    slug = "forbidden"


class TooManyRequests(DomainError):
    status = 429
    slug = "rate-limited"

    def __init__(self, retry_after: int) -> None:
        super().__init__(
            f"Rate limit exceeded; retry in {retry_after} s", headers={"Retry-After": str(retry_after)}
        )


def problem_of(exc: DomainError) -> Problem:
    """The problem document of a domain error, for answers that carry several (batch items)."""
    return problem(exc.status, detail=exc.detail, slug=exc.slug, errors=exc.errors)


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` entry for a route's problem answers (their schema: app.core.openapi)."""
    return {status: {"description": HTTPStatus(status).phrase} for status in statuses}


async def _handle_domain_error(request: Request, exc: Exception) -> ProblemResponse:
    assert isinstance(exc, DomainError)
    return problem_response(
        request, exc.status, detail=exc.detail, slug=exc.slug, errors=exc.errors, headers=exc.headers
    )


async def _handle_http_exception(request: Request, exc: Exception) -> ProblemResponse:
    assert isinstance(exc, StarletteHTTPException)
    detail: str | None = exc.detail if isinstance(exc.detail, str) else None
    if detail == HTTPStatus(exc.status_code).phrase:
        detail = None
    headers = dict(exc.headers) if exc.headers else None
    return problem_response(request, exc.status_code, detail=detail, headers=headers)


async def _handle_validation_error(request: Request, exc: Exception) -> ProblemResponse:
    assert isinstance(exc, RequestValidationError)
    raw_errors = exc.errors()
    errors = FieldError.from_pydantic(raw_errors)
    if any(err["type"] == "json_invalid" for err in raw_errors):
        return problem_response(
            request, 400, detail="The request body is not valid JSON", slug="malformed-json", errors=errors
        )
    return problem_response(
        request, 422, detail="The request has invalid fields", slug="validation-error", errors=errors
    )


def install_exception_handlers(app: FastAPI) -> None:
    app.add_exception_handler(DomainError, _handle_domain_error)
    app.add_exception_handler(StarletteHTTPException, _handle_http_exception)
    app.add_exception_handler(RequestValidationError, _handle_validation_error)


def database_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` means the database cannot be reached (a 503), rather than a bug (a 500)."""
    if isinstance(exc, DBAPIError):
        return exc.connection_invalidated or isinstance(exc, OperationalError | InterfaceError)
    # Refused or reset connections, connect and pool timeouts.
    return isinstance(exc, OSError | TimeoutError | PoolTimeout)


def _known_failure(exc: Exception) -> ProblemResponse | None:
    """The problem for failures that are the request's or a race's, not a bug: a unique key taken
    by a concurrent request (409), a date beyond what calendar arithmetic can reach (422), a
    transaction the server rolled back (503, to retry)."""
    if isinstance(exc, IntegrityError):
        logger.info("integrity conflict: %s", exc.orig)
        return problem_response(
            None,
            409,
            detail="A concurrent request changed the same data (a unique key is taken); read it again",
            slug="conflict",
        )
    if isinstance(exc, OverflowError):
        return problem_response(
            None, 422, detail="A date lies outside the range this service computes with", slug="invalid-input"
        )
    if transaction_rolled_back(exc):
        # Nothing of the transaction was kept, so the request can simply be sent again.
        logger.warning("transaction rolled back by the server: %s", getattr(exc, "orig", exc))
        return problem_response(
            None,
            503,
            detail="The database cancelled the request's transaction (a conflict with concurrent work, or "
            "with a standby's replay of the primary); retry it",
            slug="database-unavailable",
            headers={"Retry-After": "1"},
        )
    return None


def transaction_rolled_back(exc: BaseException) -> bool:
    """SQLSTATE class 40: a serialization failure or deadlock, and the query a hot standby cancels
    when replaying the primary's changes conflicts with it (``conflict with recovery``)."""
    sqlstate = getattr(getattr(exc, "orig", None), "sqlstate", None) or getattr(exc, "sqlstate", None)
    return isinstance(sqlstate, str) and sqlstate.startswith("40")


class UnhandledErrorMiddleware(HTTPMiddleware):
    """Turns any exception that escapes the routes into a problem: an unreachable database 503,
    a race on a unique key 409, a date beyond calendar arithmetic 422, anything else a generic 500.

    Sits outside the routing layer so that even a crash in a dependency answers in the problem
    format and never shows a traceback to the client (the request id says where to look).
    """

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        response_started = False

        async def watched(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, receive, watched)
        except Exception as exc:
            if response_started:
                _log_unhandled(scope)
                raise
            await problem_for_failure(exc, scope)(scope, receive, send)


def problem_for_failure(exc: Exception, scope: Scope) -> ProblemResponse:
    if database_unavailable(exc):
        logger.warning("database unavailable: %s: %s", type(exc).__name__, exc)
        return problem_response(
            None,
            503,
            detail="The database is unavailable; retry shortly",
            slug="database-unavailable",
            headers={"Retry-After": "5"},
        )
    known = _known_failure(exc)
    if known is not None:
        return known
    _log_unhandled(scope)
    return problem_response(
        None, 500, detail="An unexpected error occurred; quote the request id when reporting it"
    )


def _log_unhandled(scope: Scope) -> None:
    logger.exception(
        "unhandled error request_id=%s method=%s path=%s",
        request_id_var.get(),
        scope.get("method"),
        scope.get("path"),
    )


class RequestIdMiddleware(HTTPMiddleware):
    """Tags every request with an id (the client's ``X-Request-ID`` when acceptable) for logs,
    problem documents, stored events and the response's own ``X-Request-ID``; and notes what the
    problems answering it take from it (``ProblemContext``)."""

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        incoming = dict(scope["headers"]).get(REQUEST_ID_HEADER.lower().encode(), b"").decode("latin-1")
        request_id = incoming if _ACCEPTABLE_REQUEST_ID.match(incoming) else uuid.uuid4().hex
        token = request_id_var.set(request_id)
        context_token = problem_context_var.set(ProblemContext.of(scope))
        scope.setdefault("state", {})["request_id"] = request_id

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            problem_context_var.reset(context_token)
            request_id_var.reset(token)
