"""One shape of problem (issue 28): every error answer — the router's 404 and 405, request
validation, domain rules, authentication, conditional requests, the middlewares' limits and
hygiene, the last-resort 503 and 500, and the problem of an item of a batch — carries the six
members; fields are named one way; and `Accept-Language: vi` reads Vietnamese."""

import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient

from app.core import i18n
from app.core.config import Settings
from app.core.errors import DomainError, slug_for_status
from tests.conftest import KeyFactory, running_app
from tests.dossiers.conftest import BATCH, received

SIX = ("type", "title", "status", "detail", "instance", "request_id")
VIETNAMESE = {"Accept-Language": "vi-VN,vi;q=0.9,en;q=0.5"}
ENGLISH = {"Accept-Language": "en-US,en;q=0.9"}
UNIT = {"code": "99001", "name": "Xã Mới", "level": "commune", "parent_code": "313", "valid_to": "2025-06-30"}


@dataclass
class Clients:
    anonymous: AsyncClient
    writer: AsyncClient
    reader: AsyncClient  # a key without units:write
    portal: AsyncClient


@pytest.fixture
async def clients(
    app: FastAPI, client: AsyncClient, writer: AsyncClient, portal: AsyncClient, api_key: KeyFactory
) -> AsyncIterator[Clients]:
    async def database_down() -> None:
        raise ConnectionRefusedError("connection refused")

    async def bug() -> None:
        raise RuntimeError("a bug")

    app.add_api_route("/test/database-down", database_down)
    app.add_api_route("/test/bug", bug)
    headers = await api_key("dossiers:read", name="reader")
    async with AsyncClient(
        transport=ASGITransport(app=app), base_url="http://testserver", headers=headers
    ) as reader:
        yield Clients(client, writer, reader, portal)


Send = Callable[[Clients, dict[str, str]], Awaitable[httpx.Response]]


@dataclass
class Case:
    send: Send
    status: int
    slug: str
    instance: str
    fields: tuple[str, ...] = ()
    """Field names the problem must name (the convention: `body.x`, `query.x`; an item's own)."""
    answer_status: int | None = None
    """For the problem of an item: the status of the answer that carries it in `results`."""


def _patch_procedure(c: Clients, headers: dict[str, str]) -> Awaitable[httpx.Response]:
    return c.writer.patch("/api/v1/procedures/1.000894", json={"name": "Kết hôn"}, headers=headers)


def _sync(c: Clients, headers: dict[str, str]) -> Awaitable[httpx.Response]:
    record = {
        "MaHoSo": "R-1",
        "MaTTHC": "1.000894",
        "DonViXuLy": "99999",
        "KenhThucHien": 1,
        "NgayTiepNhan": "20230807080000",
        "TrangThaiHoSo": 2,
    }
    body = {"service": "DongBoHoSoMC", "isUpdating": False, "data": [record]}
    return c.portal.post("/api/v1/sync/dvcqg", json=body, headers=headers)


