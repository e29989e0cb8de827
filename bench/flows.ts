/**
 * bench/flows — the latency of seed 000's flows on the local edge, each beside a reference run in
 * the same process:
 *
 * - trigger → command: a device posts a `home.*.*.trigger` event; an automation commands a lamp;
 *   measured until the lamp's long poll receives the command. Reference: the same command sent
 *   by an operator through the API (the command path without queues and automation).
 * - anomaly → alert notification: a spike after a steady series; an anomaly rule raises the alert
 *   and the notifier POSTs it to a local webhook; measured until the webhook receives it.
 *   Reference: a threshold rule on the same pipeline (everything but the detector).
 * - inference: `POST /v1/ai/infer` uncached (new inputs each time, answered by MLServer) and
 *   cached (one input, answered by the cache: Redis behind the Upstash REST adapter when
 *   redis-server is installed, else D1). Reference: the same request straight to MLServer.
 *
 *   node bench/flows.ts [--rounds 30] [--markdown]
 *
 * Needs MLServer (bash scripts/install-mlserver.sh) for the inference part; without it, that part
 * is left out, said loudly. It prints figures and never fails on one; it exits 1 when a flow did
 * not complete. `wrangler dev` is not production Cloudflare: compare figures from one machine.
 */
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { availableParallelism } from "node:os";
import { parseArgs } from "node:util";
import { type LocalEdge, startLocalEdge } from "../scripts/lib/local-edge.ts";
import { findMlserver, type ModelServer, startMlserver } from "../scripts/lib/mlserver.ts";
import { findRedisServer, type RedisServer, startRedis, startUpstashRest, type UpstashRest } from "../scripts/lib/upstash-rest.ts";
import { gaussian, seededRandom } from "../shared/random.ts";
import { type CpuFigures, cpuCells, cpuWindow } from "./lib/cpu-window.ts";
import { privateRegistry } from "./lib/registry.ts";
import { summarize } from "./lib/stats.ts";

const { values } = parseArgs({ options: { rounds: { type: "string" }, markdown: { type: "boolean" }, quick: { type: "boolean" } } });
/** --quick (or BENCH_QUICK=1): the short run CI makes so the bench cannot rot. */
const QUICK = values.quick || process.env.BENCH_QUICK === "1";
const ROUNDS = Number(values.rounds ?? process.env.BENCH_ROUNDS ?? (QUICK ? 3 : 30));

interface Row {
  flow: string;
  target: string;
  n: number;
  p50: number;
  p99: number;
  max: number;
  /** CPU over the flow's rounds (a flow's rows interleave, so both share it). */
  cpu?: CpuFigures;
}

function row(flow: string, target: string, samples: number[], cpu?: CpuFigures): Row {
  const { count, p50, p99, max } = summarize(samples);
  return { flow, target, n: count, p50, p99, max, cpu };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
let incomplete = 0;

async function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => {
      console.error(`bench/flows: ${what} did not complete within ${ms} ms`);
      incomplete++;
      resolve(undefined);
    }, ms);
  });
  const result = await Promise.race([promise, timeout]);
  clearTimeout(timer);
  return result;
}

// ── The webhook receiver the notifier posts to ─────────────────────────────────────────────
const waiting = new Map<string, (at: number) => void>();
const receiver = createServer((req, res) => {
  let body = "";
  req.on("data", (c: Buffer) => {
    body += c;
  });
  req.on("end", () => {
    const at = performance.now();
    res.writeHead(200).end("{}");
    try {
      const { alert } = JSON.parse(body) as { alert: { device: string; status: string } };
      if (alert.status === "active") waiting.get(alert.device)?.(at);
    } catch {}
  });
});
await new Promise<void>((r) => receiver.listen(0, "127.0.0.1", r));
const hook = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`;

// ── Services ───────────────────────────────────────────────────────────────────────────────
const mlRoot = findMlserver();
if (!mlRoot)
  console.warn("\n*** bench/flows: MLServer is not installed (bash scripts/install-mlserver.sh): the inference part is LEFT OUT ***\n");
let model: ModelServer | undefined;
let redis: RedisServer | undefined;
let rest: UpstashRest | undefined;
if (mlRoot) model = await startMlserver(mlRoot);
if (findRedisServer()) {
  redis = await startRedis();
  rest = await startUpstashRest(redis.url);
} else console.warn("bench/flows: no redis-server; the inference cache is the embedded D1 one");
const vars: Record<string, string> = {};
if (model) vars.AI_MODEL_URL = model.url;
if (rest) Object.assign(vars, { UPSTASH_REDIS_REST_URL: rest.url, UPSTASH_REDIS_REST_TOKEN: rest.token });
const started = Date.now();
privateRegistry();
const edge: LocalEdge = await startLocalEdge({ vars });
const rows: Row[] = [];
// Interrupted: stop the services this run started (they run in process groups of their own).
for (const signal of ["SIGINT", "SIGTERM"] as const)
  process.once(signal, () => {
    void Promise.allSettled([edge.stop(), model?.stop(), rest?.stop(), redis?.stop()]).then(() => process.exit(130));
  });

async function device(id: string, type: string, room: string): Promise<string> {
  const res = await edge.admin<{ token: string }>("POST", "/v1/devices", { id, type, room });
  if (res.status !== 201) throw new Error(`device ${id}: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body.token;
}

