"""The OpenAPI document, with every error answer described as an RFC 9457 problem."""

import json
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from app.core.errors import PROBLEM_MEDIA_TYPE, Problem
from app.core.limits import UNLIMITED_PATHS
from app.core.security import SCOPE_DESCRIPTIONS

_PROBLEM_REF = "#/components/schemas/Problem"
_FASTAPI_VALIDATION_SCHEMAS = ("HTTPValidationError", "ValidationError")


def _problem_content() -> dict[str, Any]:
    return {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": _PROBLEM_REF}}}


# Answers that the shared machinery (authentication, limits) can give on top of a route's own.
_SECURED_RESPONSES = {
    "401": "Unauthorized: no API key, or an unknown or revoked one",
    "403": "Forbidden: the key lacks the scope, or the object lies outside the key's unit",
}
_BODY_RESPONSES = {
    "400": "Bad Request: the body could not be parsed (not JSON, or a malformed form)",
    "413": "Content Too Large: the body exceeds the configured limit",
}
_LIMITED_RESPONSES = {"429": "Too Many Requests: see `Retry-After`"}

# Headers the shared machinery adds to answers (rate limits, pagination), described once and
# referred to from each answer that carries them.
_HEADERS: dict[str, dict[str, Any]] = {
    "RateLimit-Policy": {
        "description": "The rate limits that applied to the request (draft-ietf-httpapi-ratelimit-headers): "
        '`"<policy>";q=<requests>;w=<seconds>` for each, e.g. `"ip-read";q=6000;w=60`',
        "schema": {"type": "string"},
    },
    "RateLimit": {
        "description": 'What is left of each: `"<policy>";r=<remaining>;t=<seconds until the window resets>`',
        "schema": {"type": "string"},
    },
    "Link": {
        "description": 'The next page, when there is one: `<path?…&cursor=…>; rel="next"` (RFC 8288)',
        "schema": {"type": "string"},
    },
}


def _header_refs(*names: str) -> dict[str, Any]:
    return {name: {"$ref": f"#/components/headers/{name}"} for name in names}


def _add_shared_responses(path: str, operation: dict[str, Any]) -> None:
    extra: dict[str, str] = {}
    if operation.get("security"):
        extra |= _SECURED_RESPONSES
    if "requestBody" in operation:
        extra |= _BODY_RESPONSES
    if path not in UNLIMITED_PATHS:
        extra |= _LIMITED_RESPONSES
    responses = operation.setdefault("responses", {})
    for status, description in extra.items():
        responses.setdefault(status, {"description": description})
    paged = any(parameter.get("name") == "cursor" for parameter in operation.get("parameters", []))
    for status, response in responses.items():
        headers: dict[str, Any] = {}
        if path not in UNLIMITED_PATHS and status.startswith("2"):
            headers |= _header_refs("RateLimit-Policy", "RateLimit")
        if paged and status == "200":
            headers |= _header_refs("Link")
        if headers:
            response["headers"] = {**response.get("headers", {}), **headers}


def build_openapi(app: FastAPI) -> dict[str, Any]:
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(
        title=app.title,
        version=app.version,
        description=app.description,
        routes=app.routes,
        tags=app.openapi_tags,
        separate_input_output_schemas=app.separate_input_output_schemas,
    )
    schema.setdefault("components", {})["headers"] = _HEADERS
    components = schema["components"].setdefault("schemas", {})
    for name in _FASTAPI_VALIDATION_SCHEMAS:
        components.pop(name, None)
    components.update(Problem.model_json_schema(ref_template="#/components/schemas/{model}").pop("$defs", {}))
    components["Problem"] = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    scopes = "\n".join(f"- `{scope}`: {text}" for scope, text in SCOPE_DESCRIPTIONS.items())
    for scheme in schema["components"].get("securitySchemes", {}).values():
        scheme["description"] = f"{scheme.get('description', '')}\n\nScopes:\n{scopes}".strip()
    for path, operations in schema.get("paths", {}).items():
        for operation in operations.values():
            _add_shared_responses(path, operation)
            for status, response in operation.get("responses", {}).items():
                if status.startswith(("4", "5")):
                    response["content"] = _problem_content()
    app.openapi_schema = schema
    return schema


def install_openapi(app: FastAPI) -> None:
    app.openapi = lambda: build_openapi(app)  # type: ignore[method-assign]


def document_text(app: FastAPI) -> str:
    """The OpenAPI document as committed to the repository (`make openapi`): stable, readable JSON."""
    return json.dumps(app.openapi(), indent=2, ensure_ascii=False, sort_keys=False) + "\n"
