/**
 * bench/cost — what a message costs on Cloudflare, counted where it happens, priced at seed 004's
 * load (1×, 10×, 100×) beside AWS IoT Core for the same load. docs/cost.md explains every figure.
 *
 * Starts a real local edge (scripts/lib/local-edge.ts, its own dev registry, metrics flushed at
 * once, every consumer's batch wait capped at 1 s so that each measurement can wait for idle),
 * registers seed 004's fleet, 2 alert rules and 1 automation, then for each transport (HTTPS
 * single, HTTPS batch 100, MQTT QoS 0 and 1 over WebSocket, the agent's batch route) and each
 * message kind (meter, temperature, heat pump, event) sends N messages, waits until the edge is
 * idle and reads the billable counters' deltas (shared/billing.ts) straight from the local D1
 * file — so reading them costs nothing. Ops per accepted message × seed 004's mix → a month,
 * priced with shared/billing-prices.ts.
 *
 *   node bench/cost.ts [--quick] [--json] [--markdown] [--messages N] [--verbose]
 *
 * `--json` prints ONE JSON object (per transport: monthly_usd, base_usd, aws_iot_usd for 1x,
 * 10x, 100x, ops_per_message by kind, the top cost lines, storage). It exits 1 when a message
 * was refused or not accepted (then the figures measure something else).
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { PROJECT_ROOT, startLocalEdge } from "../scripts/lib/local-edge.ts";
import {
  AWS_IOT_SOURCES,
  awsIotMonthly,
  billedLines,
  CLOUDFLARE_SOURCES,
  daysUntilD1Full,
  monthlyBill,
  type Ops,
  PRICES_AS_OF,
} from "../shared/billing-prices.ts";
import {
  AGENT,
  Fleet,
  KINDS,
  type Kind,
  READINGS,
  SEED_004_DEVICES,
  SEED_004_PER_DAY,
  TRANSPORTS,
  type Transport,
} from "./lib/cost-load.ts";
import { type Counters, delta, EdgeCounters, waitIdle } from "./lib/counters.ts";
import { markdownTable, textTable } from "./lib/table.ts";

const { values } = parseArgs({
  options: {
    quick: { type: "boolean" },
    json: { type: "boolean" },
    markdown: { type: "boolean" },
    messages: { type: "string" },
    transports: { type: "string" },
    kinds: { type: "string" },
    verbose: { type: "boolean" },
  },
});
/** --transports a,b and --kinds a,b measure a part (the CI smoke run); a month is priced only with every kind. */
const pickList = <T extends string>(all: readonly T[], raw: string | undefined): readonly T[] => {
  if (!raw) return all;
  const picked = raw.split(",").map((s) => s.trim());
  const unknown = picked.filter((p) => !all.includes(p as T));
  if (unknown.length > 0) {
    console.error(`bench/cost: unknown ${unknown.join(", ")}; choose from ${all.join(", ")}`);
    process.exit(2);
  }
  return picked as T[];
};
const RUN_TRANSPORTS = pickList(TRANSPORTS, values.transports);
const RUN_KINDS = pickList(KINDS, values.kinds);
const QUICK = values.quick || process.env.BENCH_QUICK === "1";
/** Messages per kind and transport; batch transports send at least one full batch of 100. */
const N = Number(values.messages ?? process.env.BENCH_MESSAGES ?? (QUICK ? 20 : 200));
const SCALES = { "1x": 1, "10x": 10, "100x": 100 } as const;
const say = (line: string) => {
  if (!values.json) console.log(line);
  else process.stderr.write(`${line}\n`);
};

/** wrangler.toml with every consumer's batch wait capped at 1 s (the archive queues wait 30 s). */
function benchConfig(): string {
  const text = readFileSync(join(PROJECT_ROOT, "wrangler.toml"), "utf8").replace(
    /max_batch_timeout\s*=\s*(\d+)/g,
    (_, s: string) => `max_batch_timeout = ${Math.min(1, Number(s))}`,
  );
  const path = join(PROJECT_ROOT, `.bench-cost-${process.pid}.wrangler.toml`);
  writeFileSync(path, text);
  return path;
}

