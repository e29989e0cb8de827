/**
 * bench/mqtt — many devices publishing over the MQTT gateway, beside the same load against a
 * local Mosquitto in the same run.
 *
 * Starts the local edge (`wrangler dev`, scripts/lib/local-edge.ts) and a Mosquitto of its own
 * (Debian `mosquitto`) on a free port with a temporary config (a WebSocket listener, anonymous).
 * N devices connect with MQTT.js over WebSocket and publish QoS 1 in a closed loop for a fixed
 * time, each with up to --inflight publishes awaiting their PUBACK (a device's window; 1 = the next
 * publish only after the previous PUBACK). A "dashboard" measures publish → visible latency:
 * - edge: a `/v1/live` WebSocket on the devices' room hub, seeing each reading as a twin update;
 * - Mosquitto: a subscriber on `devices/+/telemetry`.
 * Prints acknowledged messages/s and p50/p99 publish→dashboard latency for each, the CPU columns
 * (the edge's process tree or the broker; this process; the rest of the machine), and whether
 * issue 13's goal holds: 20 devices, QoS 1, ≥ 1,000 msg/s acknowledged and p99 publish →
 * dashboard < 100 ms, beside Mosquitto's figures in the same run.
 *
 *   node bench/mqtt.ts [--devices 20] [--inflight 8] [--duration-s 10] [--markdown]
 *
 * It prints figures; it never fails on one. It exits 1 when a publish failed. `wrangler dev` is
 * not production Cloudflare: compare figures from one machine only (docs/benchmarks.md).
 */
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { availableParallelism, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import mqtt, { type MqttClient } from "mqtt";
import { freePort, startLocalEdge } from "../scripts/lib/local-edge.ts";
import { type CpuFigures, cpuCells, cpuWindow, goalLine } from "./lib/cpu-window.ts";
import { privateRegistry } from "./lib/registry.ts";

const { values } = parseArgs({
  options: {
    devices: { type: "string" },
    inflight: { type: "string" },
    "duration-s": { type: "string" },
    markdown: { type: "boolean" },
    quick: { type: "boolean" },
  },
});
/** --quick (or BENCH_QUICK=1): the short run CI makes so the bench cannot rot. */
const QUICK = values.quick || process.env.BENCH_QUICK === "1";
const DEVICES = Number(values.devices ?? process.env.BENCH_DEVICES ?? (QUICK ? 4 : 20));
const DURATION_S = Number(values["duration-s"] ?? process.env.BENCH_DURATION_S ?? (QUICK ? 3 : 10));
/** Publishes a device has awaiting their PUBACK (MQTT_RECEIVE_MAXIMUM is 32). */
const INFLIGHT = Number(values.inflight ?? process.env.BENCH_INFLIGHT ?? 8);
const ROOM = "benchroom";

interface Result {
  target: string;
  acked: number;
  failed: number;
  seen: number;
  perSecond: number;
  p50: number;
  p99: number;
  cpu: CpuFigures;
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number;
}

function connect(url: string, options: mqtt.IClientOptions): Promise<MqttClient> {
  const client = mqtt.connect(url, { reconnectPeriod: 0, connectTimeout: 15_000, ...options });
  return new Promise((resolve, reject) => {
    client.once("connect", () => resolve(client));
    client.once("error", reject);
  });
}

/** Runs the closed-loop load: every device publishes QoS 1, one at a time, until the time is up. */
async function load(
  target: string,
  clients: { id: string; client: MqttClient }[],
  sent: Map<string, number>,
  latencies: number[],
  measured: (number | undefined)[],
): Promise<Result> {
  let acked = 0;
  let failed = 0;
  const window = cpuWindow(measured);
  const end = Date.now() + DURATION_S * 1000;
  await Promise.all(
    clients.map(async ({ id, client }) => {
      let seq = 0;
      const loop = async () => {
        while (Date.now() < end) {
          seq++;
          const key = `${id}:${seq}`;
          sent.set(key, performance.now());
          try {
            await client.publishAsync(`devices/${id}/telemetry`, JSON.stringify({ payload: { seq } }), { qos: 1 });
            acked++;
          } catch {
            failed++;
          }
        }
      };
      await Promise.all(Array.from({ length: INFLIGHT }, loop));
    }),
  );
  const cpu = window.stop();
  // Let the last updates reach the dashboard.
  await new Promise((r) => setTimeout(r, 1500));
  const sorted = [...latencies].sort((a, b) => a - b);
  return {
    target,
    acked,
    failed,
    seen: latencies.length,
    perSecond: acked / DURATION_S,
    p50: percentile(sorted, 50),
    p99: percentile(sorted, 99),
    cpu,
  };
}

async function benchEdge(): Promise<Result> {
  privateRegistry();
  const edge = await startLocalEdge();
  try {
    const admin = async (path: string, body: unknown) => {
      const res = await fetch(`${edge.url}${path}`, {
        method: "POST",
        headers: { authorization: `Bearer ${edge.adminToken}`, "content-type": "application/json" },
        body: JSON.stringify(body),
      });
      if (res.status !== 201) throw new Error(`${path}: ${res.status} ${await res.text()}`);
      return (await res.json()) as { token: string };
    };
    const stamp = Date.now().toString(36);
    const devices: { id: string; token: string }[] = [];
    for (let i = 0; i < DEVICES; i++) {
      const id = `bench-${stamp}-${i}`;
      const { token } = await admin("/v1/devices", { id, type: "temperature", room: ROOM, rate: { per_second: 10_000, burst: 10_000 } });
      devices.push({ id, token });
    }
    const sent = new Map<string, number>();
    const latencies: number[] = [];
    const dashboard = new WebSocket(`ws://127.0.0.1:${edge.port}/v1/live?hub=${ROOM}`, ["edgemesh.v1", `bearer.${edge.adminToken}`]);
    await new Promise<void>((resolve, reject) => {
      dashboard.onopen = () => resolve();
      dashboard.onerror = () => reject(new Error("dashboard WebSocket failed"));
    });
    let updates = 0;
    dashboard.onmessage = (event) => {
      const frame = JSON.parse(String(event.data)) as {
        type: string;
        seq?: number;
        stream?: string;
        device?: string;
        data?: { readings?: { seq?: { value: number } } };
      };
      if (frame.type !== "update") return;
      if (++updates % 50 === 0) dashboard.send(JSON.stringify({ type: "ack", seq: frame.seq }));
      const seq = frame.data?.readings?.seq?.value;
      if (frame.stream !== "twin" || seq === undefined) return;
      const at = sent.get(`${frame.device}:${seq}`);
      if (at !== undefined) latencies.push(performance.now() - at);
    };
    dashboard.send(JSON.stringify({ type: "subscribe", streams: ["twin"] }));
    const clients = await Promise.all(
      devices.map(async ({ id, token }) => ({
        id,
        client: await connect(`ws://127.0.0.1:${edge.port}/mqtt/${id}`, { clientId: id, username: id, password: token }),
      })),
    );
    const result = await load("edgemesh (MQTT gateway → twin → live hub)", clients, sent, latencies, [edge.process.pid]);
    await Promise.all(clients.map(({ client }) => client.endAsync()));
    dashboard.close();
    return result;
  } finally {
    await edge.stop();
  }
}

/** Writes the config for the broker's transport: WebSocket when this mosquitto can listen on one. */
async function mosquittoTransport(config: string, port: number): Promise<"websockets" | "tcp"> {
  const base = `allow_anonymous true\npersistence false\nlog_dest none\n`;
  writeFileSync(config, `listener ${port} 127.0.0.1\nprotocol websockets\n${base}`);
  const probe = spawn("mosquitto", ["-c", config], { stdio: "ignore" });
  const exited = await Promise.race([
    new Promise<boolean>((resolve) => probe.once("exit", () => resolve(true))),
    new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 1000)),
  ]);
  if (!exited) {
    probe.kill("SIGTERM");
    await new Promise((r) => probe.once("exit", r));
    return "websockets";
  }
  writeFileSync(config, `listener ${port} 127.0.0.1\n${base}`);
  return "tcp";
}

