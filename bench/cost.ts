/**
 * bench/cost — what a message costs on Cloudflare, counted where it happens, priced at seed 004's
 * load (1×, 10×, 100×) beside AWS IoT Core for the same load. docs/cost.md explains every figure.
 *
 * Starts a real local edge (scripts/lib/local-edge.ts, its own dev registry, metrics flushed at
 * once, every consumer's batch wait capped at 1 s so that each measurement can wait for idle),
 * registers seed 004's fleet, 2 alert rules and 1 automation. What a message costs depends on its
 * rate (a twin packs what arrives within a queue's pack window, a consumer batch takes what
 * arrives together), so each load is measured AT ITS OWN RATES: for each transport (HTTPS single,
 * HTTPS batch, MQTT QoS 0 and 1 over WebSocket, the agent's batch route) and each load, two
 * fresh energy meters (97 % of seed 004's messages) send at that load's per-device rate
 * (bench/lib/cost-pace.ts: as real devices and the agent send) for a window of several pack
 * windows; the other kinds, slower than one message per pack window at every load, are measured
 * once per transport with every message its own pack. After each measurement the bench waits
 * until the edge is idle and reads the billable counters' deltas (shared/billing.ts) straight from
 * the local D1 file, so reading them costs nothing. The archive queues' 30 s packs cannot form in
 * a short window: what a window leaves in them is priced by arithmetic (docs/cost.md). Ops per
 * accepted message AT EACH LOAD × seed 004's mix at that load → its month, priced with
 * shared/billing-prices.ts.
 *
 *   node bench/cost.ts [--quick] [--json] [--markdown] [--loads 1x,10x,100x] [--transports a,b] [--kinds a,b]
 *                      [--live-pack-ms N] [--verbose]
 *
 * `--json` prints ONE JSON object (per transport: monthly_usd, base_usd, aws_iot_usd for 1x,
 * 10x, 100x, ops_per_message by kind at 1×, ops_per_message_by_load, the top cost lines, storage).
 * It exits 1 when a message was refused or not accepted (then the figures measure something else).
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
  type Device,
  Fleet,
  KINDS,
  type Kind,
  LOADS,
  type Load,
  READINGS,
  SEED_004_DEVICES,
  SEED_004_PER_DAY,
  SEED_004_RATE,
  TRANSPORTS,
  type Transport,
} from "./lib/cost-load.ts";
import { type Paced, pace } from "./lib/cost-pace.ts";
import {
  ARCHIVE,
  ARCHIVE_QUEUES,
  ARCHIVE_R2,
  archiveEnvelope,
  archivePack,
  BENCH_ARCHIVE_SECONDS,
  type Measured,
  perMessage,
  shown,
} from "./lib/cost-price.ts";
import { type Counters, delta, EdgeCounters, envelopeBytes, waitIdle } from "./lib/counters.ts";
import { markdownTable, textTable } from "./lib/table.ts";

const { values } = parseArgs({
  options: {
    quick: { type: "boolean" },
    json: { type: "boolean" },
    markdown: { type: "boolean" },
    loads: { type: "string" },
    transports: { type: "string" },
    kinds: { type: "string" },
    verbose: { type: "boolean" },
    "live-pack-ms": { type: "string" },
  },
});
/** --transports, --kinds and --loads measure a part (the CI smoke run); a month is priced only with every kind and load. */
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
const LOAD_NAMES = Object.keys(LOADS) as Load[];
const RUN_TRANSPORTS = pickList(TRANSPORTS, values.transports);
const RUN_KINDS = pickList(KINDS, values.kinds);
const RUN_LOADS = pickList(LOAD_NAMES, values.loads);
const QUICK = values.quick || process.env.BENCH_QUICK === "1";
/**
 * Seconds each meter window lasts: ≥ 12 live pack windows (250 ms), many consumer batches. What
 * a window leaves in the twins' archive packs is priced by arithmetic (archivePack).
 */
