/**
 * bench/agent — the LAN agent's throughput: MQTT → edge forwarding, and outbox replay after an
 * outage, with the agent's memory; beside a bare MQTT subscriber's rate in the same run.
 *
 * Starts the local edge (`wrangler dev`), a Mosquitto of its own (Debian `mosquitto`) and the
 * agent as its own process (`node agent/main.ts run`, so its memory is its own), registered with
 * D devices whose rate limits are raised out of the way. A publisher sends M QoS 1 readings
 * spread over the devices, with up to 100 in flight. Measured:
 * - reference: a bare MQTT.js subscriber (QoS 1) receiving the same M publishes;
 * - forward: from the first publish until the edge acknowledged all M (the agent's counter);
 * - intake: M published while the edge is unreachable, until all are in the outbox on disk;
 * - replay: the time to drain those M from the outbox once the edge is back: agent → edge
 *   acknowledged (the uplink, one batch of up to 200 in flight), issue 13's goal ≥ 5,000 msg/s;
 * - replay to the reference: the same drain into the bare Worker (bench/reference/), which answers
 *   every message of a batch `stored` and does nothing else, in the same run;
 * for each outbox sync mode (`full`: fsync per message; `normal`: survives an agent crash only).
 * Each row has the CPU columns: the edge's and the agent's process trees (edge CPU), this process
 * (the publisher and the proxy: gen CPU), the rest of the machine (other CPU).
 *
 *   node bench/agent.ts [--messages 3000] [--devices 10] [--markdown]
 *
 * It prints figures; it never fails on one. `wrangler dev` is not production Cloudflare.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import { loadavg, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import mqtt, { type MqttClient } from "mqtt";
import type { StatusReport } from "../agent/health.ts";
import { freePort, PROJECT_ROOT, startLocalEdge } from "../scripts/lib/local-edge.ts";
import { startMosquitto } from "../scripts/lib/mosquitto.ts";
import { CPU_COLUMNS, type CpuFigures, cpuCells, cpuWindow, goalLine } from "./lib/cpu-window.ts";
import { privateRegistry } from "./lib/registry.ts";
import { markdownTable, textTable } from "./lib/table.ts";

const { values } = parseArgs({
  options: { messages: { type: "string" }, devices: { type: "string" }, markdown: { type: "boolean" }, quick: { type: "boolean" } },
});
/** --quick (or BENCH_QUICK=1): the short run CI makes so the bench cannot rot. */
const QUICK = values.quick || process.env.BENCH_QUICK === "1";
const MESSAGES = Number(values.messages ?? (QUICK ? 300 : 3000));
const DEVICES = Number(values.devices ?? (QUICK ? 3 : 10));
const AGENT = "bench-agent";
const devices = Array.from({ length: DEVICES }, (_, i) => `bench-meter-${i}`);

privateRegistry();
const edge = await startLocalEdge();
privateRegistry();
const reference = await startLocalEdge({ config: resolve(PROJECT_ROOT, "bench/reference/wrangler.toml"), migrate: false });
const broker = await startMosquitto();
const base = Date.now() - 6 * 3_600_000;
let sequence = 0;

async function connect(clientId: string): Promise<MqttClient> {
  const client = mqtt.connect(broker.url, { clientId, reconnectPeriod: 500 });
  await new Promise<void>((resolve, reject) => {
    client.once("connect", () => resolve());
    client.once("error", reject);
  });
  return client;
}

/** M QoS 1 publishes over the devices, at most 100 awaiting their PUBACK. */
async function publishAll(client: MqttClient, count: number): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < count) {
      const i = next++;
      const n = sequence++;
      const payload = JSON.stringify({ timestamp: new Date(base + n * 10).toISOString(), power_kw: 3.2, seq: n });
      await client.publishAsync(`homelab/energy/${devices[i % DEVICES]}`, payload, { qos: 1 });
    }
  };
  await Promise.all(Array.from({ length: 100 }, worker));
}

async function referenceSubscriber(publisher: MqttClient): Promise<number> {
  const subscriber = await connect("bench-reference");
  await subscriber.subscribeAsync("homelab/energy/+", { qos: 1 });
  let received = 0;
  const done = new Promise<void>((resolve) =>
    subscriber.on("message", () => {
      if (++received === MESSAGES) resolve();
    }),
  );
  const started = performance.now();
  await publishAll(publisher, MESSAGES);
  await done;
  const rate = MESSAGES / ((performance.now() - started) / 1000);
  await subscriber.endAsync();
  return rate;
}