CASES: dict[str, Case] = {
    "404 unknown route": Case(
        lambda c, h: c.anonymous.get("/api/v1/nowhere", headers=h), 404, "not-found", "/api/v1/nowhere"
    ),
    "404 unknown unit": Case(
        lambda c, h: c.anonymous.get("/api/v1/units/99", headers=h), 404, "not-found", "/api/v1/units/99"
    ),
    "405": Case(
        lambda c, h: c.anonymous.delete("/api/v1/units", headers=h),
        405,
        "method-not-allowed",
        "/api/v1/units",
    ),
    "400 malformed JSON": Case(
        lambda c, h: c.writer.post(
            "/api/v1/units", content=b'{"code": ', headers={**h, "content-type": "application/json"}
        ),
        400,
        "malformed-json",
        "/api/v1/units",
    ),
    "422 query": Case(
        lambda c, h: c.anonymous.get("/api/v1/units", params={"level": "planet"}, headers=h),
        422,
        "validation-error",
        "/api/v1/units",
        ("query.level",),
    ),
    "422 body": Case(
        lambda c, h: c.writer.post("/api/v1/units", json={"code": "", "level": "planet"}, headers=h),
        422,
        "validation-error",
        "/api/v1/units",
        ("body.code", "body.level", "body.name"),
    ),
    "422 domain": Case(
        lambda c, h: c.writer.post("/api/v1/units", json={**UNIT, "parent_code": "99"}, headers=h),
        422,
        "invalid-input",
        "/api/v1/units",
        ("body.parent_code",),
    ),
    "422 hygiene": Case(
        lambda c, h: c.anonymous.get("/api/v1/units?q=%00", headers=h),
        422,
        "invalid-input",
        "/api/v1/units",
        ("query",),
    ),
    "422 single event": Case(
        lambda c, h: c.portal.post(
            "/api/v1/dossier-events",
            json=received("E-1", "2023-08-07T09:00:00+07:00", unit="99999"),
            headers=h,
        ),
        422,
        "invalid-input",
        "/api/v1/dossier-events",
        ("body.unit_code",),
    ),
    "401": Case(
        lambda c, h: c.anonymous.post("/api/v1/units", json=UNIT, headers=h),
        401,
        "unauthorized",
        "/api/v1/units",
    ),
    "403": Case(
        lambda c, h: c.reader.post("/api/v1/units", json=UNIT, headers=h), 403, "forbidden", "/api/v1/units"
    ),
    "409": Case(
        lambda c, h: c.writer.post(
            "/api/v1/units", json={"code": "31", "name": "Hải Phòng", "level": "province"}, headers=h
        ),
        409,
        "conflict",
        "/api/v1/units",
    ),
    "412": Case(
        lambda c, h: c.writer.patch(
            "/api/v1/units/31", json={"name": "Hải Phòng"}, headers={**h, "If-Match": '"stale"'}
        ),
        412,
        "precondition-failed",
        "/api/v1/units/31",
    ),
    "428": Case(_patch_procedure, 428, "precondition-required", "/api/v1/procedures/1.000894"),
    "413": Case(
        lambda c, h: c.writer.post(
            "/api/v1/units", content=b"x" * (3 << 20), headers={**h, "content-type": "application/json"}
        ),
        413,
        "body-too-large",
        "/api/v1/units",
    ),
    "415": Case(
        lambda c, h: c.writer.post(
            "/api/v1/procedures/import", content=b"code", headers={**h, "content-type": "text/plain"}
        ),
        415,
        "unsupported-media-type",
        "/api/v1/procedures/import",
    ),
    "503 database down": Case(
        lambda c, h: c.anonymous.get("/test/database-down", headers=h),
        503,
        "database-unavailable",
        "/test/database-down",
    ),
    "500": Case(
        lambda c, h: c.anonymous.get("/test/bug", headers=h), 500, "internal-server-error", "/test/bug"
    ),
    "422 item of a batch": Case(
        lambda c, h: c.portal.post(
            BATCH, json={"events": [received("E-2", "2023-08-07T09:00:00+07:00", unit="99999")]}, headers=h
        ),
        422,
        "invalid-input",
        BATCH,
        ("unit_code",),
        answer_status=200,
    ),
    "422 record of a sync": Case(
        _sync, 422, "invalid-input", "/api/v1/sync/dvcqg", ("DonViXuLy",), answer_status=200
    ),
}


async def _problem(
    case: Case, clients: Clients, headers: dict[str, str]
) -> tuple[httpx.Response, dict[str, Any]]:
    response = await case.send(clients, headers)
    assert response.status_code == (case.answer_status or case.status), response.text
    if case.answer_status is None:
        assert response.headers["content-type"] == "application/problem+json"
        return response, dict(response.json())
    (result,) = response.json()["results"]
    return response, dict(result["problem"])


def _assert_shape(
    response: httpx.Response,
    problem: dict[str, Any],
    *,
    status: int,
    slug: str,
    instance: str,
    fields: tuple[str, ...] = (),
) -> None:
    assert set(SIX) <= set(problem), problem
    assert all(problem[member] for member in SIX), problem
    assert problem["type"] == f"urn:tthc:problem:{slug}"
    assert problem["status"] == status
    assert problem["instance"] == instance
    assert problem["request_id"] == response.headers["x-request-id"]
    named = [error["field"] for error in problem.get("errors") or []]
    assert set(fields) <= set(named), named


def _assert_case(case: Case, response: httpx.Response, problem: dict[str, Any]) -> None:
    _assert_shape(
        response, problem, status=case.status, slug=case.slug, instance=case.instance, fields=case.fields
    )


@pytest.mark.parametrize("name", list(CASES))
async def test_every_problem_has_the_six_members_in_english_by_default(clients: Clients, name: str) -> None:
    case = CASES[name]
    for headers in ({}, ENGLISH, {"Accept-Language": "fr-FR, de;q=0.5"}):
        response, problem = await _problem(case, clients, headers)
        _assert_case(case, response, problem)
        assert problem["title"] == HTTPStatus(case.status).phrase
        if case.answer_status is None:
            assert response.headers["content-language"] == "en"
            assert "accept-language" in response.headers["vary"].lower()


@pytest.mark.parametrize("name", list(CASES))
async def test_every_problem_reads_vietnamese_on_request(clients: Clients, name: str) -> None:
    case = CASES[name]
    _, english = await _problem(case, clients, ENGLISH)
    response, vietnamese = await _problem(case, clients, VIETNAMESE)
    _assert_case(case, response, vietnamese)
    assert vietnamese["title"] == i18n.TITLES_VI[case.slug] != english["title"]
    # The detail is the English one through the catalogue, not English left as it was.
    assert vietnamese["detail"] == i18n.text(english["detail"], "vi") != english["detail"]
    english_messages = [error["message"] for error in english.get("errors") or []]
    vietnamese_messages = [error["message"] for error in vietnamese.get("errors") or []]
    assert len(vietnamese_messages) == len(english_messages)
    assert not set(vietnamese_messages) & set(english_messages), vietnamese_messages
    if case.answer_status is None:
        assert response.headers["content-language"] == "vi"
        assert "accept-language" in response.headers["vary"].lower()


