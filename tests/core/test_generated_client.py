"""A Python client generated from the committed openapi.json works against the live service."""

import importlib
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.conftest import KeyFactory

ROOT = Path(__file__).resolve().parents[2]


def generate_client(directory: Path) -> ModuleType:
    """openapi-python-client on the committed document; the package is imported from ``directory``."""
    generator = Path(sys.executable).with_name("openapi-python-client")
    subprocess.run(
        [
            str(generator),
            "generate",
            "--path",
            str(ROOT / "openapi.json"),
            "--meta",
            "none",
            "--output-path",
            str(directory / "tthc_client"),
        ],
        check=True,
        capture_output=True,
        cwd=directory,
        timeout=300,
    )
    sys.path.insert(0, str(directory))
    try:
        return importlib.import_module("tthc_client")
    finally:
        sys.path.remove(str(directory))


def module(name: str) -> Any:
    return importlib.import_module(f"tthc_client.{name}")


@pytest.mark.only_backend("postgresql")
async def test_a_generated_client_creates_ingests_and_reads(
    tmp_path: Path, live_server: str, api_key: KeyFactory
) -> None:
    client_package = generate_client(tmp_path)
    headers = await api_key("units:write", "catalogue:write", "dossiers:write", name="generated")
    token = headers["Authorization"].removeprefix("Bearer ")
    models = module("models")
    client = client_package.AuthenticatedClient(base_url=live_server, token=token)
    async with client as api:
        created = await module("api.units.create_unit").asyncio_detailed(
            client=api,
            body=models.UnitCreate.from_dict({"code": "31", "name": "Hải Phòng", "level": "province"}),
        )
        assert created.status_code == 201 and created.parsed.code == "31"
        sector = await module("api.catalogue.create_sector").asyncio_detailed(
            client=api, body=models.SectorCreate.from_dict({"code": "ho-tich", "name": "Hộ tịch"})
        )
        assert sector.status_code == 201
        procedure = await module("api.catalogue.create_procedure").asyncio_detailed(
            client=api,
            body=models.ProcedureCreate.from_dict(
                {
                    "code": "1.000894",
                    "name": "Đăng ký kết hôn",
                    "sector_code": "ho-tich",
                    "levels": ["province"],
                    "channels": ["direct", "online"],
                    "processing_time": {"value": 1, "unit": "working_days"},
                    "effective_from": "2020-01-01",
                }
            ),
        )
        assert procedure.status_code == 201, procedure.content
        events = [
            {
                "event_id": f"G-{n}-received",
                "dossier_code": f"G-{n}",
                "type": "received",
                "occurred_at": "2023-07-03T09:00:00+07:00",
                "procedure_code": "1.000894",
                "unit_code": "31",
                "channel": "online",
                "online_level": "full",
            }
            for n in range(3)
        ]
        # The client's own models, as a typed caller builds them (not dictionaries it passes through).
        batch = models.EventBatch(events=[models.DossierEventIn.from_dict(event) for event in events])
        ingested = await module("api.dossiers.ingest_dossier_events").asyncio_detailed(client=api, body=batch)
        assert ingested.status_code == 200
        assert [result.status for result in ingested.parsed.results] == ["created"] * 3

        stats = await module("api.statistics.get_dossier_stats").asyncio(
            client=api, unit="31", period="2023-Q3"
        )
        assert isinstance(stats, models.DossierStats)
        counts = stats.total.counts
        assert counts.received == 3 and counts.online_full == 3
        assert stats.total.rates.online == 100.0

        missing = await module("api.units.get_unit").asyncio(client=api, code="nowhere")
        assert isinstance(missing, models.Problem) and missing.status == 404