interface Measured {
  messages: number;
  ops: Record<string, number>;
  d1Bytes: number;
}

// A private dev registry: this edge's queues must not deliver into another local edge's consumers.
const registry = mkdtempSync(join(tmpdir(), "bench-cost-registry-"));
process.env.WRANGLER_REGISTRY_PATH = registry;
const config = benchConfig();
const started = Date.now();
const edge = await startLocalEdge({ config, migrate: true, vars: { METRICS_FLUSH_SECONDS: "0" }, verbose: values.verbose });
const cleanup = async () => {
  await edge.stop();
  rmSync(config, { force: true });
  rmSync(registry, { recursive: true, force: true });
};
for (const signal of ["SIGINT", "SIGTERM"] as const) process.once(signal, () => void cleanup().then(() => process.exit(130)));

const results = new Map<string, Measured>();
let failed = "";
try {
  const fleet = new Fleet(edge);
  await fleet.register();
  const rule = (name: string, metric: string, routing: string, value: number) =>
    edge.admin("POST", "/api/monitoring/alert_rules", {
      name,
      metric,
      routing_key: routing,
      condition: { type: "threshold", op: "gt", value },
      severity: "warning",
      channels: [],
    });
  for (const r of [
    await rule("meter overload", "power", "metrics.sensors.energy.#", 50_000),
    await rule("too hot", "temperature", "metrics.sensors.temperature.#", 60),
    await edge.admin("POST", "/api/automations", {
      name: "cost bench: heavy load",
      trigger: { type: "threshold", metric: "power", op: "gt", value: 60_000, routing_key: "metrics.sensors.energy.#" },
      actions: [
        { type: "publish", routing_key: "home.utility.cost-bench.state_changed", event_type: "state_changed", data: { load: "high" } },
      ],
    }),
  ])
    if (r.status !== 201) throw new Error(`configuring rules: ${r.status} ${JSON.stringify(r.body)}`);

  const counters = new EdgeCounters(edge.persistDir);
  // Warm-up: every device's twin, room and series rows exist before anything is counted.
  for (const kind of RUN_KINDS) await fleet.send("https_single", kind, fleet.of(kind).length * 2);
  await waitIdle(edge.url, counters);

  for (const transport of RUN_TRANSPORTS) {
    for (const kind of RUN_KINDS) {
      const count = transport === "https_batch" || transport === "agent_batch" ? Math.max(100, N) : N;
      if (transport.startsWith("mqtt")) {
        // Connecting is not what a message costs: the kind's connections open before the counting
        // starts (per kind: a connection idle through other kinds' measurements may be gone).
        await fleet.connect(kind);
        await waitIdle(edge.url, counters);
      }
      const before: Counters = counters.read();
      await fleet.send(transport, kind, count);
      const pings = await waitIdle(edge.url, counters);
      const after = counters.read();
      const ops = delta(before.billable, after.billable);
      // The idle probes are Worker invocations of the bench's own; a probe whose count is still in
      // flight can make the difference slightly negative: never below 0.
      ops.worker_invocations = Math.max(0, (ops.worker_invocations ?? 0) - pings);
      const ingest = delta(before.ingest, after.ingest);
      const sink = delta(before.sink, after.sink);
      const accepted = ingest.accepted ?? 0;
      if (accepted !== count || (ingest.rejected ?? 0) > 0 || (sink.dead_lettered ?? 0) > 0)
        failed ||= `${transport}/${kind}: sent ${count}, accepted ${accepted}, rejected ${ingest.rejected ?? 0}, dead-lettered ${sink.dead_lettered ?? 0}`;
      results.set(`${transport}/${kind}`, { messages: Math.max(1, accepted), ops, d1Bytes: after.d1Bytes - before.d1Bytes });
      say(`measured ${transport} ${kind}: ${accepted}/${count} accepted (${((Date.now() - started) / 1000).toFixed(0)} s)`);
      await fleet.disconnect();
    }
  }
  counters.close();
} catch (error) {
  failed ||= String((error as Error).stack ?? error);
} finally {
  await cleanup();
}

