"""Every file the API gives is named: ``Content-Disposition`` with a filename (RFC 6266, RFC 8187)."""

import re
from typing import Any
from urllib.parse import unquote

import pytest
from fastapi import FastAPI
from httpx import AsyncClient

from app.core.downloads import content_disposition, download_name
from app.core.timezone import today_in_vietnam
from tests.dossiers.conftest import world  # noqa: F401

# Answers meant to be read by programs rather than saved as files.
NOT_FILES = {"application/json", "application/ld+json", "text/plain"}


def saved_name(header: str) -> str:
    """The name an agent following RFC 6266 §4.3 saves under: ``filename*`` (RFC 8187) over ``filename``."""
    params = dict(re.findall(r';\s*([\w*]+)=("[^"]*"|[^;]*)', header))
    if "filename*" in params:
        charset, _language, encoded = params["filename*"].split("'", 2)
        assert charset == "UTF-8"
        return unquote(encoded, encoding="utf-8", errors="strict")
    return params["filename"].strip('"')


def test_a_name_is_made_of_its_cleaned_parts() -> None:
    assert download_name("tthc-stats", "dossiers", "", "2023-Q3", extension="csv") == (
        "tthc-stats-dossiers-2023-Q3.csv"
    )
    assert download_name("x", "2023-07-01..2023-09-30", extension="csv") == "x-2023-07-01-2023-09-30.csv"
    # Nothing of a part can climb out of the download folder or end the quoted name.
    assert download_name('../"etc"/passwd', "a\\b", extension="md") == "etc-passwd-a-b.md"
    # Vietnamese letters are kept, whether they came composed or not.
    assert download_name("Ba\u0301o ca\u0301o", extension="xlsx") == "Báo-cáo.xlsx"


def test_an_ascii_name_is_quoted_as_it_is() -> None:
    assert content_disposition("tthc-stats-2023-Q3.csv") == 'attachment; filename="tthc-stats-2023-Q3.csv"'
    assert saved_name(content_disposition("tthc-stats-2023-Q3.csv")) == "tthc-stats-2023-Q3.csv"
    assert content_disposition("report.html", inline=True) == 'inline; filename="report.html"'


@pytest.mark.parametrize(
    ("name", "fallback"),
    [
        ("báo-cáo-cải-cách-Đà-Nẵng-2023-Q3.xlsx", "bao-cao-cai-cach-Da-Nang-2023-Q3.xlsx"),
        ("thống kê.csv", "thong-ke.csv"),
        ('a"b\\c.csv', "a-b-c.csv"),
        ("统计.csv", "download.csv"),
    ],
)
def test_another_name_also_goes_in_filename_star(name: str, fallback: str) -> None:
    header = content_disposition(name)
    assert header.startswith(f"attachment; filename=\"{fallback}\"; filename*=UTF-8''")
    assert header.isascii()
    assert saved_name(header) == name


TODAY = today_in_vietnam().isoformat()
DOWNLOADS = [
    pytest.param(
        "/api/v1/stats/dossiers",
        {"unit": "313", "period": "2023-Q3", "format": "csv"},
        {},
        'attachment; filename="tthc-stats-dossiers-313-2023-Q3.csv"',
        id="stats-dossiers",
    ),
    pytest.param(
        "/api/v1/stats/dossiers",
        {"period": "2023-Q3", "scheme": "report", "labels": "vi"},
        {"Accept": "text/csv"},
        'attachment; filename="tthc-stats-dossiers-2023-Q3-report.csv"',
        id="stats-dossiers-accept-csv",
    ),
    pytest.param(
        "/api/v1/stats/proposals",
        {"unit": "313", "period": "2023", "format": "csv"},
        {},
        'attachment; filename="tthc-stats-proposals-313-2023.csv"',
        id="stats-proposals",
    ),
    pytest.param(
        "/api/v1/procedures/export",
        {},
        {},
        f'attachment; filename="tthc-procedures-{TODAY}.csv"',
        id="procedures-csv",
    ),
    pytest.param(
        "/api/v1/procedures/export",
        {"format": "json"},
        {},
        f'attachment; filename="tthc-procedures-{TODAY}.json"',
        id="procedures-json",
    ),
    pytest.param(
        "/api/v1/reports/reform",
        {"unit": "313", "period": "2023-Q3", "format": "xlsx"},
        {},
        'attachment; filename="bao-cao-cai-cach-313-2023-Q3.xlsx"',
        id="report-xlsx",
    ),
    pytest.param(
        "/api/v1/reports/reform",
        {"unit": "313", "period": "2023-Q3"},
        {"Accept": "text/html"},
        'inline; filename="bao-cao-cai-cach-313-2023-Q3.html"',
        id="report-html",
    ),
    pytest.param(
        "/api/v1/reports/reform",
        {"unit": "313", "period": "2023-Q3", "format": "markdown"},
        {},
        'inline; filename="bao-cao-cai-cach-313-2023-Q3.md"',
        id="report-markdown",
    ),
]


@pytest.mark.usefixtures("world")
@pytest.mark.parametrize(("path", "params", "headers", "disposition"), DOWNLOADS)
async def test_every_download_is_named(
    client: AsyncClient, path: str, params: dict[str, str], headers: dict[str, str], disposition: str
) -> None:
    # The second answer of a statistics table comes from the memory of answers: named all the same.
    for _ in range(2):
        response = await client.get(path, params=params, headers=headers)
        assert response.status_code == 200, response.text
        assert response.headers["content-disposition"] == disposition
    if etag := response.headers.get("etag"):
        unchanged = await client.get(path, params=params, headers={**headers, "If-None-Match": etag})
        assert unchanged.status_code == 304


@pytest.mark.usefixtures("world")
async def test_a_json_table_is_not_a_download(client: AsyncClient) -> None:
    response = await client.get("/api/v1/stats/dossiers", params={"period": "2023-Q3"})
    assert response.status_code == 200 and "content-disposition" not in response.headers


async def test_the_downloads_above_are_every_operation_that_gives_a_file(app: FastAPI) -> None:
    tested = {param.values[0] for param in DOWNLOADS}
    giving_files: set[str] = set()
    for path, operations in app.openapi()["paths"].items():
        for operation in operations.values():
            answer: dict[str, Any] = operation.get("responses", {}).get("200", {})
            if set(answer.get("content", {})) - NOT_FILES:
                giving_files.add(path)
                assert "Content-Disposition" in answer.get("headers", {}), path
    assert giving_files == tested
