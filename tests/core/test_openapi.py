import re
from pathlib import Path

from httpx import AsyncClient

from app.core.config import Settings
from app.core.openapi import document_text
from app.main import create_app


async def test_openapi_documents_every_error_as_a_problem(client: AsyncClient) -> None:
    document = (await client.get("/openapi.json")).json()
    assert "HTTPValidationError" not in document["components"]["schemas"]
    assert {"status", "title", "type"} <= set(document["components"]["schemas"]["Problem"]["required"])
    error_responses = [
        (path, status, response)
        for path, operations in document["paths"].items()
        for operation in operations.values()
        for status, response in operation["responses"].items()
        if status.startswith(("4", "5"))
    ]
    assert error_responses
    for path, status, response in error_responses:
        assert response["content"] == {
            "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
        }, (path, status)


async def test_operation_ids_are_stable_names(client: AsyncClient) -> None:
    document = (await client.get("/openapi.json")).json()
    operation_ids = {
        operation["operationId"]
        for operations in document["paths"].values()
        for operation in operations.values()
    }
    assert {
        "create_unit",
        "list_units",
        "get_unit",
        "update_unit",
        "list_unit_children",
        "readyz",
    } <= operation_ids


async def test_docs_are_served(client: AsyncClient) -> None:
    response = await client.get("/docs")
    assert response.status_code == 200
    assert "swagger" in response.text.lower()


def test_the_committed_document_is_what_the_code_serves() -> None:
    committed = (Path(__file__).resolve().parents[2] / "openapi.json").read_text()
    assert committed == document_text(create_app(Settings())), (
        "openapi.json is out of date: run `make openapi` and commit it"
    )


def test_every_operation_is_named_tagged_and_summarised() -> None:
    document = create_app(Settings()).openapi()
    tags = {tag["name"] for tag in document["tags"]}
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            assert re.fullmatch(r"[a-z][a-z0-9_]*", operation["operationId"]), (method, path)
            assert operation["summary"] and len(operation["tags"]) == 1, (method, path)
            assert operation["tags"][0] in tags, (method, path)
