/**
 * bench/ingest — what ingesting costs on the local edge, next to a reference measured in the
 * same run.
 *
 * Starts two local edges (`wrangler dev` on workerd, through scripts/lib/local-edge.ts): edgemesh
 * itself, and the reference, a bare Worker that answers 202 and nothing else
 * (bench/reference/). From this process — separate from both edges — it posts telemetry at
 * each: (a) one reading per request, (b) batches of readings as a JSON array, every message
 * with a unique id, from a fixed number of keep-alive connections for a fixed time, after a
 * warm-up that is not counted. It prints requests, accepted messages/s, p50/p99 latency, errors,
 * memory (RSS of each edge's process tree from /proc) and CPU, and the ratio edgemesh/reference.
 *
 * It prints figures; it never fails on a figure. It exits 1 when a request failed (edgemesh
 * answering anything but 202, or accepting fewer messages than were sent), because then the
 * figures do not measure what they claim to.
 *
 *   node bench/ingest.ts [--duration-s 10] [--concurrency 8] [--batch 100] [--devices 4]
 *                        [--warmup-requests 200] [--markdown] [--verbose]
 *
 * The same settings can come from BENCH_DURATION_S, BENCH_CONCURRENCY, BENCH_BATCH,
 * BENCH_DEVICES and BENCH_WARMUP_REQUESTS; flags win. Figures are for comparing runs on one
 * machine: `wrangler dev` is not production Cloudflare (docs/benchmarks.md).
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { availableParallelism, cpus, loadavg, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { type LocalEdge, PROJECT_ROOT, startLocalEdge } from "../scripts/lib/local-edge.ts";
import { type Judgement, type LoadRequest, type LoadResponse, type LoadResult, runLoad } from "./lib/load.ts";
import { machineBusySeconds, type ProcessCpu, procAvailable, TreeSampler, treeCpuSeconds, treeUsage } from "./lib/proc.ts";
import { privateRegistry } from "./lib/registry.ts";
import { fixed, ratio, summarize } from "./lib/stats.ts";
import { type Column, markdownTable, textTable } from "./lib/table.ts";

// ---------------------------------------------------------------------------------------------
// Settings

const USAGE = `usage: node bench/ingest.ts [options]
  --duration-s <s>         measured time per scenario and target (default 10; env BENCH_DURATION_S)
  --concurrency <n>        requests in flight, one keep-alive connection each (default 8; env BENCH_CONCURRENCY)
  --batch <n>              readings per request in the batch scenario, 1-500 (default 100; env BENCH_BATCH)
  --devices <n>            devices the requests rotate over, one DeviceTwin each (default 4; env BENCH_DEVICES)
  --warmup-requests <n>    uncounted requests before each measurement, at most 3 s (default 200; env BENCH_WARMUP_REQUESTS)
  --markdown               also print the table as Markdown (for docs/benchmarks.md)
  --verbose                print the edges' own log lines to stderr`;

function parseFlags() {
  try {
    return parseArgs({ options: FLAG_OPTIONS, strict: true, allowPositionals: false }).values;
  } catch (error) {
    console.error(`bench/ingest: ${(error as Error).message}\n${USAGE}`);
    process.exit(2);
  }
}

const FLAG_OPTIONS = {
  "duration-s": { type: "string" },
  concurrency: { type: "string" },
  batch: { type: "string" },
  devices: { type: "string" },
  "warmup-requests": { type: "string" },
  markdown: { type: "boolean", default: false },
  verbose: { type: "boolean", default: false },
  quick: { type: "boolean", default: false },
  help: { type: "boolean", short: "h", default: false },
} as const;
const flags = parseFlags();
/** --quick (or BENCH_QUICK=1): the short run CI makes so the bench cannot rot. */
const QUICK = flags.quick || process.env.BENCH_QUICK === "1";
if (flags.help) {
  console.log(USAGE);
  process.exit(0);
}

function setting(flag: string | undefined, envName: string, fallback: number, min: number, max: number, integer = true): number {
  const raw = flag ?? process.env[envName];
  if (raw === undefined || raw === "") return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value < min || value > max || (integer && !Number.isInteger(value))) {
    console.error(
      `bench/ingest: ${envName.replace("BENCH_", "").toLowerCase()} must be ${integer ? "an integer " : ""}from ${min} to ${max}, not "${raw}"\n${USAGE}`,
    );
    process.exit(2);
  }
  return value;
}