async def test_pydantic_messages_come_from_the_table_by_error_type(clients: Clients) -> None:
    unit = {"code": "1", "division_type": "x" * 41, "level": "planet", "valid_from": "soon"}
    response = await clients.writer.post("/api/v1/units", json=unit, headers=VIETNAMESE)
    assert response.status_code == 422
    messages = {error["field"]: (error["type"], error["message"]) for error in response.json()["errors"]}
    assert messages["body.name"] == ("missing", i18n.PYDANTIC_VI["missing"])
    assert messages["body.division_type"] == ("string_too_long", "Chuỗi chỉ được có tối đa 40 ký tự")
    kind, message = messages["body.level"]
    assert kind == "enum" and message == "Giá trị phải là một trong: 'province', 'district' hoặc 'commune'"
    kind, message = messages["body.valid_from"]
    assert message == i18n.PYDANTIC_VI[kind]


async def test_a_validators_own_message_is_translated_through_the_catalogue(clients: Clients) -> None:
    unit = {**UNIT, "valid_from": "2025-01-01", "valid_to": "2024-01-01"}
    response = await clients.writer.post("/api/v1/units", json=unit, headers=VIETNAMESE)
    assert response.status_code == 422
    (error,) = response.json()["errors"]
    assert (error["type"], error["message"]) == (
        "value_error",
        "Giá trị không hợp lệ: valid_from không được sau valid_to",
    )


async def test_rate_limited_problem_has_the_six_members_in_both_languages(database_url: str) -> None:
    async with (
        running_app(Settings(database_url=database_url, rate_limit_ip_reads="2/minute")) as application,
        AsyncClient(transport=ASGITransport(app=application), base_url="http://testserver") as http,
    ):
        for _ in range(2):
            assert (await http.get("/api/v1/nowhere")).status_code == 404
        english = await http.get("/api/v1/nowhere")
        vietnamese = await http.get("/api/v1/nowhere", headers=VIETNAMESE)
    for response, language in ((english, "en"), (vietnamese, "vi")):
        assert response.status_code == 429
        assert response.headers["content-language"] == language
        assert response.headers["retry-after"]
        _assert_shape(response, response.json(), status=429, slug="rate-limited", instance="/api/v1/nowhere")
    assert vietnamese.json()["title"] == i18n.TITLES_VI["rate-limited"]
    assert vietnamese.json()["detail"].startswith("Đã vượt giới hạn số yêu cầu; hãy thử lại sau ")


# --- the tables --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "language"),
    [
        (None, "en"),
        ("", "en"),
        ("vi", "vi"),
        ("vi-VN", "vi"),
        ("VI-vn", "vi"),
        ("en;q=0.5, vi;q=0.8", "vi"),
        ("vi;q=0.3, en", "en"),
        ("vi, en", "vi"),
        ("en, vi", "en"),
        ("fr", "en"),
        ("fr;q=1, vi;q=0.1", "vi"),
        ("*", "en"),
        ("en;q=0, *", "vi"),
        ("vi;q=0", "en"),
        ("vi;q=abc, en;q=0.1", "en"),
        ("vi;q=2", "en"),
        ("vi-VN,vi;q=0.9,en-US;q=0.8,en;q=0.7", "vi"),
    ],
)
def test_accept_language_is_negotiated_by_q_value(header: str | None, language: str) -> None:
    assert i18n.negotiate(header) == language


def _all_subclasses(cls: type[DomainError]) -> list[type[DomainError]]:
    return [found for sub in cls.__subclasses__() for found in (sub, *_all_subclasses(sub))]


def test_every_problem_type_and_status_has_a_vietnamese_title() -> None:
    classes: list[type[DomainError]] = [DomainError, *_all_subclasses(DomainError)]
    # Problem types given where a problem is answered directly (middlewares, handlers).
    named = {slug for path in APP.rglob("*.py") for slug in _SLUG.findall(path.read_text())}
    assert {"body-too-large", "validation-error"} <= named
    assert {error.slug for error in classes} | named <= set(i18n.TITLES_VI)
    statuses = (400, 401, 403, 404, 405, 406, 408, 409, 412, 413, 415, 422, 428, 429, 500, 503)
    for status in statuses:
        assert i18n.title("no-such-type", slug_for_status(status), "x", "vi") != "x", status


_SLUG = re.compile(r'\bslug="([a-z-]+)"')
APP = Path(__file__).resolve().parents[2] / "app"


def test_catalogue_templates_carry_their_data_across() -> None:
    for english, vietnamese in i18n.CATALOGUE_VI.items():
        assert i18n.placeholders(english) == i18n.placeholders(vietnamese), english
    assert i18n.text("Unit '31' does not exist", "vi") == "Đơn vị '31' không tồn tại"
    assert i18n.text("Unit '31' does not exist", "en") == "Unit '31' does not exist"
    # A message no template matches stays English.
    assert i18n.text("Something nobody translated", "vi") == "Something nobody translated"
    nested = "NgayTuChoi: A refused dossier (status 3) needs NgayTuChoi"
    assert i18n.text(nested, "vi") == "NgayTuChoi: Hồ sơ bị từ chối (trạng thái 3) cần có NgayTuChoi"