// ---- pricing ----------------------------------------------------------------------------------

const perMessage = (m: Measured): Ops => Object.fromEntries(Object.entries(m.ops).map(([k, v]) => [k, v / m.messages]));
const round = (n: number, digits = 2) => Number(n.toFixed(digits));

interface TransportFigures {
  monthly_usd: Record<keyof typeof SCALES, number>;
  base_usd: number;
  aws_iot_usd: Record<keyof typeof SCALES, number>;
  ops_per_message: Record<Kind, Record<string, number>>;
  top_cost_lines_1x: { line: string; usd: number }[];
  top_cost_lines_100x: { line: string; usd: number }[];
  storage: {
    d1_bytes_per_reading: number;
    d1_bytes_per_message: Record<Kind, number>;
    d1_bytes_per_day_1x: number;
    days_until_d1_10gb_1x: number;
  };
}

const figures: Partial<Record<Transport, TransportFigures>> = {};
for (const transport of TRANSPORTS) {
  const byKind = Object.fromEntries(KINDS.map((k) => [k, results.get(`${transport}/${k}`)])) as Record<Kind, Measured | undefined>;
  if (KINDS.some((k) => !byKind[k])) continue;
  const ops_per_message = {} as Record<Kind, Record<string, number>>;
  const monthOps: Ops = {};
  let bytesPerDay = 0;
  let readingBytes = 0;
  let readings = 0;
  const bytesPerMessage = {} as Record<Kind, number>;
  for (const kind of KINDS) {
    const m = byKind[kind] as Measured;
    const per = perMessage(m);
    const billed = billedLines(per);
    ops_per_message[kind] = {
      d1_rows_written: round(billed.d1_rows_written),
      do_rows_written: round(billed.do_rows_written),
      queue_ops: round(billed.queue_ops),
      do_requests: round(billed.do_requests),
      d1_rows_read: round(billed.d1_rows_read),
      worker_requests: round(billed.worker_requests),
      r2_ops: round(billed.r2_class_a + billed.r2_class_b),
    };
    for (const [k, v] of Object.entries(per)) monthOps[k] = (monthOps[k] ?? 0) + (v ?? 0) * SEED_004_PER_DAY[kind] * 30;
    bytesPerMessage[kind] = Math.round(Math.max(0, m.d1Bytes) / m.messages);
    bytesPerDay += bytesPerMessage[kind] * SEED_004_PER_DAY[kind];
    if (READINGS[kind] > 0) {
      readingBytes += Math.max(0, m.d1Bytes);
      readings += m.messages * READINGS[kind];
    }
  }
  const scaled = (s: number): Ops => Object.fromEntries(Object.entries(monthOps).map(([k, v]) => [k, (v ?? 0) * s]));
  // A month of readings held at the month's end (retention and rollups not applied: docs/cost.md).
  const bill = (s: number) => monthlyBill(scaled(s), (bytesPerDay * 30 * s) / 1e9);
  const messagesMonth = KINDS.reduce((n, k) => n + SEED_004_PER_DAY[k] * 30, 0);
  // AWS IoT Core for the same device messages, whatever edgemesh's transport: every device
  // publishes its own messages (batching is edgemesh's feature, not the load's), as issue 13 prices it.
  const meterBytes = JSON.stringify({ payload: { total_energy_kwh: 12.45, power_kw: 3.2, voltage: 230, current: 13.9 } }).length + 60;
  const aws = (s: number) =>
    awsIotMonthly({
      messages: messagesMonth * s,
      publishes: messagesMonth * s,
      publishBytes: meterBytes,
      connections: SEED_004_DEVICES * s,
      actionsPerPublish: 2,
    });
  const top = (s: number) =>
    bill(s)
      .lines.filter((l) => l.usd > 0)
      .slice(0, 4)
      .map((l) => ({ line: l.line, usd: round(l.usd) }));
  figures[transport] = {
    monthly_usd: { "1x": bill(1).monthly_usd, "10x": bill(10).monthly_usd, "100x": bill(100).monthly_usd },
    base_usd: bill(1).base_usd,
    aws_iot_usd: { "1x": aws(1), "10x": aws(10), "100x": aws(100) },
    ops_per_message,
    top_cost_lines_1x: top(1),
    top_cost_lines_100x: top(100),
    storage: {
      d1_bytes_per_reading: readings > 0 ? Math.round(readingBytes / readings) : 0,
      d1_bytes_per_message: bytesPerMessage,
      d1_bytes_per_day_1x: Math.round(bytesPerDay),
      days_until_d1_10gb_1x: round(daysUntilD1Full(bytesPerDay), 1),
    },
  };
}