async function benchMosquitto(): Promise<Result> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), "bench-mosquitto-"));
  const config = join(dir, "mosquitto.conf");
  // Its WebSocket listener is tried first; Debian 12's build cannot open one in some sandboxes
  // ("Unable to start any listening sockets"), and then the broker runs over plain TCP (the
  // table says which).
  const transport = await mosquittoTransport(config, port);
  const url = transport === "websockets" ? `ws://127.0.0.1:${port}/mqtt` : `mqtt://127.0.0.1:${port}`;
  const broker = spawn("mosquitto", ["-c", config], { stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  broker.stderr.on("data", (d) => {
    stderr += String(d);
  });
  try {
    const deadline = Date.now() + 10_000;
    let dashboard: MqttClient | undefined;
    while (!dashboard) {
      try {
        dashboard = await connect(url, { clientId: "dashboard" });
      } catch (error) {
        if (Date.now() > deadline) throw new Error(`mosquitto did not start: ${stderr} ${error}`);
        await new Promise((r) => setTimeout(r, 200));
      }
    }
    const sent = new Map<string, number>();
    const latencies: number[] = [];
    await dashboard.subscribeAsync("devices/+/telemetry", { qos: 0 });
    dashboard.on("message", (topic, payload) => {
      const id = topic.split("/")[1];
      const seq = (JSON.parse(payload.toString()) as { payload: { seq: number } }).payload.seq;
      const at = sent.get(`${id}:${seq}`);
      if (at !== undefined) latencies.push(performance.now() - at);
    });
    const clients = await Promise.all(
      Array.from({ length: DEVICES }, async (_, i) => {
        const id = `bench-${i}`;
        return { id, client: await connect(url, { clientId: id }) };
      }),
    );
    const result = await load(
      `Mosquitto 2 over ${transport === "websockets" ? "WebSocket" : "TCP"} (broker → subscriber)`,
      clients,
      sent,
      latencies,
      [broker.pid],
    );
    await Promise.all(clients.map(({ client }) => client.endAsync()));
    await dashboard.endAsync();
    return result;
  } finally {
    broker.kill("SIGTERM");
    rmSync(dir, { recursive: true, force: true });
  }
}

const results = [await benchEdge(), await benchMosquitto()];
const header =
  `MQTT: ${DEVICES} devices (type temperature, routed to sensors.temperature), QoS 1 closed loop with ${INFLIGHT} in flight per device,` +
  ` ${DURATION_S} s each, ${availableParallelism()} cores, load average ${loadavg()[0]?.toFixed(2)}`;
console.log(header);
const rows = results.map((r) => [
  r.target,
  String(r.acked),
  String(r.failed),
  r.perSecond.toFixed(0),
  String(r.seen),
  r.p50.toFixed(1),
  r.p99.toFixed(1),
  ...cpuCells(r.cpu),
]);
const cols = ["target", "acked", "failed", "msg/s", "seen by dashboard", "p50 ms", "p99 ms", "edge CPU", "gen CPU", "other CPU"];
if (values.markdown) {
  console.log(`| ${cols.join(" | ")} |\n| ${cols.map(() => "---").join(" | ")} |`);
  for (const row of rows) console.log(`| ${row.join(" | ")} |`);
} else {
  for (const row of [cols, ...rows]) console.log(row.map((c, i) => c.padEnd(i === 0 ? 44 : 18)).join(""));
}
console.log(
  "\nlatency: publish → the dashboard's frame (edge: a twin update on /v1/live; Mosquitto: the subscriber's message), of the publishes the dashboard saw." +
    " edge CPU: the edge's process tree (for Mosquitto, the broker); gen CPU: this process (devices and dashboard); other CPU: the rest, in cores.",
);
const [em, mosq] = results as [Result, Result];
console.log(
  goalLine(
    `MQTT QoS 1, ${DEVICES} devices: ≥ 1,000 msg/s acknowledged${DEVICES === 20 ? "" : " (the goal is stated for 20 devices)"}`,
    em.perSecond >= 1000 && em.failed === 0,
    `${em.perSecond.toFixed(0)} msg/s beside Mosquitto's ${mosq.perSecond.toFixed(0)} (×${(em.perSecond / mosq.perSecond).toFixed(3)}), other CPU ${em.cpu.otherCores.toFixed(2)}`,
  ),
);
console.log(
  goalLine(
    "MQTT QoS 1: p99 publish → dashboard < 100 ms",
    em.p99 < 100 && em.seen > 0,
    `p99 ${em.p99.toFixed(1)} ms (p50 ${em.p50.toFixed(1)}) beside Mosquitto's ${mosq.p99.toFixed(1)} ms; ${em.seen} of ${em.acked} seen`,
  ),
);
process.exit(results.some((r) => r.failed > 0) ? 1 : 0);
