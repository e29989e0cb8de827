/**
 * bench/fanout — live fan-out: how fast device posts reach 1,000 subscribed dashboard sockets,
 * next to the same posts reaching one socket, in the same run on the same local edge.
 *
 * Starts the local edge (`wrangler dev`, scripts/lib/local-edge.ts) with two devices in two rooms,
 * so each room's LiveHub has its own sockets: `bench-direct` with one subscriber and
 * `bench-fanout` with --sockets subscribers (1,000). The subscribers live in this process on
 * Node's built-in WebSocket client, connect as the dashboard does (subprotocols `edgemesh.v1`
 * and `bearer.<jwt>`), subscribe to the `twin` stream and acknowledge every 100 updates or every
 * second (bench/lib/live-clients.ts). A device posts one reading per request carrying its send
 * time (`sent_ms`, this process's clock); every socket's receipt of it is one latency sample.
 * Three measurements of --duration-s each: **direct** (one socket, --rate posts/s), **fan-out**
 * (1,000 sockets, --rate posts/s: more than the hub delivers, so it shows the ceiling) and
 * **fan-out, light** (1,000 sockets, --light-rate posts/s, within what it delivers).
 *
 * It prints, per measurement: posts and posts/s achieved, messages expected and delivered
 * (coalesced ones apart), messages/s delivered summed over sockets, p50/p90/p99/max from post
 * to receipt, the posts' own HTTP latency, and the CPU of the edge and of this process. It
 * never fails on a figure; it exits 1 when posts failed or sockets could not be opened.
 *
 *   node bench/fanout.ts [--sockets 1000] [--rate 10] [--light-rate 1] [--duration-s 10] [--markdown] [--verbose]
 *
 * Env: BENCH_SOCKETS, BENCH_RATE, BENCH_LIGHT_RATE, BENCH_DURATION_S. About a minute in all.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { availableParallelism, cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { type LocalEdge, startLocalEdge } from "../scripts/lib/local-edge.ts";
import { type LiveUpdate, now, SubscriberPool } from "./lib/live-clients.ts";
import { machineBusySeconds, TreeSampler } from "./lib/proc.ts";
import { privateRegistry } from "./lib/registry.ts";
import { fixed, ratio, summarize } from "./lib/stats.ts";
import { type Column, markdownTable, textTable } from "./lib/table.ts";

const USAGE = `usage: node bench/fanout.ts [options]
  --sockets <n>      subscribers on the fan-out hub (default 1000; env BENCH_SOCKETS)
  --rate <n>         posts per second, direct and fan-out (default 10; env BENCH_RATE)
  --light-rate <n>   posts per second of the light fan-out (default 1; env BENCH_LIGHT_RATE)
  --duration-s <s>   posting time per scenario (default 10; env BENCH_DURATION_S)
  --markdown         also print the table as Markdown (for docs/benchmarks.md)
  --verbose          print the edge's log to stderr`;

const FLAGS = {
  sockets: { type: "string" },
  rate: { type: "string" },
  "light-rate": { type: "string" },
  "duration-s": { type: "string" },
  markdown: { type: "boolean", default: false },
  verbose: { type: "boolean", default: false },
  quick: { type: "boolean", default: false },
  help: { type: "boolean", short: "h", default: false },
} as const;

function flagsOrExit() {
  try {
    return parseArgs({ options: FLAGS, strict: true, allowPositionals: false }).values;
  } catch (error) {
    console.error(`bench/fanout: ${(error as Error).message}\n${USAGE}`);
    process.exit(2);
  }
}
const flags = flagsOrExit();
if (flags.help) {
  console.log(USAGE);
  process.exit(0);
}

function setting(flag: string | undefined, env: string, fallback: number, min: number, max: number): number {
  const raw = flag ?? process.env[env];
  if (raw === undefined || raw === "") return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value < min || value > max) {
    console.error(`bench/fanout: ${env.replace("BENCH_", "").toLowerCase()} must be from ${min} to ${max}, not "${raw}"\n${USAGE}`);
    process.exit(2);
  }
  return value;
}

/** --quick (or BENCH_QUICK=1): the short run CI makes so the bench cannot rot. */
const QUICK = flags.quick || process.env.BENCH_QUICK === "1";
const settings = {
  sockets: Math.round(setting(flags.sockets, "BENCH_SOCKETS", QUICK ? 50 : 1000, 1, 5000)),
  rate: setting(flags.rate, "BENCH_RATE", 10, 0.5, 200),
  /** The fan-out hub again, at a rate well within what it delivers (1,000 messages/s at 1,000 sockets). */
  lightRate: setting(flags["light-rate"], "BENCH_LIGHT_RATE", 1, 0.2, 200),
  durationS: setting(flags["duration-s"], "BENCH_DURATION_S", QUICK ? 2 : 10, 1, 60),
  /** After the last post: wait this long at most for the last deliveries. */
  drainMs: 5_000,
  warmupPosts: 5,
};

