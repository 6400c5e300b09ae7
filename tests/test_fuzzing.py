"""Schemathesis over every operation, in-process: no server errors, no answer outside the document.

Bounded and reproducible for CI: a fixed number of examples per operation, derandomized.
"""

import asyncio
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from app.clients.schemas import ClientCreate
from app.clients.service import create_client
from app.core import migrations
from app.core.config import Settings
from app.core.db import create_engine, create_sessionmaker
from app.core.security import Scope
from app.main import create_app

EXAMPLES_PER_OPERATION = 25
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


async def _admin_key(settings: Settings) -> str:
    engine = create_engine(settings)
    try:
        async with create_sessionmaker(engine)() as session, session.begin():
            _client, secret = await create_client(
                session,
                ClientCreate.model_validate({"name": "fuzzer", "scopes": [scope.value for scope in Scope]}),
                None,
            )
            return secret
    finally:
        await engine.dispose()


# Rate limits off: the fuzzer sends far more than a client may.
_LIMITS_OFF: dict[str, Any] = {
    f"rate_limit_{name}": "" for name in ("ip_reads", "ip_writes", "client_reads", "client_writes", "lookup")
}
# The schema is read from the app when the module is collected; the database behind it is a file
# of its own, migrated by the fixture before the first request that needs it.
_DIRECTORY = Path(tempfile.mkdtemp(prefix="tthc-fuzz-"))
SETTINGS = Settings(database_url=f"sqlite+aiosqlite:///{_DIRECTORY / 'tthc.db'}", **_LIMITS_OFF)
schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(SETTINGS))


@pytest.fixture(scope="module")
def admin() -> Iterator[dict[str, str]]:
    migrations.upgrade(SETTINGS.database_url)
    key = asyncio.run(_admin_key(SETTINGS))
    yield {"Authorization": f"Bearer {key}"}
    shutil.rmtree(_DIRECTORY, ignore_errors=True)


@schema.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    derandomize=True,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_every_operation_answers_within_its_document(case: Any, admin: dict[str, str]) -> None:
    case.call_and_validate(headers=admin, checks=CHECKS)