const settings = {
  durationS: setting(flags["duration-s"], "BENCH_DURATION_S", QUICK ? 2 : 10, 1, 120, false),
  concurrency: setting(flags.concurrency, "BENCH_CONCURRENCY", QUICK ? 2 : 8, 1, 256),
  // edgemesh's MAX_BATCH_MESSAGES default is 500.
  batch: setting(flags.batch, "BENCH_BATCH", 100, 1, 500),
  devices: setting(flags.devices, "BENCH_DEVICES", 4, 1, 64),
  warmupRequests: setting(flags["warmup-requests"], "BENCH_WARMUP_REQUESTS", QUICK ? 20 : 200, 0, 100_000),
  warmupMaxMs: 3_000,
  /** The longest a request may take; a slower one is an error. */
  timeoutMs: QUICK ? 30_000 : 10_000,
  /** How long to wait for both edges to go quiet (queue consumers draining) before a measurement. */
  settleMaxMs: 8_000,
};

/**
 * Device rate limits high enough not to cap the benchmark: the registry's own limits
 * (DEVICE_RATE_PER_SECOND ≤ 10 000, DEVICE_RATE_BURST ≤ 100 000, shared/config.ts) — over them the
 * edge's configuration is invalid and every request fails.
 */
const RATE = { per_second: 10_000, burst: 100_000 };

// ---------------------------------------------------------------------------------------------
// Edges

interface Target {
  name: "reference" | "edgemesh";
  edge: LocalEdge;
  /** Device credentials to rotate over (the reference ignores them). */
  tokens: string[];
  judge: (response: LoadResponse, request: LoadRequest) => Judgement;
  /** RSS of the tree right after start, before any load. */
  idleRssBytes?: number | undefined;
}

const started: { edge?: LocalEdge; persistDir: string }[] = [];
let cleaning: Promise<void> | undefined;

/** Stops every edge this run started and removes its storage folder; safe to call twice. */
function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    await Promise.allSettled(started.map((s) => s.edge?.stop()));
    for (const s of started) rmSync(s.persistDir, { recursive: true, force: true });
  })();
  return cleaning;
}

for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => {
    console.error(`\nbench/ingest: ${signal}, stopping the edges`);
    void cleanup().finally(() => process.exit(130));
  });
}

async function startEdge(kind: Target["name"]): Promise<LocalEdge> {
  const persistDir = mkdtempSync(join(tmpdir(), `edgemesh-bench-${kind}-`));
  const slot: (typeof started)[number] = { persistDir };
  started.push(slot);
  privateRegistry();
  const edge =
    kind === "reference"
      ? await startLocalEdge({
          config: resolve(PROJECT_ROOT, "bench/reference/wrangler.toml"),
          migrate: false,
          persistDir,
          verbose: flags.verbose,
        })
      : await startLocalEdge({
          persistDir,
          verbose: flags.verbose,
          vars: { DEVICE_RATE_PER_SECOND: String(RATE.per_second), DEVICE_RATE_BURST: String(RATE.burst) },
        });
  slot.edge = edge;
  return edge;
}

async function adminCall(edge: LocalEdge, method: string, path: string, body?: unknown): Promise<{ status: number; json: unknown }> {
  const res = await fetch(`${edge.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${edge.adminToken}`, "content-type": "application/json" },
    body: body === undefined ? null : JSON.stringify(body),
    signal: AbortSignal.timeout(settings.timeoutMs),
  });
  const text = await res.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = text;
  }
  return { status: res.status, json };
}

/** Creates the benchmark's devices and returns their tokens. */
async function createDevices(edge: LocalEdge, count: number): Promise<string[]> {
  const tokens: string[] = [];
  for (let i = 1; i <= count; i++) {
    const { status, json } = await adminCall(edge, "POST", "/v1/devices", {
      id: `bench-${i}`,
      type: "temperature",
      room: "lab",
      rate: RATE,
    });
    const token = (json as { token?: unknown }).token;
    if (status !== 201 || typeof token !== "string") {
      throw new Error(`creating device bench-${i} answered ${status}: ${JSON.stringify(json).slice(0, 500)}`);
    }
    tokens.push(token);
  }
  return tokens;
}