async function send(path: string, token: string, body: unknown): Promise<void> {
  const res = await fetch(`${edge.url}${path}`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  if (res.status !== 202) throw new Error(`${path}: ${res.status} ${await res.text()}`);
}

/** The lamp's long poll: resolves with the time the first command arrives. */
async function nextCommand(token: string): Promise<number> {
  for (;;) {
    const res = await fetch(`${edge.url}/v1/device/commands?wait_s=10`, { headers: { authorization: `Bearer ${token}` } });
    const body = (await res.json()) as { commands: unknown[] };
    if (body.commands.length > 0) return performance.now();
  }
}

try {
  // ── trigger → command ──────────────────────────────────────────────────────────────────────
  const button = await device("bench-button", "switch", "benchhall");
  const lampToken = await device("bench-lamp", "light", "benchhall");
  await edge.admin("POST", "/api/automations", {
    name: "bench: button → lamp",
    trigger: { type: "event", routing_key: "home.benchhall.bench-button.trigger" },
    actions: [{ type: "command", device: "bench-lamp", command: "toggle" }],
  });
  const viaAutomation: number[] = [];
  const viaApi: number[] = [];
  let window = cpuWindow([edge.process.pid]);
  for (let i = 0; i < ROUNDS; i++) {
    const received = nextCommand(lampToken);
    await sleep(20);
    const t0 = performance.now();
    await send("/v1/events", button, { payload: { event_type: "trigger", reason: `round ${i}` } });
    const at = await withTimeout(received, 15_000, "trigger → command");
    if (at) viaAutomation.push(at - t0);

    const direct = nextCommand(lampToken);
    await sleep(20);
    const t1 = performance.now();
    await edge.admin("POST", "/v1/devices/bench-lamp/commands", { command: "toggle" });
    const at2 = await withTimeout(direct, 15_000, "API command");
    if (at2) viaApi.push(at2 - t1);
  }
  let cpu = window.stop();
  rows.push(row("trigger → command", "event → automation → lamp's long poll", viaAutomation, cpu));
  rows.push(row("trigger → command", "reference: operator API command → long poll", viaApi, cpu));

  // ── anomaly → alert notification ───────────────────────────────────────────────────────────
  const meter = await device("bench-meter", "energy", "benchhall");
  const gauge = await device("bench-gauge", "energy", "benchhall");
  await edge.admin("POST", "/api/monitoring/alert_rules", {
    name: "bench: power anomaly",
    metric: "power",
    device: "bench-meter",
    condition: { type: "anomaly", score: 8, window: 60, min_samples: 20 },
    severity: "critical",
    channels: [{ type: "webhook", url: hook }],
  });
  await edge.admin("POST", "/api/monitoring/alert_rules", {
    name: "bench: power threshold",
    metric: "power",
    device: "bench-gauge",
    condition: { type: "threshold", op: "gt", value: 1000 },
    severity: "critical",
    channels: [{ type: "webhook", url: hook }],
  });
  // A noisy but steady load (σ = 2 W around 100 W), as a real meter reports.
  const random = seededRandom(42);
  const normal = () => Math.round((100 + 2 * gaussian(random)) * 10) / 10;
  for (let i = 0; i < 40; i++) await send("/v1/telemetry", meter, { payload: { power: normal() } });
  await sleep(3000);
  /** A round starts with no active alert on the device: a spike must raise a new one. */
  const quiet = async (id: string) => {
    for (let k = 0; k < 100; k++) {
      const { body } = await edge.admin<{ alerts: unknown[] }>("GET", `/api/monitoring/alerts?device=${id}&status=active`);
      if (body.alerts.length === 0) return;
      await sleep(200);
    }
  };
  const anomaly: number[] = [];
  const threshold: number[] = [];
  const measure = async (id: string, token: string, spike: number, into: number[]) => {
    await quiet(id);
    const heard = new Promise<number>((resolve) => waiting.set(id, resolve));
    const t0 = performance.now();
    await send("/v1/telemetry", token, { payload: { power: spike } });
    const at = await withTimeout(heard, 20_000, `${id} alert notification`);
    waiting.delete(id);
    if (!at) console.error(JSON.stringify((await edge.admin("GET", `/api/monitoring/alerts?device=${id}&limit=2`)).body).slice(0, 1500));
    if (at) into.push(at - t0);
    // Back to normal: the alert clears before the next round.
    for (let k = 0; k < 3; k++) await send("/v1/telemetry", token, { payload: { power: normal() } });
  };
  window = cpuWindow([edge.process.pid]);
  for (let i = 0; i < Math.min(ROUNDS, 15); i++) {
    await measure("bench-meter", meter, 5000, anomaly);
    await measure("bench-gauge", gauge, 5000, threshold);
  }
  cpu = window.stop();
  rows.push(row("anomaly → notification", "spike → anomaly rule → webhook", anomaly, cpu));
  rows.push(row("anomaly → notification", "reference: threshold rule → webhook", threshold, cpu));

  // ── inference ──────────────────────────────────────────────────────────────────────────────
  if (model) {
    const ask = (t: number) => ({ model: "too-hot", inputs: [{ name: "readings", shape: [1, 2], datatype: "FP64", data: [t, 20] }] });
    const timed = async (f: () => Promise<Response>) => {
      const t0 = performance.now();
      const res = await f();
      await res.text();
      if (!res.ok) incomplete++;
      return performance.now() - t0;
    };
    const post = (body: unknown) => () =>
      fetch(`${edge.url}/v1/ai/infer`, {
        method: "POST",
        headers: { authorization: `Bearer ${edge.adminToken}`, "content-type": "application/json" },
        body: JSON.stringify(body),
      });
    const uncached: number[] = [];
    const cached: number[] = [];
    const direct: number[] = [];
    await timed(post(ask(30)));
    const inferWindow = cpuWindow([edge.process.pid]);
    for (let i = 0; i < ROUNDS; i++) {
      uncached.push(await timed(post(ask(10 + Math.random() * 30))));
      cached.push(await timed(post(ask(30))));
      direct.push(
        await timed(() =>
          fetch(`${model?.url}/v2/models/too-hot/infer`, {
            method: "POST",
            headers: { "content-type": "application/json" },
            body: JSON.stringify({ inputs: ask(Math.random() * 40).inputs }),
          }),
        ),
      );
    }
    const inferCpu = inferWindow.stop();
    rows.push(row("inference", "uncached: edge → MLServer (KServe v2)", uncached, inferCpu));
    rows.push(row("inference", `cached: edge → ${rest ? "Redis via Upstash REST" : "D1"}`, cached, inferCpu));
    rows.push(row("inference", "reference: straight to MLServer", direct, inferCpu));
  }
} finally {
  await edge.stop();
  await model?.stop();
  await rest?.stop();
  await redis?.stop();
  receiver.close();
}

const ms = (v: number) => (Number.isFinite(v) ? v.toFixed(1) : "–");
const context = `node ${process.version}, ${availableParallelism()} cores, ${ROUNDS} rounds, run took ${Math.round((Date.now() - started) / 1000)} s`;
if (values.markdown) {
  console.log(
    `\n${context}\n\n| flow | path | n | p50 ms | p99 ms | max ms | edge CPU | gen CPU | other CPU |\n| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |`,
  );
  for (const r of rows)
    console.log(`| ${r.flow} | ${r.target} | ${r.n} | ${ms(r.p50)} | ${ms(r.p99)} | ${ms(r.max)} | ${cpuCells(r.cpu).join(" | ")} |`);
} else {
  console.log(`\nbench/flows (${context})`);
  for (const r of rows)
    console.log(
      `${r.flow.padEnd(24)} ${r.target.padEnd(48)} n=${String(r.n).padStart(3)}  p50 ${ms(r.p50).padStart(7)} ms  p99 ${ms(r.p99).padStart(7)} ms  CPU edge/gen/other ${cpuCells(r.cpu).join(" / ")}`,
    );
}
console.log(
  "edge CPU: the edge's process tree over the flow's rounds, shared by its rows (they interleave); gen CPU: this process; other CPU: the rest (MLServer, Redis included), in cores.",
);
console.log("targets (seed 000): automations < 1 s, critical alerts < 5 s, inference < 500 ms cached, < 2 s uncached");
process.exit(incomplete > 0 ? 1 : 0);
