"""A typed caller of the Python client that openapi-python-client generates from openapi.json.

`scripts/check-clients` type-checks it with ``mypy --strict`` against the generated package, then runs
it against a live service: the batch items, the DongBoHoSoMC record, a proposal's `change` and the
statistics are the client's own models, and every figure is read as an attribute of its type, with
no cast and no ``Any``. It exits non-zero when an answer is not the one expected.

Usage: python check.py BASE_URL API_KEY (the key's client needs units:write, catalogue:write,
dossiers:write and proposals:write).
"""

import datetime as dt
import sys
from typing import TypeVar, assert_type

from tthc_client import AuthenticatedClient
from tthc_client.api.catalogue import create_procedure, create_sector
from tthc_client.api.dossiers import ingest_dossier_events, sync_dvcqg_records
from tthc_client.api.proposals import create_proposal
from tthc_client.api.statistics import get_dossier_stats, get_proposal_stats
from tthc_client.api.units import create_unit
from tthc_client.models import (
    BatchResult,
    Channel,
    DossierEventIn,
    DossierStats,
    EventBatch,
    EventType,
    OnlineLevel,
    OnlineService,
    PortalRecord,
    PortalRecordKenhThucHienType0,
    ProcedureCreate,
    ProcedureRead,
    ProcessingTime,
    ProposalStats,
    SectorCreate,
    SectorRead,
    Simplification,
    SimplifyProposalCreate,
    SimplifyProposalRead,
    SyncBody,
    SyncResult,
    TimeUnit,
    UnitCreate,
    UnitLevel,
    UnitRead,
)

# Codes of this check alone: the other clients' checks run against the same service.
UNIT, SECTOR, PROCEDURE = "PY", "py-check", "PY.000001"
PERIOD = "2023-Q3"
VIETNAM = dt.timezone(dt.timedelta(hours=7))

T = TypeVar("T")


def answer(kind: type[T], value: object, what: str) -> T:
    """The answer as the model it must be; a problem (or nothing) stops the check, naming it."""
    if not isinstance(value, kind):
        sys.exit(f"check.py: {what}: expected {kind.__name__}, got {value!r}")
    return value


def expect(condition: bool, what: str) -> None:
    if not condition:
        sys.exit(f"check.py: {what}")


def set_up(api: AuthenticatedClient) -> None:
    """A unit and a procedure, online in full, for the dossiers to be received at."""
    unit = UnitCreate(code=UNIT, name="Tỉnh kiểm tra Python", level=UnitLevel.PROVINCE)
    answer(UnitRead, create_unit.sync(client=api, body=unit), "create_unit")
    sector = SectorCreate(code=SECTOR, name="Kiểm tra")
    answer(SectorRead, create_sector.sync(client=api, body=sector), "create_sector")
    procedure = ProcedureCreate(
        code=PROCEDURE,
        name="Thủ tục kiểm tra",
        sector_code=SECTOR,
        levels=[UnitLevel.PROVINCE],
        channels=[Channel.DIRECT, Channel.ONLINE],
        processing_time=ProcessingTime(value=5, unit=TimeUnit.WORKING_DAYS),
        online_service=OnlineService.FULL,
        effective_from=dt.date(2020, 1, 1),
    )
    answer(ProcedureRead, create_procedure.sync(client=api, body=procedure), "create_procedure")


def received(code: str, day: int) -> DossierEventIn:
    return DossierEventIn(
        event_id=f"{code}-received",
        dossier_code=code,
        type_=EventType.RECEIVED,
        occurred_at=dt.datetime(2023, 7, day, 9, 0, tzinfo=VIETNAM),
        procedure_code=PROCEDURE,
        unit_code=UNIT,
        channel=Channel.ONLINE,
        online_level=OnlineLevel.FULL,
    )


def send_events(api: AuthenticatedClient) -> None:
    resolved = DossierEventIn(
        event_id="PY-1-resolved",
        dossier_code="PY-1",
        type_=EventType.RESOLVED,
        occurred_at=dt.datetime(2023, 7, 4, 15, 0, tzinfo=VIETNAM),
    )
    batch = EventBatch(events=[received("PY-1", 3), received("PY-2", 5), resolved])
    results = answer(BatchResult, ingest_dossier_events.sync(client=api, body=batch), "ingest")
    statuses = [result.status.value for result in results.results]
    expect(statuses == ["created"] * 3, f"the batch was answered {statuses}")


def send_record(api: AuthenticatedClient) -> None:
    """A dossier the one-stop system resolved, as it syncs it to the national portal."""
    record = PortalRecord(
        ma_ho_so="PY-3",
        trang_thai_ho_so=9,
        ma_tthc=PROCEDURE,
        don_vi_xu_ly=UNIT,
        kenh_thuc_hien=PortalRecordKenhThucHienType0.VALUE_2,
        muc_do=4,
        ngay_tiep_nhan="20230710080000",
        ngay_ket_thuc_xu_ly="20230711100000",
    )
    body = SyncBody(service="DongBoHoSoMC", data=[record])
    results = answer(SyncResult, sync_dvcqg_records.sync(client=api, body=body), "sync_dvcqg")
    statuses = [result.status.value for result in results.results]
    expect(statuses == ["created"], f"the record was answered {statuses}")


def propose(api: AuthenticatedClient) -> None:
    proposal = SimplifyProposalCreate(
        kind="simplify",
        procedure_code=PROCEDURE,
        level=UnitLevel.PROVINCE,
        unit_code=UNIT,
        title="Rút ngắn thời hạn",
        rationale="Kiểm tra kiểu của `change`",
        change=Simplification(processing_time=ProcessingTime(value=3, unit=TimeUnit.WORKING_DAYS)),
    )
    made = answer(SimplifyProposalRead, create_proposal.sync(client=api, body=proposal), "create_proposal")
    time = made.change.processing_time
    expect(isinstance(time, ProcessingTime) and time.value == 3, f"the change came back as {made.change}")


def read_statistics(api: AuthenticatedClient) -> None:
    stats = answer(DossierStats, get_dossier_stats.sync(client=api, unit=UNIT, period=PERIOD), "stats")
    counts, rates = stats.total.counts, stats.total.rates
    assert_type(counts.received, int)
    assert_type(rates.on_time, float | None)
    expect(counts.received == 3, f"received {counts.received}, not 3")
    expect((counts.resolved, counts.in_progress) == (2, 1), f"counts {counts.to_dict()}")
    expect(counts.online_full == 3 and rates.online == 100.0, f"online: {counts.online_full}, {rates.online}")
    proposals = answer(
        ProposalStats, get_proposal_stats.sync(client=api, unit=UNIT, period=PERIOD), "proposal stats"
    )
    assert_type(proposals.total.counts.savings_vnd, int)
    expect(proposals.total.counts.count == 0, "no proposal was submitted in the period")


def main() -> None:
    base_url, key = sys.argv[1:3]
    with AuthenticatedClient(base_url=base_url, token=key, raise_on_unexpected_status=True) as api:
        set_up(api)
        send_events(api)
        send_record(api)
        propose(api)
        read_statistics(api)
    print("check.py: the generated Python client sent and read every typed payload")


if __name__ == "__main__":
    main()
