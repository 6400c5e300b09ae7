"""Codes that name things across domains (an API client is bound to a unit by its code)."""

from typing import Annotated

from pydantic import Field, StringConstraints

UnitCode = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$"),
    Field(description="Unit code, e.g. the official `31` (province) or `11680` (commune)", examples=["313"]),
]
