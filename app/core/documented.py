"""A value the API contract describes with a model, that validation and serialization leave as it is.

The items of a batch are validated one by one by their route, so that a bad item fails itself only
(SPEC §4): FastAPI must not validate them, or one bad item would be the whole request's 422; yet
clients need their schema. Stored JSON checked when it was written (a proposal's `change`) is shown
as stored, in the shape its model describes. ``Annotated[Any, DocumentedAs(Model)]`` is ``Model`` in
the OpenAPI document (a `$ref`, like any use of the model) and the raw value at runtime; its static
type stays what it really is.
"""

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, GetCoreSchemaHandler
from pydantic_core import CoreSchema, core_schema


def _as_sent(value: Any, _validate: core_schema.ValidatorFunctionWrapHandler) -> Any:
    return value


def _as_is(value: Any) -> Any:
    return value


@dataclass(frozen=True)
class DocumentedAs:
    model: type[BaseModel]

    def __get_pydantic_core_schema__(self, _source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        # A wrap validator that never calls the model's validator: the JSON schema of both modes is the
        # model's, with its definition shared with the model's other uses.
        return core_schema.no_info_wrap_validator_function(
            _as_sent,
            handler.generate_schema(self.model),
            serialization=core_schema.plain_serializer_function_ser_schema(_as_is),
        )
