"""RFC 9457 problem details: one shape for every error the API returns."""

import logging
import re
import uuid
from collections.abc import Mapping, Sequence
from contextvars import ContextVar
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Message, Receive, Scope, Send

from app.core.asgi import HTTPMiddleware

PROBLEM_MEDIA_TYPE = "application/problem+json"
REQUEST_ID_HEADER = "X-Request-ID"

logger = logging.getLogger("tthc.errors")
request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)

_ACCEPTABLE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


class FieldError(BaseModel):
    field: str = Field(description="Dotted path of the offending input, e.g. `body.parent_code`")
    message: str
    type: str = Field(description="Machine-readable error kind, e.g. `missing`, `unknown_reference`")
    row: int | None = Field(default=None, description="For uploads of many rows: the 1-based row")

    @classmethod
    def from_pydantic(
        cls, errors: Sequence[Mapping[str, Any]], prefix: str = "", *, row: int | None = None, whole: str = ""
    ) -> list["FieldError"]:
        """Pydantic's errors as ours: ``loc`` joined with dots under ``prefix`` (``body.change``);
        an error about the whole input (empty ``loc``) is named ``whole``, or the prefix itself."""
        return [
            cls(
                field=".".join([*([prefix] if prefix else []), *(str(part) for part in err.get("loc", ()))])
                or whole,
                message=str(err.get("msg", "")),
                type=str(err["type"]),
                row=row,
            )
            for err in errors
        ]


class Problem(BaseModel):
    """An RFC 9457 problem document (`application/problem+json`)."""

    type: str = Field(examples=["urn:tthc:problem:not-found"])
    title: str = Field(examples=["Not Found"])
    status: int = Field(examples=[404])
    detail: str | None = Field(default=None, examples=["Unit '31' does not exist"])
    instance: str | None = Field(default=None, examples=["/api/v1/units/31"])
    request_id: str | None = None
    errors: list[FieldError] | None = None


class ProblemResponse(JSONResponse):
    media_type = PROBLEM_MEDIA_TYPE


def problem_type(slug: str) -> str:
    return f"urn:tthc:problem:{slug}"


def _slug_for_status(status: int) -> str:
    return HTTPStatus(status).phrase.lower().replace(" ", "-").replace("'", "")


def problem_response(
    request: Request | None,
    status: int,
    *,
    detail: str | None = None,
    slug: str | None = None,
    title: str | None = None,
    errors: Sequence[FieldError] | None = None,
    headers: dict[str, str] | None = None,
) -> ProblemResponse:
    body = Problem(
        type=problem_type(slug or _slug_for_status(status)),
        title=title or HTTPStatus(status).phrase,
        status=status,
        detail=detail,
        instance=request.url.path if request is not None else None,
        request_id=request_id_var.get(),
        errors=list(errors) if errors else None,
    )
    document = body.model_dump(exclude_none=True)
    return ProblemResponse(document, status_code=status, headers=headers)


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
    return Problem(
        type=problem_type(exc.slug),
        title=HTTPStatus(exc.status).phrase,
        status=exc.status,
        detail=exc.detail,
        errors=list(exc.errors) if exc.errors else None,
    )


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
    problem documents, stored events and the response's own ``X-Request-ID``."""

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        incoming = dict(scope["headers"]).get(REQUEST_ID_HEADER.lower().encode(), b"").decode("latin-1")
        request_id = incoming if _ACCEPTABLE_REQUEST_ID.match(incoming) else uuid.uuid4().hex
        token = request_id_var.set(request_id)
        scope.setdefault("state", {})["request_id"] = request_id

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            request_id_var.reset(token)