interface Proxy {
  url: string;
  down: boolean;
  /** Where it forwards: edgemesh, or the reference Worker. */
  target: string;
}

async function startProxy(): Promise<Proxy> {
  const state = { down: false, target: edge.url };
  const server = createServer(async (req, res) => {
    if (state.down) return req.socket.destroy();
    const body = Buffer.concat(await req.toArray());
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(req.headers))
      if (typeof v === "string" && !["host", "connection", "content-length"].includes(k)) headers[k] = v;
    try {
      const answer = await fetch(new URL(req.url ?? "/", state.target), {
        method: req.method,
        headers,
        body: body.length ? body : undefined,
      });
      res.writeHead(answer.status, { "content-type": "application/json" }).end(Buffer.from(await answer.arrayBuffer()));
    } catch {
      req.socket.destroy();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  server.unref();
  const address = server.address();
  return Object.assign(state, { url: `http://127.0.0.1:${typeof address === "object" && address ? address.port : 0}` });
}

async function status(url: string): Promise<StatusReport> {
  return (await (await fetch(`${url}/status`)).json()) as StatusReport;
}

async function until(check: () => Promise<boolean>, timeoutMs = 600_000, pollMs = 100): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error("timed out");
    await new Promise((r) => setTimeout(r, pollMs));
  }
}

interface Run {
  sync: string;
  forwardRate: number;
  /** MQTT → outbox on disk with the edge down: the agent's own intake, QoS 1 acknowledged after the write. */
  intakeRate: number;
  replayRate: number;
  /** The same replay into the bare Worker. */
  referenceReplayRate: number;
  rssMiB: number;
  cpu: Record<"forward" | "intake" | "replay" | "reference", CpuFigures>;
}

async function runAgent(sync: "full" | "normal", token: string, proxy: Proxy): Promise<Run> {
  const dir = mkdtempSync(join(tmpdir(), "bench-agent-"));
  writeFileSync(join(dir, "agent.token"), token);
  const healthPort = await freePort();
  writeFileSync(
    join(dir, "agent.yaml"),
    `edge: {url: "${proxy.url}", token_file: agent.token, batch_max: 200, retry: {initial_ms: 50, max_ms: 200}}
outbox: {path: outbox.db, sync: ${sync}}
mqtt:
  url: ${broker.url}
  client_id: bench-agent-${sync}
  devices: [${devices.join(", ")}]
  rules: [{topic: homelab/energy/+, routing_key: "sensors.energy.{1}", device: "{1}"}]
health: {listen: "127.0.0.1:${healthPort}"}
log: {level: warn}
`,
  );
  const child: ChildProcess = spawn(process.execPath, [join(PROJECT_ROOT, "agent/main.ts"), "run", "--config", join(dir, "agent.yaml")], {
    stdio: ["ignore", "inherit", "inherit"],
  });
  const url = `http://127.0.0.1:${healthPort}`;
  await until(async () => (await status(url).catch(() => undefined))?.mqtt.connected === true, 30_000);
  await new Promise((r) => setTimeout(r, 500));
  const publisher = await connect(`bench-publisher-${sync}`);
  let rss = 0;
  const sample = setInterval(async () => {
    const s = await status(url).catch(() => undefined);
    if (s) rss = Math.max(rss, s.memory.rss_bytes);
  }, 200);

  const measured = [edge.process.pid, child.pid];
  const ours = [reference.process.pid];
  // Forwarding with the edge up.
  const before = (await status(url)).counters.forwarded ?? 0;
  const window = cpuWindow(measured, ours);
  const started = performance.now();
  await publishAll(publisher, MESSAGES);
  await until(async () => ((await status(url)).counters.forwarded ?? 0) - before >= MESSAGES);
  const forwardRate = MESSAGES / ((performance.now() - started) / 1000);
  const forwardCpu = window.stop();

  /** Everything goes to the outbox while the edge is unreachable, then drains into `target`. */
  const outageAndReplay = async (target: string) => {
    proxy.down = true;
    const intake = cpuWindow(measured, ours);
    let begin = performance.now();
    await publishAll(publisher, MESSAGES);
    await until(async () => (await status(url)).outbox.depth >= MESSAGES);
    const intakeRate = MESSAGES / ((performance.now() - begin) / 1000);
    const intakeCpu = intake.stop();
    proxy.target = target;
    proxy.down = false;
    // Timed from the first batch acknowledged (the agent's retry backoff before it is not the
    // uplink's pace) to the outbox empty, polled every 10 ms; the first batch is left out.
    let depth = MESSAGES;
    await until(
      async () => {
        depth = (await status(url)).outbox.depth;
        return depth < MESSAGES;
      },
      60_000,
      10,
    );
    const replay = target === edge.url ? cpuWindow(measured, ours) : cpuWindow([reference.process.pid, child.pid], [edge.process.pid]);
    begin = performance.now();
    await until(async () => (await status(url)).outbox.depth === 0, 600_000, 10);
    const replayRate = depth / ((performance.now() - begin) / 1000);
    const replayCpu = replay.stop();
    proxy.target = edge.url;
    return { intakeRate, intakeCpu, replayRate, replayCpu };
  };
  const ref = await outageAndReplay(reference.url);
  const em = await outageAndReplay(edge.url);

  clearInterval(sample);
  await publisher.endAsync();
  const exited = new Promise((r) => child.once("exit", r));
  child.kill("SIGTERM");
  await exited;
  return {
    sync,
    forwardRate,
    intakeRate: em.intakeRate,
    replayRate: em.replayRate,
    referenceReplayRate: ref.replayRate,
    rssMiB: rss / 1048576,
    cpu: { forward: forwardCpu, intake: em.intakeCpu, replay: em.replayCpu, reference: ref.replayCpu },
  };
}

