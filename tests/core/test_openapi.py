from httpx import AsyncClient


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
