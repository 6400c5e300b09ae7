/**
 * A typed caller of openapi-fetch over the types openapi-typescript generates from openapi.json.
 *
 * `scripts/check-clients` compiles it with `tsc --noEmit --strict`, then runs it against a live
 * service: the batch items, the DongBoHoSoMC record, a proposal's `change` and the statistics have
 * their schemas' types, and the `Exactly` checks fail to compile if a figure turns loose (`any`).
 *
 * Usage: tsx typescript/check.ts BASE_URL API_KEY
 */
import createClient from "openapi-fetch";

import { args, type Exactly, expect, ok, PERIOD } from "../common";
import type { components, paths } from "../generated/openapi-typescript/schema";

type Schemas = components["schemas"];

// Codes of this check alone: the other clients' checks run against the same service.
const UNIT = "TS";
const PROCEDURE = "TS.000001";

const { baseUrl, key } = args("typescript/check.ts");
const headers = { Authorization: `Bearer ${key}` };
// The statistics come as JSON or as CSV (text/csv, a media type of its own): this client reads the
// JSON answers, so `data` is the JSON model alone.
const api = createClient<paths, "application/json">({ baseUrl, headers });
// The default client sees every media type an answer has: the CSV, read as text.
const anyMedia = createClient<paths>({ baseUrl, headers });

async function setUp(): Promise<void> {
  const unit: Schemas["UnitCreate"] = { code: UNIT, name: "Tỉnh kiểm tra TypeScript", level: "province" };
  ok(await api.POST("/api/v1/units", { body: unit }), "create unit");
  ok(await api.POST("/api/v1/sectors", { body: { code: "ts-check", name: "Kiểm tra" } }), "create sector");
  const procedure: Schemas["ProcedureCreate"] = {
    code: PROCEDURE,
    name: "Thủ tục kiểm tra",
    sector_code: "ts-check",
    levels: ["province"],
    channels: ["direct", "online"],
    processing_time: { value: 5, unit: "working_days" },
    online_service: "full",
    effective_from: "2020-01-01",
  };
  ok(await api.POST("/api/v1/procedures", { body: procedure }), "create procedure");
}

function received(code: string, day: string): Schemas["DossierEventIn"] {
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
  const events: Schemas["DossierEventIn"][] = [
    received("TS-1", "03"),
    received("TS-2", "05"),
    {
      event_id: "TS-1-resolved",
      dossier_code: "TS-1",
      type: "resolved",
      occurred_at: "2023-07-04T15:00:00+07:00",
    },
  ];
  const answer = ok(await api.POST("/api/v1/dossier-events/batch", { body: { events } }), "ingest");
  const statuses = answer.results.map((result) => result.status);
  expect(statuses.every((status) => status === "created"), `the batch was answered ${statuses.join(", ")}`);
}

async function sendRecord(): Promise<void> {
  const record: Schemas["PortalRecord"] = {
    MaHoSo: "TS-3",
    TrangThaiHoSo: 9,
    MaTTHC: PROCEDURE,
    DonViXuLy: UNIT,
    KenhThucHien: 2,
    MucDo: 4,
    NgayTiepNhan: "20230710080000",
    NgayKetThucXuLy: "20230711100000",
  };
  const body: Schemas["SyncBody"] = { service: "DongBoHoSoMC", data: [record] };
  const answer = ok(await api.POST("/api/v1/sync/dvcqg", { body }), "sync dvcqg");
  const statuses = answer.results.map((result) => result.status);
  expect(statuses.join() === "created", `the record was answered ${statuses.join(", ")}`);
}

async function propose(): Promise<void> {
  const proposal: Schemas["SimplifyProposalCreate"] = {
    kind: "simplify",
    procedure_code: PROCEDURE,
    level: "province",
    unit_code: UNIT,
    title: "Rút ngắn thời hạn",
    rationale: "Kiểm tra kiểu của `change`",
    change: { processing_time: { value: 3, unit: "working_days" } },
  };
  const made = ok(await api.POST("/api/v1/proposals", { body: proposal }), "create proposal");
  // The kind tells which change it is: a fee reduction's `fees` are there without a check.
  expect(made.kind === "simplify", `a ${made.kind} proposal came back`);
  const typed: Exactly<typeof made.change, Schemas["Simplification"]> = true;
  const time = made.change.processing_time;
  expect(typed && time?.value === 3, `the change came back as ${JSON.stringify(made.change)}`);
}

async function readStatistics(): Promise<void> {
  const query = { unit: UNIT, period: PERIOD };
  const stats = ok(await api.GET("/api/v1/stats/dossiers", { params: { query } }), "stats");
  const { counts, rates } = stats.total;
  const count: Exactly<typeof counts.received, number> = true;
  const rate: Exactly<typeof rates.on_time, number | null> = true;
  expect(count && rate && counts.received === 3, `received ${counts.received}, not 3`);
  expect(counts.resolved === 2 && counts.in_progress === 1, `counts ${JSON.stringify(counts)}`);
  expect(counts.online_full === 3 && rates.online === 100, `online ${counts.online_full}, ${rates.online}`);
  const proposals = ok(await api.GET("/api/v1/stats/proposals", { params: { query } }), "proposal stats");
  const proposed: Exactly<typeof proposals.total.counts.count, number> = true;
  expect(proposed && proposals.total.counts.count === 0, "no proposal was submitted in the period");
  const asCsv = { params: { query: { ...query, format: "csv" as const } }, parseAs: "text" as const };
  const csv = ok(await anyMedia.GET("/api/v1/stats/dossiers", asCsv), "stats as CSV");
  const text: Exactly<typeof csv, string> = true;
  const header = csv.split("\r\n")[0] ?? "";
  expect(text && header.endsWith("on_time_of_due"), `the CSV's header is ${header}`);
}

await setUp();
await sendEvents();
await sendRecord();
await propose();
await readStatistics();
console.log("typescript/check.ts: openapi-fetch sent and read every typed payload");
