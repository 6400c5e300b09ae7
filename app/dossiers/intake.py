"""A request's dossier events or portal records taken in (``app.dossiers.ingestion``) and audited:
each event row records its client and request id, the audit log keeps one line per request that
stored anything, its detail how many items were answered with each status."""

from collections.abc import Sequence
from typing import Any, get_args

from app.core.audit import record
from app.dossiers.dvcqg import RecordResult, RecordStatus
from app.dossiers.ingestion.events import ingest
from app.dossiers.ingestion.records import ingest_records
from app.dossiers.ingestion.work import Ingestion
from app.dossiers.ingestion.writes import LiveCounters
from app.dossiers.schemas import EVENT_STATUSES, EventResult, ResultStatus

_RECORD_STATUSES: tuple[ResultStatus, ...] = get_args(RecordStatus)


def _counts(
    statuses: tuple[ResultStatus, ...], results: Sequence[EventResult | RecordResult]
) -> dict[str, int]:
    """How many items were answered with each status: the audit log's detail of a request."""
    return {status: sum(1 for r in results if r.status == status) for status in statuses}


async def _audit_if_stored(
    ingestion: Ingestion, action: str, request_id: str, counts: dict[str, int], stored: Sequence[ResultStatus]
) -> None:
    if any(counts[status] for status in stored):
        await record(ingestion.session, ingestion.principal, action, "dossier_events", request_id, counts)


async def take_events(
    ingestion: Ingestion, items: list[Any], request_id: str
) -> tuple[list[EventResult], dict[str, int]]:
    """Each event answered (``ingest``), and how many were answered with each status; audited when
    any was stored (created, updated or pending)."""
    results = await ingest(ingestion, items)
    counts = _counts(EVENT_STATUSES, results)
    stored = (ResultStatus.created, ResultStatus.updated, ResultStatus.pending)
    await _audit_if_stored(ingestion, "ingest", request_id, counts, stored)
    return results, counts


async def take_records(ingestion: Ingestion, items: list[Any], request_id: str) -> list[RecordResult]:
    """Each portal record answered (``ingest_records``); audited when any was stored (created or updated)."""
    results = await ingest_records(ingestion, items, LiveCounters())
    counts = _counts(_RECORD_STATUSES, results)
    await _audit_if_stored(
        ingestion, "sync", request_id, counts, (ResultStatus.created, ResultStatus.updated)
    )
    return results