try {
  const agent = await edge.admin<{ token: string }>("POST", "/v1/devices", { id: AGENT, kind: "service", type: "agent" });
  for (const id of devices)
    await edge.admin("POST", "/v1/devices", {
      id,
      type: "energy",
      metadata: { agent: AGENT },
      rate: { per_second: 10_000, burst: 100_000 },
    });
  const proxy = await startProxy();
  const publisher = await connect("bench-publisher-reference");
  const subscriberRate = await referenceSubscriber(publisher);
  await publisher.endAsync();
  const runs = [await runAgent("full", agent.body.token, proxy), await runAgent("normal", agent.body.token, proxy)];

  const columns = [
    { header: "path" },
    { header: "msg/s", align: "right" as const },
    { header: "agent peak RSS MiB", align: "right" as const },
    ...CPU_COLUMNS.map((header) => ({ header, align: "right" as const })),
  ];
  const rows = [
    ["bare MQTT.js subscriber (Mosquitto → subscriber, QoS 1)", subscriberRate.toFixed(0), "", "-", "-", "-"],
    ...runs.flatMap((r) => [
      [
        `agent, outbox sync=${r.sync}: MQTT → outbox → edge acknowledged`,
        r.forwardRate.toFixed(0),
        r.rssMiB.toFixed(1),
        ...cpuCells(r.cpu.forward),
      ],
      [`agent, outbox sync=${r.sync}: MQTT → outbox on disk (edge down)`, r.intakeRate.toFixed(0), "", ...cpuCells(r.cpu.intake)],
      [
        `agent, outbox sync=${r.sync}: outbox → bare Worker acknowledged (reference)`,
        r.referenceReplayRate.toFixed(0),
        "",
        ...cpuCells(r.cpu.reference),
      ],
      [
        `agent, outbox sync=${r.sync}: outbox → edge acknowledged (replay after an outage)`,
        r.replayRate.toFixed(0),
        "",
        ...cpuCells(r.cpu.replay),
      ],
    ]),
  ];
  console.log(
    `\n${MESSAGES} QoS 1 messages over ${DEVICES} devices, 100 in flight, wrangler dev on this machine, load average ${loadavg()[0]?.toFixed(2)}\n`,
  );
  console.log(values.markdown ? markdownTable(columns, rows) : textTable(columns, rows));
  console.log(
    "\nedge CPU: the edge's (or, for the reference row, the bare Worker's) and the agent's process trees; gen CPU: this process" +
      " (publisher, proxy); other CPU: the rest of the machine, in cores. The MQTT → edge row is bound by the agent's own intake" +
      " (a SQLite commit per QoS 1 publish before its PUBACK); agent → edge is the replay rows.",
  );
  for (const r of runs)
    console.log(
      goalLine(
        `agent → edge acknowledged ≥ 5,000 msg/s, sync=${r.sync}`,
        r.replayRate >= 5000,
        `outbox replay ${r.replayRate.toFixed(0)} msg/s beside the bare Worker's ${r.referenceReplayRate.toFixed(0)} (×${(r.replayRate / r.referenceReplayRate).toFixed(2)}), other CPU ${r.cpu.replay.otherCores.toFixed(2)}`,
      ),
    );
} finally {
  await broker.stop();
  await edge.stop();
  await reference.stop();
}
