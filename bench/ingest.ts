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
import { mkdtempSync, rmSync } from "node:fs";
import { availableParallelism, cpus, loadavg, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { type LocalEdge, PROJECT_ROOT, startLocalEdge } from "../scripts/lib/local-edge.ts";
import { goalLine } from "./lib/cpu-window.ts";
import { judgeEdgemesh, judgeReference, measure, type Row, type Scenario, type Target } from "./lib/ingest-measure.ts";
import { acceptedPerSecond, cpuBreakdown, formatCounts, MB, ratioTable, tableOf } from "./lib/ingest-report.ts";
import { procAvailable, treeUsage } from "./lib/proc.ts";
import { privateRegistry } from "./lib/registry.ts";
import { fixed } from "./lib/stats.ts";
import { markdownTable, textTable } from "./lib/table.ts";

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

  // A config edit mid-run would make wrangler dev reload; source edits still do (see measure() in bench/lib/ingest-measure.ts).
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
      const row = await measure(scenario, target, targets, settings);
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

  // Issue 13's goal: HTTPS batch-100 ≥ 0.25× the bare Worker, in messages/s.
  const batchScenario = scenarios[1] as Scenario;
  const batchRef = rows.find((r) => r.scenario === batchScenario && r.target.name === "reference");
  const batchEm = rows.find((r) => r.scenario === batchScenario && r.target.name === "edgemesh");
  if (batchRef && batchEm) {
    const em = acceptedPerSecond(batchEm);
    const ref = acceptedPerSecond(batchRef);
    console.log(
      `\n${goalLine(
        `HTTPS ${batchScenario.name} ≥ 0.25× the bare Worker${settings.batch === 100 ? "" : " (the goal is stated for batches of 100)"}`,
        em >= 0.25 * ref,
        `${fixed(em, 0)} vs ${fixed(ref, 0)} messages/s = ×${fixed(em / ref, 2)}, other CPU ${fixed(batchEm.otherCpuCores, 2)} / ${fixed(batchRef.otherCpuCores, 2)}`,
      )}`,
    );
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
