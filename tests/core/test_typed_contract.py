"""The payloads that matter most are typed in the OpenAPI document, so that generated clients are
(issue 28): batch items and DongBoHoSoMC records are named schemas, statistics name their counts and
rates, a proposal's `change` depends on its kind, and a CSV answer does not blur the JSON one."""

from typing import Any

import pytest
from fastapi import FastAPI
from httpx import AsyncClient

from app.core.config import Settings
from app.dossiers.dvcqg import PortalRecord
from app.dossiers.models import SatisfactionLevel
from app.dossiers.schemas import DossierEventIn
from app.main import create_app
from app.proposals.models import ProposalKind
from app.stats.definitions import COUNT_NAMES, RATE_NAMES
from app.stats.schemas import RatingsByLevel
from tests.conftest import KeyFactory

REF = "#/components/schemas/"


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return create_app(Settings()).openapi()


def operation(document: dict[str, Any], operation_id: str) -> dict[str, Any]:
    for operations in document["paths"].values():
        for found in operations.values():
            if found["operationId"] == operation_id:
                return dict(found)
    raise AssertionError(f"no operation {operation_id}")


def resolved(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = document["components"]["schemas"][schema["$ref"].removeprefix(REF)]
    return schema


def body_schema(document: dict[str, Any], operation_id: str) -> dict[str, Any]:
    content = operation(document, operation_id)["requestBody"]["content"]
    return resolved(document, content["application/json"]["schema"])


def json_answer(document: dict[str, Any], operation_id: str) -> dict[str, Any]:
    return dict(
        operation(document, operation_id)["responses"]["200"]["content"]["application/json"]["schema"]
    )


def property_of(document: dict[str, Any], schema: dict[str, Any], *names: str) -> dict[str, Any]:
    """The schema down a path of property names; `items` steps into an array."""
    for name in names:
        schema = resolved(document, schema)
        schema = schema["items"] if name == "items" else schema["properties"][name]
    return schema


def test_batch_items_and_portal_records_are_named_schemas(document: dict[str, Any]) -> None:
    events = body_schema(document, "ingest_dossier_events")["properties"]["events"]
    assert events["items"] == {"$ref": REF + "DossierEventIn"}
    assert (events["minItems"], events["maxItems"]) == (1, 1000)
    records = body_schema(document, "sync_dvcqg_records")["properties"]["data"]
    assert records["items"] == {"$ref": REF + "PortalRecord"}
    schemas = document["components"]["schemas"]
    assert set(schemas["DossierEventIn"]["properties"]) == set(DossierEventIn.model_fields)
    assert set(schemas["PortalRecord"]["properties"]) == set(PortalRecord.model_fields)
    # The portal sends its times as text: the contract says so, not `date-time`.
    received = schemas["PortalRecord"]["properties"]["NgayTiepNhan"]["anyOf"][0]
    assert received == {
        "type": "string",
        "pattern": "^([0-9]{14})?$",
        "description": "`yyyyMMddHHmmss` in Vietnam time; empty means absent",
    }


# Changes of any field of an event: before and after take the type of the field they belong to.
UNTYPED_ON_PURPOSE = {"/components/schemas/Correction/properties/changes/additionalProperties"}


def untyped_arrays(node: Any, path: str = "") -> list[str]:
    found = []
    if isinstance(node, dict):
        if node.get("type") == "array" and not node.get("items"):
            found.append(path)
        for key, value in node.items():
            found += untyped_arrays(value, f"{path}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += untyped_arrays(value, f"{path}/{index}")
    return found


def test_no_array_leaves_its_items_untyped(document: dict[str, Any]) -> None:
    assert set(untyped_arrays(document)) == UNTYPED_ON_PURPOSE


def test_statistics_name_their_counts_and_rates(document: dict[str, Any]) -> None:
    dossiers = json_answer(document, "get_dossier_stats")
    for part in (("total",), ("rows", "items")):
        counts = resolved(document, property_of(document, dossiers, *part, "counts"))
        rates = resolved(document, property_of(document, dossiers, *part, "rates"))
        assert tuple(counts["properties"]) == COUNT_NAMES and counts["required"] == list(COUNT_NAMES)
        assert tuple(rates["properties"]) == RATE_NAMES
    point = property_of(document, json_answer(document, "get_dossier_stats_series"), "points", "items")
    assert tuple(resolved(document, property_of(document, point, "counts"))["properties"]) == COUNT_NAMES
    proposals = json_answer(document, "get_proposal_stats")
    proposal_counts = resolved(document, property_of(document, proposals, "total", "counts"))
    assert list(proposal_counts["properties"]) == ["count", "savings_vnd"]
    feedback = json_answer(document, "get_feedback_stats")
    assert "overdue" in resolved(document, property_of(document, feedback, "total", "counts"))["properties"]
    assert tuple(RatingsByLevel.model_fields) == tuple(level.value for level in SatisfactionLevel)


@pytest.mark.parametrize("operation_id", ["get_dossier_stats", "get_proposal_stats"])
def test_csv_is_a_media_type_of_its_own(document: dict[str, Any], operation_id: str) -> None:
    content = operation(document, operation_id)["responses"]["200"]["content"]
    assert content["text/csv"] == {"schema": {"type": "string"}}
    answer = content["application/json"]["schema"]
    assert set(answer) == {"$ref"}, "the JSON answer is its model alone, not a union with text"
    assert resolved(document, answer)["type"] == "object"


def test_the_xlsx_report_is_binary(document: dict[str, Any]) -> None:
    content = operation(document, "get_reform_report")["responses"]["200"]["content"]
    xlsx = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    assert content[xlsx] == {"schema": {"type": "string", "format": "binary"}}
    assert content["text/markdown"] == {"schema": {"type": "string"}}


def test_a_proposal_change_is_typed_by_its_kind(document: dict[str, Any]) -> None:
    shapes = {"simplify": "Simplification", "abolish": "NoChange", "reduce_fee": "FeeReduction"}
    created = operation(document, "create_proposal")["requestBody"]["content"]["application/json"]["schema"]
    read = resolved(document, {"$ref": REF + "ProposalRead"})
    for union in (created, read):
        assert union["discriminator"]["propertyName"] == "kind"
        assert set(union["discriminator"]["mapping"]) == {kind.value for kind in ProposalKind}
        for kind, ref in union["discriminator"]["mapping"].items():
            variant = resolved(document, {"$ref": ref})
            assert variant["properties"]["kind"]["const"] == kind
            assert variant["properties"]["change"] == {"$ref": REF + shapes[kind]}
    assert document["components"]["schemas"]["FeeReduction"]["required"] == ["fees"]


async def test_items_still_fail_one_by_one(app: FastAPI, client: AsyncClient, api_key: KeyFactory) -> None:
    """Declared with their models, the items are still not validated by the request: a record that
    is not an object, or lacks its status, is that record's 422 and the request's answer is 200."""
    headers = await api_key("dossiers:write", name="portal")
    answer = await client.post(
        "/api/v1/sync/dvcqg",
        json={"service": "DongBoHoSoMC", "data": ["not an object", {"MaHoSo": "HS-1"}]},
        headers=headers,
    )
    assert answer.status_code == 200, answer.text
    results = answer.json()["results"]
    assert [(r["status"], r["problem"]["status"]) for r in results] == [("error", 422), ("error", 422)]
    assert results[1]["MaHoSo"] == "HS-1"
    events = await client.post(
        "/api/v1/dossier-events/batch", json={"events": [7, {"event_id": "E-1"}]}, headers=headers
    )
    assert events.status_code == 200, events.text
    assert [r["status"] for r in events.json()["results"]] == ["error", "error"]