const LIVE_PACK_S = values["live-pack-ms"] ? Number(values["live-pack-ms"]) / 1000 : 0.25;
const WINDOW_S = Object.fromEntries(
  Object.entries(QUICK ? { "1x": 8, "10x": 3, "100x": 2 } : { "1x": 20, "10x": 10, "100x": 5 }).map(([load, s]) => [
    load,
    // A longer live pack window (--live-pack-ms) needs a window of at least two of its packs.
    Math.max(s, Math.ceil(2 * LIVE_PACK_S + 1)),
  ]),
) as Record<Load, number>;
/**
 * The other kinds (temperature, heat pump, event) send one message per device every 400 ms: more
 * than a live pack window apart, so each is its own pack and request, as at every load of seed
 * 004 (the fastest, the heat pump at 100×, sends every 300 ms; a temperature sensor every 3 s).
 */
const SPARSE_RATE = 2.5;
const SPARSE_PER_DEVICE: Record<Exclude<Kind, "meter">, number> = QUICK
  ? { temperature: 1, heatpump: 2, event: 2 }
  : { temperature: 4, heatpump: 10, event: 10 };
const say = (line: string) => {
  if (!values.json) console.log(line);
  else process.stderr.write(`${line}\n`);
};

/** wrangler.toml with every consumer taking what is there at once (the archive queues wait 30 s: their batches are priced by arithmetic). */
function benchConfig(): string {
  const text = readFileSync(join(PROJECT_ROOT, "wrangler.toml"), "utf8").replace(/max_batch_timeout\s*=\s*(\d+)/g, "max_batch_timeout = 0");
  const path = join(PROJECT_ROOT, `.bench-cost-${process.pid}.wrangler.toml`);
  writeFileSync(path, text);
  return path;
}

// A private dev registry: this edge's queues must not deliver into another local edge's consumers.
const registry = mkdtempSync(join(tmpdir(), "bench-cost-registry-"));
process.env.WRANGLER_REGISTRY_PATH = registry;
const config = benchConfig();
const started = Date.now();
// The archive's packs are held for BENCH_ARCHIVE_SECONDS (longer than a run) so that no window's
// archive pack is sent during a later window: they go when a twin holds 100 (as at 10× and 100×
// deployed), and the rest is priced by arithmetic (archivePack).
const edge = await startLocalEdge({
  config,
  migrate: true,
  vars: {
    METRICS_FLUSH_SECONDS: "0",
    ARCHIVE_PACK_SECONDS: String(BENCH_ARCHIVE_SECONDS),
    // A bench device waits minutes for its window; deployed, seed 004's devices never fall silent
    // long enough to go stale (a twin's availability event flushes every pack it holds).
    AVAILABILITY_MAINS_STALE_SECONDS: "86400",
    AVAILABILITY_MAINS_OFFLINE_SECONDS: "604800",
    AVAILABILITY_BATTERY_STALE_SECONDS: "604800",
    AVAILABILITY_BATTERY_OFFLINE_SECONDS: "2592000",
    // The live queues' pack window where the twin reads it (LIVE_PACK_MS, docs/configuration.md); unset: the default.
    ...(values["live-pack-ms"] && { LIVE_PACK_MS: values["live-pack-ms"] }),
  },
  verbose: values.verbose,
});
const cleanup = async () => {
  await edge.stop();
  rmSync(config, { force: true });
  rmSync(registry, { recursive: true, force: true });
};
for (const signal of ["SIGINT", "SIGTERM"] as const) process.once(signal, () => void cleanup().then(() => process.exit(130)));