let commit = "";
try {
  commit = execFileSync("git", ["rev-parse", "--short", "HEAD"], { cwd: PROJECT_ROOT, encoding: "utf8" }).trim();
} catch {}
const report = {
  bench: "cost",
  commit,
  date: new Date().toISOString(),
  quick: QUICK,
  messages_per_measurement: N,
  seconds: Math.round((Date.now() - started) / 1000),
  load_1x: { messages_per_day: Object.values(SEED_004_PER_DAY).reduce((a, b) => a + b, 0), per_kind_per_day: SEED_004_PER_DAY },
  prices: {
    as_of: PRICES_AS_OF,
    cloudflare: CLOUDFLARE_SOURCES,
    aws_iot: AWS_IOT_SOURCES,
    monthly_usd: "usage beyond Workers Paid's included quotas; base_usd (the $5 subscription) apart",
  },
  agent: AGENT,
  transports: figures,
  measured: Object.fromEntries(
    [...results].map(([key, m]) => [key, { messages: m.messages, ops_per_message: billedLines(perMessage(m)), d1_bytes: m.d1Bytes }]),
  ),
  ...(failed && { error: failed }),
};

if (values.json) console.log(JSON.stringify(report));
else {
  const table = values.markdown ? markdownTable : textTable;
  const usd = (n: number) => `$${n.toFixed(2)}`;
  console.log(`\nbench/cost: ${report.seconds} s, ${N} messages per kind and transport, prices as of ${PRICES_AS_OF}`);
  console.log(
    table(
      [
        { header: "transport" },
        ...Object.keys(SCALES).flatMap((s) => [
          { header: `${s} Cloudflare`, align: "right" as const },
          { header: `${s} AWS IoT`, align: "right" as const },
        ]),
      ],
      Object.entries(figures).map(([t, f]) => [
        t,
        ...(Object.keys(SCALES) as (keyof typeof SCALES)[]).flatMap((s) => [usd(f.monthly_usd[s]), usd(f.aws_iot_usd[s])]),
      ]),
    ),
  );
  console.log("\nper accepted message:");
  console.log(
    table(
      [
        { header: "transport" },
        { header: "kind" },
        { header: "D1 rows written", align: "right" },
        { header: "DO rows written", align: "right" },
        { header: "queue ops", align: "right" },
        { header: "DO requests", align: "right" },
        { header: "D1 rows read", align: "right" },
        { header: "D1 bytes", align: "right" },
      ],
      Object.entries(figures).flatMap(([t, f]) =>
        KINDS.map((k) => {
          const o = f.ops_per_message[k];
          return [
            t,
            k,
            ...[o.d1_rows_written, o.do_rows_written, o.queue_ops, o.do_requests, o.d1_rows_read].map(String),
            String(f.storage.d1_bytes_per_message[k]),
          ];
        }),
      ),
    ),
  );
  for (const [t, f] of Object.entries(figures))
    console.log(
      `${t}: top lines at 1× ${f.top_cost_lines_1x.map((l) => `${l.line} ${usd(l.usd)}`).join(", ") || "none"}; ` +
        `D1 ${f.storage.d1_bytes_per_reading} B/reading, 10 GB in ${f.storage.days_until_d1_10gb_1x} days at 1×`,
    );
  if (failed) console.error(`\nbench/cost: ${failed}`);
}
process.exit(failed ? 1 : 0);
