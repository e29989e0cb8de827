/**
 * What the agent's end-to-end tests share: a local edge, a Mosquitto, an agent registered on
 * the edge with bridged devices, agent configs in temporary folders, a fault proxy in front of
 * the edge (down, or answers lost after the edge acted), and waiting helpers.
 */
import { mkdtempSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import mqtt, { type MqttClient } from "mqtt";
import { type RunningAgent, startAgent } from "../../agent/agent.ts";
import { type AgentConfig, parseConfig } from "../../agent/config.ts";
import { createLogger } from "../../agent/log.ts";
import type { LocalEdge } from "../../scripts/lib/local-edge.ts";
import { mosquittoAvailable } from "../../scripts/lib/mosquitto.ts";
import { until } from "../../scripts/lib/wait.ts";

export { until };

export const NO_MOSQUITTO =
  "mosquitto is not installed: `apt-get install mosquitto` (.ci/run installs it); the agent's end-to-end tests need a real LAN broker";

/** Fails under CI, says so loudly otherwise, when Mosquitto is missing. */
export function requireMosquitto(): boolean {
  if (mosquittoAvailable()) return true;
  if (process.env.CI) throw new Error(`${NO_MOSQUITTO} (CI=true: these tests must run)`);
  console.warn(`\nSKIPPED: ${NO_MOSQUITTO}\n`);
  return false;
}

export async function registerAgent(edge: LocalEdge, agentId: string, devices: string[]): Promise<string> {
  const agent = await edge.admin<{ token: string }>("POST", "/v1/devices", { id: agentId, kind: "service", type: "agent" });
  if (agent.status !== 201) throw new Error(`agent registration: ${agent.status} ${JSON.stringify(agent.body)}`);
  for (const id of devices) {
    const device = await edge.admin("POST", "/v1/devices", { id, type: "energy", metadata: { agent: agentId } });
    if (device.status !== 201) throw new Error(`device registration: ${device.status} ${JSON.stringify(device.body)}`);
  }
  return agent.body.token;
}

export interface ConfigInput {
  edgeUrl: string;
  mqttUrl: string;
  token: string;
  clientId: string;
  devices?: string[];
  extra?: string;
  outbox?: string;
  logLevel?: string;
}

/** Writes agent.yaml and the token file into a fresh folder; returns the folder, file and parsed config. */
export function writeAgentConfig(input: ConfigInput): { dir: string; file: string; config: AgentConfig } {
  const dir = mkdtempSync(join(tmpdir(), "edgemesh-agent-"));
  writeFileSync(join(dir, "agent.token"), `${input.token}\n`, { mode: 0o600 });
  const text = `edge:
  url: ${input.edgeUrl}
  token_file: agent.token
  batch_max: 100
  retry: { initial_ms: 50, max_ms: 500 }
outbox:
  path: outbox.db
${input.outbox ?? ""}
mqtt:
  url: ${input.mqttUrl}
  client_id: ${input.clientId}
${input.devices ? `  devices: [${input.devices.join(", ")}]\n` : ""}  rules:
    - topic: homelab/energy/+
      routing_key: sensors.energy.{1}
      device: "{1}"
  commands:
    set_topic: homelab/{device}/set
    result_topic: homelab/{device}/result
    result_timeout_s: 20
  availability_topic: homelab/{device}/availability
health:
  listen: 127.0.0.1:0
log:
  level: ${input.logLevel ?? "warn"}
${input.extra ?? ""}`;
  const file = join(dir, "agent.yaml");
  writeFileSync(file, text);
  return { dir, file, config: parseConfig(text, dir) };
}

/** A proxy in front of the edge: `up`, `down` (connections cut), or `lose_answers` (the edge acts, the answer is lost). */
export async function startFaultProxy(
  target: string,
): Promise<{ url: string; mode: "up" | "down" | "lose_answers"; close(): Promise<void> }> {
  const state = { mode: "up" as "up" | "down" | "lose_answers" };
  const server: Server = createServer(async (req, res) => {
    if (state.mode === "down") {
      req.socket.destroy();
      return;
    }
    try {
      const body = Buffer.concat(await req.toArray());
      const headers: Record<string, string> = {};
      for (const [k, v] of Object.entries(req.headers)) {
        if (typeof v === "string" && !["host", "connection", "content-length", "transfer-encoding"].includes(k)) headers[k] = v;
      }
      const answer = await fetch(new URL(req.url ?? "/", target), { method: req.method, headers, body: body.length ? body : undefined });
      const text = Buffer.from(await answer.arrayBuffer());
      if (state.mode !== "up") {
        req.socket.destroy();
        return;
      }
      res.writeHead(answer.status, { "content-type": answer.headers.get("content-type") ?? "application/json" }).end(text);
    } catch {
      req.socket.destroy();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : 0;
  return {
    url: `http://127.0.0.1:${port}`,
    get mode() {
      return state.mode;
    },
    set mode(value) {
      state.mode = value;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

export async function lanClient(url: string, clientId = `lan-${Math.random().toString(36).slice(2)}`): Promise<MqttClient> {
  const client = mqtt.connect(url, { clientId, reconnectPeriod: 200, connectTimeout: 5000 });
  await new Promise<void>((resolve, reject) => {
    client.once("connect", () => resolve());
    client.once("error", reject);
  });
  return client;
}

/** Seed 004's energy meter payload, at a distinct time per index. */
export function meterReading(index: number, base: number): string {
  return JSON.stringify({
    timestamp: new Date(base + index * 1000).toISOString(),
    total_energy_kwh: 12.45 + index / 1000,
    power_kw: 3.2,
    voltage: 230,
    current: 13.9,
  });
}

/** How many `power_kw` readings of a device the series store holds (raw rows). */
export async function storedReadings(edge: LocalEdge, device: string, base: number): Promise<number> {
  const start = new Date(base - 60_000).toISOString();
  const end = new Date(Date.now() + 3_600_000).toISOString();
  const answer = await edge.admin<{ series: { points: unknown[] }[] }>(
    "GET",
    `/v1/series?metric=power_kw&device=${device}&bucket=raw&limit=10000&start=${encodeURIComponent(start)}&end=${encodeURIComponent(end)}`,
  );
  if (answer.status !== 200) throw new Error(`series query: ${answer.status} ${JSON.stringify(answer.body)}`);
  return answer.body.series.reduce((n, s) => n + s.points.length, 0);
}

export interface TwinView {
  reported: { readings: Record<string, { value: unknown }> };
  availability: { status: string; reason: string };
  counters: { accepted: number; duplicates: number; rejected: number };
}

export async function twinOf(edge: LocalEdge, id: string): Promise<TwinView> {
  return (await edge.admin<TwinView>("GET", `/v1/devices/${id}/twin`)).body;
}

/** A quiet agent, returned once it is connected and its subscriptions have reached the broker. */
export async function startSubscribedAgent(config: AgentConfig): Promise<RunningAgent> {
  const agent = await startAgent(config, { log: createLogger("error") });
  await until(() => (agent.stats.mqttConnected ? true : undefined), "the agent's MQTT connection");
  // The subscription is made on connect; give the broker its SUBACK before publishing.
  await new Promise((r) => setTimeout(r, 300));
  return agent;
}

/** Stops a file's agent, LAN client and services, whichever of them started. */
export async function stopAll(
  agent: RunningAgent | undefined,
  lan: MqttClient | undefined,
  ...services: ({ stop(): Promise<void> } | undefined)[]
) {
  await agent?.stop();
  await lan?.endAsync();
  await Promise.all(services.map((s) => s?.stop()));
}
