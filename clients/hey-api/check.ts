/**
 * A typed caller of the SDK @hey-api/openapi-ts generates from openapi.json (its fetch client).
 *
 * `scripts/check-clients` compiles it with `tsc --noEmit --strict`, then runs it against a live
 * service, as typescript/check.ts does with openapi-fetch: the batch items, the DongBoHoSoMC record,
 * a proposal's `change` and the statistics have their schemas' types, and the `Exactly` checks fail
 * to compile if a figure turns loose (`any`).
 *
 * Usage: tsx hey-api/check.ts BASE_URL API_KEY
 */
import { args, type Exactly, expect, ok, PERIOD } from "../common";
import { client } from "../generated/hey-api/client.gen";
import {
  createProcedure,
  createProposal,
  createSector,
  createUnit,
  type DossierEventIn,
  getDossierStats,
  getProposalStats,
  ingestDossierEvents,
  type PortalRecord,
  type Simplification,
  type SimplifyProposalCreate,
  type SyncBody,
  syncDvcqgRecords,
} from "../generated/hey-api";

// Codes of this check alone: the other clients' checks run against the same service.
const UNIT = "HEY";
const PROCEDURE = "HEY.000001";

const { baseUrl, key } = args("hey-api/check.ts");
client.setConfig({ baseUrl, headers: { Authorization: `Bearer ${key}` } });

async function setUp(): Promise<void> {
  const unit = { code: UNIT, name: "Tỉnh kiểm tra hey-api", level: "province" } as const;
  ok(await createUnit({ body: unit }), "create unit");
  ok(await createSector({ body: { code: "hey-check", name: "Kiểm tra" } }), "create sector");
  const procedure = await createProcedure({
    body: {
      code: PROCEDURE,
      name: "Thủ tục kiểm tra",
      sector_code: "hey-check",
      levels: ["province"],
      channels: ["direct", "online"],
      processing_time: { value: 5, unit: "working_days" },
      online_service: "full",
      effective_from: "2020-01-01",
    },
  });
  ok(procedure, "create procedure");
}

function received(code: string, day: string): DossierEventIn {
  return {
    event_id: `${code}-received`,
    dossier_code: code,
    type: "received",
    occurred_at: `2023-07-${day}T09:00:00+07:00`,
    procedure_code: PROCEDURE,
    unit_code: UNIT,
    channel: "online",
    online_level: "full",
  };
}

async function sendEvents(): Promise<void> {
  const events: DossierEventIn[] = [
    received("HEY-1", "03"),
    received("HEY-2", "05"),
    {
      event_id: "HEY-1-resolved",
      dossier_code: "HEY-1",
      type: "resolved",
      occurred_at: "2023-07-04T15:00:00+07:00",
    },
  ];
  const answer = ok(await ingestDossierEvents({ body: { events } }), "ingest");
  const statuses = answer.results.map((result) => result.status);
  expect(statuses.every((status) => status === "created"), `the batch was answered ${statuses.join(", ")}`);
}

async function sendRecord(): Promise<void> {
  const record: PortalRecord = {
    MaHoSo: "HEY-3",
    TrangThaiHoSo: 9,
    MaTTHC: PROCEDURE,
    DonViXuLy: UNIT,
    KenhThucHien: 2,
    MucDo: 4,
    NgayTiepNhan: "20230710080000",
    NgayKetThucXuLy: "20230711100000",
  };
  const body: SyncBody = { service: "DongBoHoSoMC", data: [record] };
  const answer = ok(await syncDvcqgRecords({ body }), "sync dvcqg");
  const statuses = answer.results.map((result) => result.status);
  expect(statuses.join() === "created", `the record was answered ${statuses.join(", ")}`);
}

async function propose(): Promise<void> {
  const proposal: SimplifyProposalCreate = {
    kind: "simplify",
    procedure_code: PROCEDURE,
    level: "province",
    unit_code: UNIT,
    title: "Rút ngắn thời hạn",
    rationale: "Kiểm tra kiểu của `change`",
    change: { processing_time: { value: 3, unit: "working_days" } },
  };
  const made = ok(await createProposal({ body: proposal }), "create proposal");
  expect(made.kind === "simplify", `a ${made.kind} proposal came back`);
  const typed: Exactly<typeof made.change, Simplification> = true;
  const time = made.change.processing_time;
  expect(typed && time?.value === 3, `the change came back as ${JSON.stringify(made.change)}`);
}

async function readStatistics(): Promise<void> {
  const query = { unit: UNIT, period: PERIOD };
  const stats = ok(await getDossierStats({ query }), "stats");
  const { counts, rates } = stats.total;
  const count: Exactly<typeof counts.received, number> = true;
  const rate: Exactly<typeof rates.on_time, number | null> = true;
  expect(count && rate && counts.received === 3, `received ${counts.received}, not 3`);
  expect(counts.resolved === 2 && counts.in_progress === 1, `counts ${JSON.stringify(counts)}`);
  expect(counts.online_full === 3 && rates.online === 100, `online ${counts.online_full}, ${rates.online}`);
  const proposals = ok(await getProposalStats({ query }), "proposal stats");
  const proposed: Exactly<typeof proposals.total.counts.count, number> = true;
  expect(proposed && proposals.total.counts.count === 0, "no proposal was submitted in the period");
}

await setUp();
await sendEvents();
await sendRecord();
await propose();
await readStatistics();
console.log("hey-api/check.ts: the @hey-api/openapi-ts SDK sent and read every typed payload");