/** `transport/meter/<load>` for the paced meter windows, `transport/<kind>` for the other kinds. */
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

  // Two fresh meters per transport and load: no window's archive messages wait in a twin into another window.
  const meters = new Map<string, Device[]>();
  if (RUN_KINDS.includes("meter"))
    await Promise.all(
      RUN_TRANSPORTS.flatMap((t) =>
        RUN_LOADS.map(async (load) => {
          const id = `meter-${t}-${load}`.replaceAll("_", "-");
          meters.set(`${t}/${load}`, [await fleet.addDevice(`${id}-a`, "meter"), await fleet.addDevice(`${id}-b`, "meter")]);
        }),
      ),
    );
  const counters = new EdgeCounters(edge.persistDir);
  // Warm-up: every device's twin, room and series rows exist before anything is counted.
  await fleet.warm(
    fleet.devices.filter((d) => RUN_KINDS.includes(d.kind)),
    1,
  );
  await waitIdle(edge.url, counters);

  const measure = async (key: string, transport: Transport, devices: Device[], rate: number, perDevice: number) => {
    const before: Counters = counters.read();
    const paced = await pace(fleet, transport, devices, rate, perDevice);
    // The last packs leave their twins one live pack window after their first message.
    await new Promise((r) => setTimeout(r, LIVE_PACK_S * 1000));
    const pings = await waitIdle(edge.url, counters);
    const after = counters.read();
    const ops = delta(before.billable, after.billable);
    // The idle probes are Worker invocations of the bench's own; a probe whose count is still in
    // flight can make the difference slightly negative: never below 0.
    ops.worker_invocations = Math.max(0, (ops.worker_invocations ?? 0) - pings);
    // A consumer counts a batch's reads when it starts and its deletes when it ends: a batch that
    // straddles the window's start (the warm-up's, the window before's) puts its deletes in this
    // window without their reads. A message is deleted at most once per read, so no more deletes
    // than reads are this window's own.
    ops.queue_delete_ops = Math.min(ops.queue_delete_ops ?? 0, ops.queue_read_ops ?? 0);
    const ingest = delta(before.ingest, after.ingest);
    const sink = delta(before.sink, after.sink);
    const routed = delta(before.routed, after.routed);
    const accepted = ingest.accepted ?? 0;
    if (accepted !== paced.messages || (ingest.rejected ?? 0) > 0 || (sink.dead_lettered ?? 0) > 0)
      failed ||= `${key}: sent ${paced.messages}, accepted ${accepted}, rejected ${ingest.rejected ?? 0}, dead-lettered ${sink.dead_lettered ?? 0}`;
    // Every accepted device message goes to one archive queue.
    const archived = ARCHIVE_QUEUES.reduce((n, q) => n + (routed[q] ?? 0), 0);
    results.set(key, {
      messages: Math.max(1, accepted),
      ops,
      d1Bytes: after.d1Bytes - before.d1Bytes,
      archiveLeft: Math.max(0, accepted - archived),
      paced,
    });
    say(
      `measured ${key}: ${accepted}/${paced.messages} accepted, ${paced.requests} requests, ` +
        `${paced.seconds.toFixed(1)} s (due by ${paced.scheduled_seconds.toFixed(1)} s) (${((Date.now() - started) / 1000).toFixed(0)} s)`,
    );
  };

  for (const transport of RUN_TRANSPORTS) {
    const others = RUN_KINDS.filter((k) => k !== "meter");
    if (transport.startsWith("mqtt")) {
      // One connection per device, opened before the counting starts (connecting is not what a message costs).
      await fleet.connect([...RUN_LOADS.flatMap((l) => meters.get(`${transport}/${l}`) ?? []), ...others.flatMap((k) => fleet.of(k))]);
      await waitIdle(edge.url, counters);
    }
    for (const load of RUN_LOADS) {
      const pair = meters.get(`${transport}/${load}`);
      if (!pair) continue;
      const rate = SEED_004_RATE.meter * LOADS[load];
      await measure(`${transport}/meter/${load}`, transport, pair, rate, Math.round(rate * WINDOW_S[load]));
    }
    for (const kind of others) await measure(`${transport}/${kind}`, transport, fleet.of(kind), SPARSE_RATE, SPARSE_PER_DEVICE[kind]);
    if (transport.startsWith("mqtt")) {
      // Closing sessions is not what a message costs either.
      await fleet.disconnect();
      await waitIdle(edge.url, counters);
    }
  }
  counters.close();
  archiveEnvelope.bytes = envelopeBytes(edge.persistDir, "total_energy_kwh") ?? archiveEnvelope.bytes;
} catch (error) {
  failed ||= String((error as Error).stack ?? error);
} finally {
  await cleanup();
}

// ---- pricing ----------------------------------------------------------------------------------

const round = (n: number, digits = 2) => Number(n.toFixed(digits));

const measuredAt = (transport: Transport, kind: Kind, load: Load) =>
  results.get(kind === "meter" ? `${transport}/meter/${load}` : `${transport}/${kind}`);