const RATE = { per_second: 1000, burst: 10_000 };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let edge: LocalEdge | undefined;
let persistDir: string | undefined;
const pools: SubscriberPool[] = [];

async function cleanup(): Promise<void> {
  for (const pool of pools) pool.close();
  await edge?.stop();
  if (persistDir) rmSync(persistDir, { recursive: true, force: true });
}
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => {
    console.error(`\nbench/fanout: ${signal}, stopping the edge`);
    void cleanup().finally(() => process.exit(130));
  });
}

async function call(
  method: string,
  path: string,
  token: string,
  body?: unknown,
): Promise<{ status: number; json: Record<string, unknown> }> {
  if (!edge) throw new Error("no edge");
  const res = await fetch(`${edge.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: body === undefined ? null : JSON.stringify(body),
    signal: AbortSignal.timeout(15_000),
  });
  const text = await res.text();
  let json: Record<string, unknown> = {};
  try {
    json = JSON.parse(text);
  } catch {
    json = { raw: text.slice(0, 300) };
  }
  return { status: res.status, json };
}

interface Hub {
  room: string;
  device: string;
  sockets: number;
  deviceToken: string;
  pool?: SubscriberPool;
  openMs: number;
  /** Where the pool's updates go during a measurement. */
  sink?: (update: LiveUpdate, receivedAt: number, coalesced: boolean) => void;
}

interface Scenario {
  name: string;
  hub: Hub;
  rate: number;
}

interface Row {
  scenario: Scenario;
  posts: number;
  postErrors: number;
  expected: number;
  delivered: number;
  coalesced: number;
  elapsedMs: number;
  latency: ReturnType<typeof summarize>;
  postLatency: ReturnType<typeof summarize>;
  edgeCpu: number;
  genCpu: number;
  /** Everything else the machine did meanwhile, in cores: above ~0.25 the figures are low. */
  otherCpu: number;
}

async function openHub(hub: Hub, accessToken: string): Promise<void> {
  if (!edge) throw new Error("no edge");
  const pool = new SubscriberPool({
    url: `${edge.url.replace("http:", "ws:")}/v1/live`,
    hub: hub.room,
    token: accessToken,
    count: hub.sockets,
    onUpdate: (update, receivedAt, coalesced) => hub.sink?.(update, receivedAt, coalesced),
  });
  pools.push(pool);
  process.stdout.write(`  opening ${hub.sockets} socket${hub.sockets === 1 ? "" : "s"} on hub ${hub.room}… `);
  const began = now();
  await pool.open(90_000);
  hub.openMs = now() - began;
  hub.pool = pool;
  console.log(`${fixed(hub.openMs / 1000, 1)} s`);
}

async function post(hub: Hub, seq: number): Promise<{ ok: boolean; ms: number }> {
  const began = now();
  const { status } = await call("POST", "/v1/telemetry", hub.deviceToken, { payload: { bench_seq: seq, sent_ms: began } });
  return { ok: status === 202, ms: now() - began };
}

async function measure(scenario: Scenario): Promise<Row> {
  if (!edge) throw new Error("no edge");
  const { hub, rate } = scenario;
  const latencies: number[] = [];
  let delivered = 0;
  let coalesced = 0;
  let lastReceipt = 0;
  process.stdout.write(`  measuring ${scenario.name}… `);
  for (let i = 0; i < settings.warmupPosts; i++) await post(hub, -1 - i);
  await sleep(500);
  hub.sink = (update, receivedAt, isCoalesced) => {
    if (update.device !== hub.device) return;
    const sent = (update.data.readings as Record<string, { value?: number }> | undefined)?.sent_ms?.value;
    if (typeof sent !== "number") return;
    if (isCoalesced) coalesced++;
    else delivered++;
    latencies.push(receivedAt - sent);
    lastReceipt = receivedAt;
  };

  const postLatencies: number[] = [];
  let postErrors = 0;
  let posts = 0;
  const interval = 1000 / rate;
  const sampler = new TreeSampler(edge.process.pid ?? 0);
  const cpuBefore = process.cpuUsage();
  const busyBefore = machineBusySeconds();
  const began = now();
  const stopAt = began + settings.durationS * 1000;
  sampler.start();
  // At the set rate for the set time, one post in flight at a time so readings stay in order: a
  // post slower than the interval delays the next, and fewer posts go out (the table says so).
  for (let i = 0; ; i++) {
    const due = began + i * interval;
    if (due >= stopAt || now() >= stopAt) break;
    const wait = due - now();
    if (wait > 0) await sleep(wait);
    const result = await post(hub, i);
    posts++;
    postLatencies.push(result.ms);
    if (!result.ok) postErrors++;
  }
  const expected = (posts - postErrors) * hub.sockets;
  const drainUntil = now() + settings.drainMs;
  while (delivered + coalesced < expected && now() < drainUntil) await sleep(50);
  const edgeUsage = sampler.stop();
  const cpu = process.cpuUsage(cpuBefore);
  const busyAfter = machineBusySeconds();
  const wallS = (now() - began) / 1000;
  const edgeCpu = edgeUsage?.cpuCores ?? Number.NaN;
  const genCpu = (cpu.user + cpu.system) / 1e6 / wallS;
  const otherCpu =
    busyBefore === undefined || busyAfter === undefined ? Number.NaN : Math.max(0, (busyAfter - busyBefore) / wallS - edgeCpu - genCpu);
  hub.sink = undefined;
  const elapsedMs = Math.max(1, (lastReceipt || now()) - began);
  console.log(`${posts} posts, ${delivered + coalesced} of ${expected} messages delivered`);
  return {
    scenario,
    posts,
    postErrors,
    expected,
    delivered,
    coalesced,
    elapsedMs,
    latency: summarize(latencies),
    postLatency: summarize(postLatencies),
    edgeCpu,
    genCpu,
    otherCpu,
  };
}

async function main(): Promise<number> {
  const started = now();
  console.log("bench/fanout: device post → live update on N subscribed sockets, beside one socket, on one local edge");
  console.log(
    `  node ${process.version}, ${availableParallelism()} cores (${cpus()[0]?.model.trim() ?? "unknown CPU"}), ${new Date().toISOString()}, load average ${loadavg()[0]?.toFixed(2)}\n` +
      `  ${settings.rate} posts/s for ${settings.durationS} s per scenario, ${settings.sockets} sockets on the fan-out hub`,
  );
  process.env.WRANGLER_CI_DISABLE_CONFIG_WATCHING ??= "true";
  persistDir = mkdtempSync(join(tmpdir(), "edgemesh-bench-fanout-"));
  privateRegistry();
  edge = await startLocalEdge({ persistDir, verbose: flags.verbose });
  const adminToken = edge.adminToken;
  const direct: Hub = { room: "bench-direct", device: "fanout-direct", sockets: 1, deviceToken: "", openMs: 0 };
  const fan: Hub = { room: "bench-fanout", device: "fanout-many", sockets: settings.sockets, deviceToken: "", openMs: 0 };
  for (const hub of [direct, fan]) {
    const { status, json } = await call("POST", "/v1/devices", adminToken, {
      id: hub.device,
      type: "temperature",
      room: hub.room,
      rate: RATE,
    });
    if (status !== 201) throw new Error(`creating ${hub.device} answered ${status}: ${JSON.stringify(json)}`);
    hub.deviceToken = String(json.token);
  }
  const login = await call("POST", "/v1/auth/token", "", { grant_type: "admin_token", admin_token: adminToken });
  if (login.status !== 200 || typeof login.json.access_token !== "string")
    throw new Error(`POST /v1/auth/token answered ${login.status}: ${JSON.stringify(login.json)}`);
  const accessToken = login.json.access_token;
  console.log(`  edge up in ${fixed((now() - started) / 1000, 1)} s at ${edge.url}`);
  await openHub(direct, accessToken);
  await openHub(fan, accessToken);

  const scenarios: Scenario[] = [
    { name: "direct", hub: direct, rate: settings.rate },
    { name: "fan-out", hub: fan, rate: settings.rate },
    { name: "fan-out, light", hub: fan, rate: settings.lightRate },
  ];
  const rows: Row[] = [];
  for (const s of scenarios) rows.push(await measure(s));

  const columns: Column[] = [
    { header: "scenario" },
    { header: "sockets", align: "right" },
    { header: "posts", align: "right" },
    { header: "posts/s", align: "right" },
    { header: "delivered", align: "right" },
    { header: "coalesced", align: "right" },
    { header: "messages/s", align: "right" },
    { header: "p50 ms", align: "right" },
    { header: "p90 ms", align: "right" },
    { header: "p99 ms", align: "right" },
    { header: "max ms", align: "right" },
    { header: "post p50 ms", align: "right" },
    { header: "edge CPU", align: "right" },
    { header: "gen CPU", align: "right" },
    { header: "other CPU", align: "right" },
  ];
  const perSecond = (r: Row) => ((r.delivered + r.coalesced) * 1000) / r.elapsedMs;
  const cells = rows.map((r) => [
    r.scenario.name,
    String(r.scenario.hub.sockets),
    String(r.posts - r.postErrors),
    fixed(r.posts / settings.durationS, 1),
    `${r.delivered + r.coalesced} / ${r.expected}`,
    String(r.coalesced),
    fixed(perSecond(r), 0),
    fixed(r.latency.p50, 1),
    fixed(r.latency.p90, 1),
    fixed(r.latency.p99, 1),
    fixed(r.latency.max, 1),
    fixed(r.postLatency.p50, 1),
    fixed(r.edgeCpu, 2),
    fixed(r.genCpu, 2),
    fixed(r.otherCpu, 2),
  ]);
  console.log(`\n${textTable(columns, cells)}`);
  const [d, full, light] = rows;
  if (d && light && full) {
    console.log(
      `\n  fan-out / direct: messages/s ${ratio(perSecond(full), perSecond(d))}, p50 ${ratio(full.latency.p50, d.latency.p50)}, p99 ${ratio(full.latency.p99, d.latency.p99)}` +
        `; light fan-out / direct: p50 ${ratio(light.latency.p50, d.latency.p50)}, p99 ${ratio(light.latency.p99, d.latency.p99)}`,
    );
  }
  for (const hub of [direct, fan]) {
    const closes = [...(hub.pool?.closes ?? [])].map(([code, n]) => `${code}×${n}`).join(", ");
    console.log(
      `  hub ${hub.room}: ${hub.sockets} socket${hub.sockets === 1 ? "" : "s"} opened in ${fixed(hub.openMs / 1000, 1)} s; ` +
        `closed by the edge: ${closes || "none"}; socket errors: ${hub.pool?.errors ?? 0}`,
    );
  }
  if (rows.some((r) => r.otherCpu > 0.25))
    console.log(
      "  note: other processes used more than a quarter of a core during a measurement; its figures are low by an unknown amount",
    );
  if (flags.markdown) console.log(`\n${markdownTable(columns, cells)}`);
  console.log(`\n  run took ${fixed((now() - started) / 1000, 0)} s`);
  const failed = rows.some((r) => r.postErrors > 0);
  if (failed) console.error("bench/fanout: some posts failed; the figures do not measure what they claim to");
  return failed ? 1 : 0;
}

let code = 1;
try {
  code = await main();
} catch (error) {
  console.error(`bench/fanout: ${(error as Error).message}`);
  if (flags.verbose && edge) console.error(edge.log());
} finally {
  await cleanup();
}
process.exit(code);