function parseJson(body: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(body);
    return typeof value === "object" && value !== null ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** edgemesh: 202 with `accepted`; anything else is an error, named by status and error code. */
function judgeEdgemesh(response: LoadResponse): Judgement {
  const body = parseJson(response.body);
  if (response.status !== 202) {
    const error = body?.error as { code?: unknown } | string | undefined;
    const code = typeof error === "object" ? error?.code : (error ?? body?.code);
    return { ok: false, error: `HTTP ${response.status}${code ? ` ${String(code)}` : ""}` };
  }
  const accepted = body?.accepted;
  if (typeof accepted !== "number") return { ok: false, error: "HTTP 202 without a numeric `accepted`" };
  const rejected = Array.isArray(body?.rejected) ? body.rejected.length : 0;
  const duplicates = typeof body?.duplicates === "number" ? body.duplicates : 0;
  return { ok: true, accepted, duplicates, rejected };
}

/** The reference accepts nothing for real: every message of a 202 answer counts as accepted. */
function judgeReference(response: LoadResponse, request: LoadRequest): Judgement {
  return response.status === 202 ? { ok: true, accepted: request.messages } : { ok: false, error: `HTTP ${response.status}` };
}

// ---------------------------------------------------------------------------------------------
// Load

interface Scenario {
  name: string;
  /** Messages per request; 1 posts a bare object, more post a JSON array. */
  messages: number;
}

const runTag = `bench-${Date.now().toString(36)}-${randomBytes(3).toString("hex")}`;
let messageSeq = 0;

function reading(timestamp: string): Record<string, unknown> {
  const n = messageSeq++;
  return { id: `${runTag}-${n}`, timestamp, payload: { temperature: 18 + (n % 80) / 10 } };
}

function requestFor(target: Target, scenario: Scenario, seq: number): LoadRequest {
  const timestamp = new Date().toISOString();
  const body =
    scenario.messages === 1
      ? JSON.stringify(reading(timestamp))
      : JSON.stringify(Array.from({ length: scenario.messages }, () => reading(timestamp)));
  const token = target.tokens[seq % target.tokens.length] ?? "none";
  return {
    path: "/v1/telemetry",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body,
    messages: scenario.messages,
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Waits until both edges are quiet (under 5 % of a core over half a second), so that one edge's
 * leftover work — edgemesh's queue consumers draining the last run — does not land in the next
 * measurement. Bounded by settings.settleMaxMs; returns how long it waited.
 */
async function settle(targets: readonly Target[]): Promise<number> {
  const begin = performance.now();
  const cpu = () => targets.reduce((sum, t) => sum + (treeCpuSeconds(t.edge.process.pid ?? 0) ?? 0), 0);
  let before = cpu();
  while (performance.now() - begin < settings.settleMaxMs) {
    await sleep(500);
    const now = cpu();
    if ((now - before) / 0.5 < 0.05) break;
    before = now;
  }
  return performance.now() - begin;
}

interface Row {
  scenario: Scenario;
  target: Target;
  result: LoadResult;
  latency: ReturnType<typeof summarize>;
  /** Peak RSS of the edge's process tree, or of the load generator when /proc is not readable. */
  rssBytes: number;
  edgeCpuCores: number;
  edgeCpuByProcess: ProcessCpu[];
  generatorCpuCores: number;
  /** CPU the edge not being measured used meanwhile, in cores. */
  idleEdgeCpuCores: number;
  /** CPU the rest of the machine used meanwhile (neither edge nor the load generator), in cores. */
  otherCpuCores: number;
  /** An edge's process tree changed during the measurement (a reload): the figures are suspect. */
  reloaded: boolean;
  settledMs: number;
}

async function measureOnce(scenario: Scenario, target: Target, all: readonly Target[]): Promise<Row> {
  const settledMs = await settle(all);
  const common = {
    url: target.edge.url,
    concurrency: settings.concurrency,
    timeoutMs: settings.timeoutMs,
    next: (seq: number) => requestFor(target, scenario, seq),
    judge: target.judge,
  };
  if (settings.warmupRequests > 0) {
    const warm = await runLoad({ ...common, durationMs: settings.warmupMaxMs, maxRequests: settings.warmupRequests });
    if (warm.errorCount > 0) {
      const first = [...warm.errors.keys()][0];
      console.error(`\n  warning: ${warm.errorCount} of ${warm.requests} warm-up requests to ${target.name} failed (${first})`);
    }
  }
  const samplers = all.map((t) => ({ target: t, sampler: new TreeSampler(t.edge.process.pid ?? 0) }));
  const cpuBefore = process.cpuUsage();
  const busyBefore = machineBusySeconds();
  const wallBefore = performance.now();
  let peakGeneratorRss = process.memoryUsage.rss();
  const rssTimer = setInterval(() => {
    peakGeneratorRss = Math.max(peakGeneratorRss, process.memoryUsage.rss());
  }, 250);
  for (const s of samplers) s.sampler.start();
  const result = await runLoad({ ...common, durationMs: settings.durationS * 1000 });
  const usages = samplers.map((s) => ({ target: s.target, usage: s.sampler.stop() }));
  const busyAfter = machineBusySeconds();
  clearInterval(rssTimer);
  const cpu = process.cpuUsage(cpuBefore);
  const wallS = (performance.now() - wallBefore) / 1000;
  const generatorCpuCores = (cpu.user + cpu.system) / 1e6 / wallS;
  const usage = usages.find((u) => u.target === target)?.usage;
  // Everything else the machine did meanwhile, besides both edges and this process.
  const ours = usages.reduce((sum, u) => sum + (u.usage?.cpuCores ?? 0), 0) + generatorCpuCores;
  const idleEdgeCpuCores = usages.filter((u) => u.target !== target).reduce((sum, u) => sum + (u.usage?.cpuCores ?? 0), 0);
  const otherCpuCores =
    busyBefore === undefined || busyAfter === undefined || !usage ? Number.NaN : Math.max(0, (busyAfter - busyBefore) / wallS - ours);
  return {
    scenario,
    target,
    result,
    latency: summarize(result.latenciesMs),
    rssBytes: usage?.peakRssBytes ?? peakGeneratorRss,
    edgeCpuCores: usage?.cpuCores ?? Number.NaN,
    edgeCpuByProcess: usage?.perProcess ?? [],
    generatorCpuCores,
    idleEdgeCpuCores,
    otherCpuCores,
    reloaded: usages.some((u) => u.usage?.changed === true),
    settledMs,
  };
}

/**
 * One measurement, taken again once if an edge reloaded during it: `wrangler dev` restarts
 * workerd when a watched source file changes (someone editing the work tree), and such a
 * measurement mixes two runtimes and a rebuild.
 */
async function measure(scenario: Scenario, target: Target, all: readonly Target[]): Promise<Row> {
  const first = await measureOnce(scenario, target, all);
  if (!first.reloaded) return first;
  process.stdout.write("an edge reloaded during the measurement (a watched file changed); measuring again… ");
  return measureOnce(scenario, target, all);
}

// ---------------------------------------------------------------------------------------------
// Report

const MB = 1024 * 1024;
const rate = (count: number, ms: number) => (ms > 0 ? (count * 1000) / ms : Number.NaN);
const acceptedPerSecond = (row: Row) => rate(row.result.messagesAccepted, row.result.elapsedMs);

function tableOf(rows: readonly Row[], rssLabel: string): { columns: Column[]; cells: string[][] } {
  const columns: Column[] = [
    { header: "scenario" },
    { header: "target" },
    { header: "requests", align: "right" },
    { header: "req/s", align: "right" },
    { header: "messages/s", align: "right" },
    { header: "p50 ms", align: "right" },
    { header: "p99 ms", align: "right" },
    { header: "errors", align: "right" },
    { header: rssLabel, align: "right" },
    { header: "edge CPU", align: "right" },
    { header: "gen CPU", align: "right" },
    { header: "other CPU", align: "right" },
  ];
  const cells = rows.map((row) => [
    row.scenario.name,
    row.reloaded ? `${row.target.name} (reloaded!)` : row.target.name,
    String(row.result.requests),
    fixed(rate(row.result.requests, row.result.elapsedMs), 0),
    fixed(acceptedPerSecond(row), 0),
    fixed(row.latency.p50, 1),
    fixed(row.latency.p99, 1),
    String(row.result.errorCount),
    fixed(row.rssBytes / MB, 0),
    fixed(row.edgeCpuCores, 2),
    fixed(row.generatorCpuCores, 2),
    fixed(row.otherCpuCores, 2),
  ]);
  return { columns, cells };
}

function ratioTable(rows: readonly Row[], scenarios: readonly Scenario[]): { columns: Column[]; cells: string[][] } {
  const columns: Column[] = [
    { header: "scenario" },
    { header: "messages/s", align: "right" },
    { header: "p50", align: "right" },
    { header: "p99", align: "right" },
    { header: "RSS", align: "right" },
  ];
  const cells: string[][] = [];
  for (const scenario of scenarios) {
    const ref = rows.find((r) => r.scenario === scenario && r.target.name === "reference");
    const em = rows.find((r) => r.scenario === scenario && r.target.name === "edgemesh");
    if (!ref || !em) continue;
    cells.push([
      scenario.name,
      ratio(acceptedPerSecond(em), acceptedPerSecond(ref)),
      ratio(em.latency.p50, ref.latency.p50),
      ratio(em.latency.p99, ref.latency.p99),
      ratio(em.rssBytes, ref.rssBytes),
    ]);
  }
  return { columns, cells };
}

/** What a process of a `wrangler dev` tree is, from its command line. */
function processLabel(commandLine: string, port: number): string {
  if (/\bworkerd\b/.test(commandLine)) {
    // wrangler dev runs two workerd: the dev proxy on the public port, and the runtime of the
    // Worker itself (with its Durable Objects, D1 and Queues) on a port of its own.
    return new RegExp(`entry=127\\.0\\.0\\.1:${port}(\\s|$)`).test(commandLine) ? "workerd (dev proxy)" : "workerd (Worker runtime)";
  }
  if (commandLine.includes("wrangler-dist/cli.js")) return "node (wrangler dev)";
  if (commandLine.includes("wrangler.js")) return "node (wrangler launcher)";
  if (commandLine.includes("esbuild")) return "esbuild";
  return commandLine.split(" ")[0]?.split("/").at(-1) ?? "?";
}

function cpuBreakdown(row: Row): string {
  const parts = row.edgeCpuByProcess
    .filter((p) => p.cpuCores >= 0.005)
    .map((p) => `${processLabel(p.commandLine, row.target.edge.port)} ${fixed(p.cpuCores, 2)}`);
  return parts.join(", ") || "-";
}

const formatCounts = (counts: Map<number | string, number>) =>
  [...counts]
    .sort((a, b) => b[1] - a[1])
    .map(([key, n]) => `${key}×${n}`)
    .join(", ") || "none";

// ---------------------------------------------------------------------------------------------
// Main

async function main(): Promise<number> {
  const t0 = performance.now();
  const cores = availableParallelism();
  console.log("bench/ingest: POST /v1/telemetry, edgemesh vs a bare 202 Worker, both under wrangler dev in this run");
  console.log(
    `  node ${process.version}, ${cores} cores (${cpus()[0]?.model.trim() ?? "unknown CPU"}), ${new Date().toISOString()}, load average ${loadavg()[0]?.toFixed(2)}\n` +
      `  ${settings.concurrency} connections, ${settings.durationS} s per measurement after ≤${settings.warmupRequests} warm-up requests, ` +
      `batches of ${settings.batch}, ${settings.devices} devices, rate limit ${RATE.per_second}/s burst ${RATE.burst} per device`,
  );

  // A config edit mid-run would make wrangler dev reload; source edits still do (see measure()).
  process.env.WRANGLER_CI_DISABLE_CONFIG_WATCHING ??= "true";
  console.log("  starting the local edges…");
  const [refStart, emStart] = await Promise.allSettled([startEdge("reference"), startEdge("edgemesh")]);
  if (refStart.status === "rejected") throw new Error(`the reference edge did not start: ${(refStart.reason as Error).message}`);
  if (emStart.status === "rejected") throw new Error(`the edgemesh edge did not start: ${(emStart.reason as Error).message}`);
  const reference: Target = {
    name: "reference",
    edge: refStart.value,
    tokens: ["reference.not-a-real-device-token"],
    judge: judgeReference,
  };
  const edgemesh: Target = { name: "edgemesh", edge: emStart.value, tokens: [], judge: judgeEdgemesh };
  const health = await adminCall(edgemesh.edge, "GET", "/v1/health");
  if (health.status !== 200) throw new Error(`edgemesh /v1/health answered ${health.status}: ${JSON.stringify(health.json)}`);
  edgemesh.tokens = await createDevices(edgemesh.edge, settings.devices);
  const targets = [reference, edgemesh];
  const withProc = procAvailable();
  for (const t of targets) t.idleRssBytes = treeUsage(t.edge.process.pid ?? 0)?.rssBytes;
  console.log(
    `  edges up in ${((performance.now() - t0) / 1000).toFixed(1)} s: reference ${reference.edge.url}, edgemesh ${edgemesh.edge.url}`,
  );

  const scenarios: Scenario[] = [
    { name: "single", messages: 1 },
    { name: `batch ${settings.batch}`, messages: settings.batch },
  ];
  const rows: Row[] = [];
  for (const scenario of scenarios) {
    for (const target of targets) {
      process.stdout.write(`  measuring ${scenario.name} → ${target.name}… `);
      const row = await measure(scenario, target, targets);
      rows.push(row);
      console.log(
        `${row.result.requests} requests, ${fixed(acceptedPerSecond(row), 0)} messages/s, p50 ${fixed(row.latency.p50, 1)} ms` +
          (row.settledMs > 1000 ? ` (waited ${fixed(row.settledMs / 1000, 1)} s for the edges to go idle first)` : ""),
      );
    }
  }

  const rssLabel = withProc ? "edge RSS MB" : "gen RSS MB";
  const table = tableOf(rows, rssLabel);
  const ratios = ratioTable(rows, scenarios);
  console.log(`\n${textTable(table.columns, table.cells)}`);
  console.log(`\nedgemesh / reference\n${textTable(ratios.columns, ratios.cells)}`);
  console.log(
    withProc
      ? `\n${rssLabel}: peak RSS summed over the edge's process tree (node running wrangler + workerd), sampled every 250 ms from /proc;` +
          ` shared pages count once per process. Idle after start: reference ${fixed((reference.idleRssBytes ?? Number.NaN) / MB, 0)} MB,` +
          ` edgemesh ${fixed((edgemesh.idleRssBytes ?? Number.NaN) / MB, 0)} MB. Load generator peak RSS ${fixed(process.memoryUsage.rss() / MB, 0)} MB.`
      : `\n${rssLabel}: /proc is not readable here, so this is the load generator's own peak RSS, not the edge's.`,
  );
  console.log(
    "edge CPU / gen CPU / other CPU: CPU time of the measured edge's process tree / of this load generator / of everything else" +
      ` on the machine but the two edges, in cores (1.00 = one core busy); the machine has ${cores}. Latency: from writing a request to reading its whole answer, ${settings.concurrency} in flight.`,
  );

  if (withProc) {
    console.log("\nedge CPU by process, in cores:");
    for (const row of rows) {
      console.log(
        `  ${row.scenario.name} → ${row.target.name}: ${cpuBreakdown(row)}; the other edge meanwhile ${fixed(row.idleEdgeCpuCores, 2)}`,
      );
    }
  }

  const busy = rows.filter((row) => row.otherCpuCores > 0.25);
  if (busy.length > 0) {
    console.log(
      `\nnote: other work on the machine took over 0.25 of a core during ${busy.map((r) => `${r.scenario.name} → ${r.target.name}`).join(", ")};` +
        " those figures are low by an unknown amount. Rerun on a quiet machine to compare.",
    );
  }

  const failedTargets = new Set<Target>();
  for (const row of rows) {
    const r = row.result;
    const short = r.messagesSent - r.messagesAccepted;
    const statuses = formatCounts(r.statuses);
    const line = `${row.scenario.name} → ${row.target.name}: statuses ${statuses}; sent ${r.messagesSent}, accepted ${r.messagesAccepted}, duplicates ${r.duplicates}, rejected ${r.rejected}`;
    const bad = r.errorCount > 0 || short > 0 || [...r.statuses.keys()].some((s) => s !== 202);
    if (bad) {
      failedTargets.add(row.target);
      console.error(`FAIL ${line}; errors: ${formatCounts(r.errors)}`);
    } else console.log(`ok   ${line}`);
  }
  if (flags.markdown) {
    console.log(`\n${markdownTable(table.columns, table.cells)}\n\nedgemesh / reference\n\n${markdownTable(ratios.columns, ratios.cells)}`);
  }
  const failed = failedTargets.size > 0;
  console.log(
    `\nbench/ingest: done in ${((performance.now() - t0) / 1000).toFixed(0)} s${failed ? "; some requests failed (above), exit 1" : ""}`,
  );
  for (const target of failedTargets) {
    const tail = target.edge.log().split("\n").slice(-30).join("\n");
    console.error(`\nlast lines of the ${target.name} edge's log:\n${tail}`);
  }
  return failed ? 1 : 0;
}

let code = 1;
try {
  code = await main();
} catch (error) {
  console.error(`bench/ingest: ${(error as Error).stack ?? error}`);
  code = 1;
} finally {
  await cleanup();
}
process.exit(code);