interface TransportFigures {
  monthly_usd: Record<Load, number>;
  base_usd: number;
  aws_iot_usd: Record<Load, number>;
  /** At 1× (seed 004's own rates). */
  ops_per_message: Record<Kind, Record<string, number>>;
  ops_per_message_by_load: Record<Load, Record<Kind, Record<string, number>>>;
  /** The meters' windows: messages, requests, seconds, rate per device, achieved rate. */
  paced: Record<Load, Paced & { messages_per_request: number }>;
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
  if (KINDS.some((k) => LOAD_NAMES.some((l) => !measuredAt(transport, k, l)))) continue;
  const byLoad = {} as Record<Load, Record<Kind, Record<string, number>>>;
  const monthOps = {} as Record<Load, Ops>;
  const bytesPerDay = {} as Record<Load, number>;
  let readingBytes = 0;
  let readings = 0;
  const bytesPerMessage = {} as Record<Kind, number>;
  for (const load of LOAD_NAMES) {
    byLoad[load] = {} as Record<Kind, Record<string, number>>;
    const month: Ops = { ...ARCHIVE_R2 };
    bytesPerDay[load] = 0;
    for (const kind of KINDS) {
      const m = measuredAt(transport, kind, load) as Measured;
      const per = perMessage(m, kind, load);
      byLoad[load][kind] = shown(per);
      const perDay = SEED_004_PER_DAY[kind] * LOADS[load];
      for (const [k, v] of Object.entries(per)) month[k] = (month[k] ?? 0) + (v ?? 0) * perDay * 30;
      const bytes = Math.max(0, m.d1Bytes) / m.messages;
      bytesPerDay[load] += bytes * perDay;
      if (load === "1x") {
        bytesPerMessage[kind] = Math.round(bytes);
        if (READINGS[kind] > 0) {
          readingBytes += Math.max(0, m.d1Bytes);
          readings += m.messages * READINGS[kind];
        }
      }
    }
    monthOps[load] = month;
  }
  // A month of readings held at the month's end (retention and rollups not applied: docs/cost.md).
  const bill = (load: Load) => monthlyBill(monthOps[load], (bytesPerDay[load] * 30) / 1e9);
  const messagesMonth = KINDS.reduce((n, k) => n + SEED_004_PER_DAY[k] * 30, 0);
  // AWS IoT Core for the same device messages, whatever edgemesh's transport: every device
  // publishes its own messages (batching is edgemesh's feature, not the load's), as issue 13 prices it.
  const meterBytes = JSON.stringify({ payload: { total_energy_kwh: 12.45, power_kw: 3.2, voltage: 230, current: 13.9 } }).length + 60;
  const aws = (load: Load) =>
    awsIotMonthly({
      messages: messagesMonth * LOADS[load],
      publishes: messagesMonth * LOADS[load],
      publishBytes: meterBytes,
      connections: SEED_004_DEVICES * LOADS[load],
      actionsPerPublish: 2,
    });
  const top = (load: Load) =>
    bill(load)
      .lines.filter((l) => l.usd > 0)
      .slice(0, 4)
      .map((l) => ({ line: l.line, usd: round(l.usd) }));
  const perLoad = <T>(f: (load: Load) => T) => Object.fromEntries(LOAD_NAMES.map((l) => [l, f(l)])) as Record<Load, T>;
  figures[transport] = {
    monthly_usd: perLoad((l) => bill(l).monthly_usd),
    base_usd: bill("1x").base_usd,
    aws_iot_usd: perLoad(aws),
    ops_per_message: byLoad["1x"],
    ops_per_message_by_load: byLoad,
    paced: perLoad((l) => {
      const p = (measuredAt(transport, "meter", l) as Measured).paced;
      return {
        ...p,
        seconds: round(p.seconds),
        scheduled_seconds: round(p.scheduled_seconds),
        achieved_per_second: round(p.achieved_per_second, 1),
        messages_per_request: round(p.messages / Math.max(1, p.requests)),
      };
    }),
    top_cost_lines_1x: top("1x"),
    top_cost_lines_100x: top("100x"),
    storage: {
      d1_bytes_per_reading: readings > 0 ? Math.round(readingBytes / readings) : 0,
      d1_bytes_per_message: bytesPerMessage,
      d1_bytes_per_day_1x: Math.round(bytesPerDay["1x"]),
      days_until_d1_10gb_1x: round(daysUntilD1Full(bytesPerDay["1x"]), 1),
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
  window_seconds: WINDOW_S,
  live_pack_ms: values["live-pack-ms"] ? Number(values["live-pack-ms"]) : "default",
  seconds: Math.round((Date.now() - started) / 1000),
  load_1x: {
    messages_per_day: Object.values(SEED_004_PER_DAY).reduce((a, b) => a + b, 0),
    per_kind_per_day: SEED_004_PER_DAY,
    rate_per_device_per_second: SEED_004_RATE,
  },
  archive: {
    pack_seconds_deployed: ARCHIVE.windowMs / 1000,
    pack_seconds_in_bench: BENCH_ARCHIVE_SECONDS,
    envelope_bytes: archiveEnvelope.bytes,
    pack_messages: Object.fromEntries(LOAD_NAMES.map((l) => [l, Object.fromEntries(KINDS.map((k) => [k, archivePack(k, l).messages]))])),
  },
  prices: {
    as_of: PRICES_AS_OF,
    cloudflare: CLOUDFLARE_SOURCES,
    aws_iot: AWS_IOT_SOURCES,
    monthly_usd: "usage beyond Workers Paid's included quotas; base_usd (the $5 subscription) apart",
  },
  agent: AGENT,
  transports: figures,
  measured: Object.fromEntries(
    [...results].map(([key, m]) => {
      const kind = key.split("/")[1] as Kind;
      const load = (key.split("/")[2] ?? "1x") as Load;
      return [
        key,
        {
          messages: m.messages,
          ops_per_message: billedLines(perMessage(m, kind, load)),
          archive_left: m.archiveLeft,
          counted: m.ops,
          d1_bytes: m.d1Bytes,
          paced: m.paced,
        },
      ];
    }),
  ),
  ...(failed && { error: failed }),
};

if (values.json) console.log(JSON.stringify(report));
else {
  const table = values.markdown ? markdownTable : textTable;
  const usd = (n: number) => `$${n.toFixed(2)}`;
  console.log(`\nbench/cost: ${report.seconds} s, meter windows ${JSON.stringify(WINDOW_S)} s, prices as of ${PRICES_AS_OF}`);
  console.log(
    table(
      [
        { header: "transport" },
        ...LOAD_NAMES.flatMap((s) => [
          { header: `${s} Cloudflare`, align: "right" as const },
          { header: `${s} AWS IoT`, align: "right" as const },
        ]),
      ],
      Object.entries(figures).map(([t, f]) => [t, ...LOAD_NAMES.flatMap((s) => [usd(f.monthly_usd[s]), usd(f.aws_iot_usd[s])])]),
    ),
  );
  console.log("\nper accepted message at each load's rates (the other kinds: each message its own pack):");
  console.log(
    table(
      [
        { header: "transport" },
        { header: "kind" },
        { header: "load" },
        { header: "msgs/request", align: "right" },
        { header: "D1 rows written", align: "right" },
        { header: "DO rows written", align: "right" },
        { header: "queue ops", align: "right" },
        { header: "DO requests", align: "right" },
        { header: "Workers requests", align: "right" },
      ],
      [...results.keys()].flatMap((key) => {
        const [t, kind, load] = key.split("/") as [Transport, Kind, Load | undefined];
        const m = results.get(key) as Measured;
        return (load ? [load] : LOAD_NAMES).map((l) => {
          const o = shown(perMessage(m, kind, l));
          return [
            t,
            kind,
            l,
            (m.paced.messages / Math.max(1, m.paced.requests)).toFixed(1),
            ...[o.d1_rows_written, o.do_rows_written, o.queue_ops, o.do_requests, o.worker_requests].map(String),
          ];
        });
      }),
    ),
  );
  for (const [t, f] of Object.entries(figures))
    console.log(
      `${t}: top lines at 1× ${f.top_cost_lines_1x.map((l) => `${l.line} ${usd(l.usd)}`).join(", ") || "none"}; ` +
        `at 100× ${f.top_cost_lines_100x.map((l) => `${l.line} ${usd(l.usd)}`).join(", ")}; ` +
        `D1 ${f.storage.d1_bytes_per_reading} B/reading, 10 GB in ${f.storage.days_until_d1_10gb_1x} days at 1×`,
    );
  if (failed) console.error(`\nbench/cost: ${failed}`);
}
process.exit(failed ? 1 : 0);
