/**
 * The LAN agent end to end: a real Mosquitto, the local edge (wrangler dev), the agent in this
 * process (or, for the crash test, as its own process killed with SIGKILL). A fault proxy in
 * front of the edge takes it down or loses its answers.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { join } from "node:path";
import { promisify } from "node:util";
import { Kafka as KafkaClient, logLevel } from "kafkajs";
import type { MqttClient } from "mqtt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RunningAgent, startAgent } from "../../agent/agent.ts";
import { createLogger } from "../../agent/log.ts";
import { type Kafka, kafkaAvailable, NO_KAFKA, startKafka } from "../../scripts/lib/kafka.ts";
import { type LocalEdge, PROJECT_ROOT, startLocalEdge } from "../../scripts/lib/local-edge.ts";
import { type Mosquitto, startMosquitto } from "../../scripts/lib/mosquitto.ts";
import {
  lanClient,
  meterReading,
  registerAgent,
  requireMosquitto,
  startFaultProxy,
  storedReadings,
  twinOf,
  until,
  writeAgentConfig,
} from "./agent-fixtures.ts";

const execFileAsync = promisify(execFile);
const haveMosquitto = requireMosquitto();
const AGENT = "lan-agent";
const DEVICES = ["meter1", "meter2", "meter3", "meter4", "meter5", "meter6", "meter7", "kmeter1"];

// Kafka (KRaft, from Maven Central jars): CI must have it; a developer's run says loudly what it left out.
const haveKafka = kafkaAvailable();
if (!haveKafka && process.env.CI) throw new Error(`${NO_KAFKA} (CI=true: the agent's Kafka tests must run)`);
if (!haveKafka) console.warn(`\nSKIPPED: the agent's Kafka tests. ${NO_KAFKA}\n`);

let edge: LocalEdge;
let broker: Mosquitto;
let token: string;
let proxy: Awaited<ReturnType<typeof startFaultProxy>>;
let lan: MqttClient;
let kafka: Kafka | undefined;
const quiet = createLogger("error");

beforeAll(async () => {
  if (!haveMosquitto) return;
  [edge, broker, kafka] = await Promise.all([startLocalEdge(), startMosquitto(), haveKafka ? startKafka() : undefined]);
  token = await registerAgent(edge, AGENT, DEVICES);
  proxy = await startFaultProxy(edge.url);
  lan = await lanClient(broker.url);
});

afterAll(async () => {
  await lan?.endAsync();
  await proxy?.close();
  await Promise.all([edge?.stop(), broker?.stop(), kafka?.stop()]);
});

let clients = 0;
async function agentFor(options: { devices?: string[]; outbox?: string; viaProxy?: boolean; extra?: string } = {}): Promise<RunningAgent> {
  const { config } = writeAgentConfig({
    edgeUrl: options.viaProxy ? proxy.url : edge.url,
    mqttUrl: broker.url,
    token,
    clientId: `agent-${++clients}`,
    devices: options.devices,
    outbox: options.outbox,
    extra: options.extra,
  });
  const agent = await startAgent(config, { log: quiet });
  await until(() => (agent.stats.mqttConnected ? true : undefined), "the agent's MQTT connection");
  // The subscription is made on connect; give the broker its SUBACK before publishing.
  await new Promise((r) => setTimeout(r, 300));
  return agent;
}

async function publishReadings(device: string, count: number, base: number, from = 0): Promise<void> {
  for (let i = from; i < from + count; i++) await lan.publishAsync(`homelab/energy/${device}`, meterReading(i, base), { qos: 1 });
}

describe.runIf(haveMosquitto)("LAN agent against Mosquitto and the local edge", () => {
  it("carries seed 004's meter reading from MQTT to the twin and the stored series, enriched", async () => {
    const agent = await agentFor({ devices: ["meter1"] });
    try {
      const base = Date.now() - 3_600_000;
      await lan.publishAsync("homelab/energy/meter1", meterReading(0, base), { qos: 1 });
      const twin = await until(async () => {
        const t = await twinOf(edge, "meter1");
        return t.reported?.readings?.power_kw ? t : undefined;
      }, "the reading in meter1's twin");
      expect(twin.reported.readings.power_kw?.value).toBe(3.2);
      expect(twin.reported.readings.total_energy_kwh?.value).toBe(12.45);
      await until(async () => ((await storedReadings(edge, "meter1", base)) === 1 ? true : undefined), "the stored reading");
      const { body } = await edge.admin<{ messages: { routing_key: string; timestamp: string; metadata?: unknown }[] }>(
        "GET",
        "/v1/messages?device=meter1",
      );
      // The edge's transformer adds derived messages; the agent's own is on seed 004's route.
      const own = body.messages.find((m) => m.routing_key === "sensors.energy.meter1");
      // The device's own time, not the time the agent or the edge saw it.
      expect(own?.timestamp).toBe(new Date(base).toISOString());
      expect(agent.stats.counters.forwarded).toBe(1);
      expect(agent.outbox.depth).toBe(0);
    } finally {
      await agent.stop();
    }
  });

  it("reports unknown devices and invalid payloads on its status endpoint instead of dropping them silently", async () => {
    const agent = await agentFor({ devices: ["meter1"] });
    try {
      await lan.publishAsync("homelab/energy/ghost", JSON.stringify({ power_kw: 1 }), { qos: 1 });
      await lan.publishAsync("homelab/energy/meter1", JSON.stringify({ power_kw: "lots" }), { qos: 1 });
      const status = await until(async () => {
        const s = (await (await fetch(`${agent.healthUrl}/status`)).json()) as {
          unknown_devices: Record<string, { count: number }>;
          counters: Record<string, number>;
        };
        return s.unknown_devices.ghost && s.counters.invalid === 1 ? s : undefined;
      }, "ghost and the invalid payload in /status");
      expect(status.unknown_devices.ghost?.count).toBe(1);
      expect(agent.outbox.depth).toBe(0);
      const metrics = await (await fetch(`${agent.healthUrl}/metrics`)).text();
      expect(metrics).toMatch(/edgemesh_agent_unknown_device_total 1/);
      // The `status` command: a readable summary from the same endpoint.
      // (Asynchronously: the agent answering it runs in this process.)
      const summary = await execFileAsync(process.execPath, [join(PROJECT_ROOT, "agent/main.ts"), "status", "--url", agent.healthUrl]);
      expect(summary.stdout).toMatch(/LAN broker {2}connected/);
      expect(summary.stdout).toMatch(/outbox {6}0 waiting/);
      expect(summary.stdout).toMatch(/commands {4}(woken over the WebSocket|long-polled \(WebSocket down\)), \d+ devices/);
      expect(summary.stdout).toMatch(/unknown devices: ghost \(1×, not in mqtt.devices\)/);
    } finally {
      await agent.stop();
    }
  });

  it("reports a device the edge does not bridge for this agent as unknown", async () => {
    await edge.admin("POST", "/v1/devices", { id: "stranger", type: "energy" });
    const agent = await agentFor();
    try {
      await lan.publishAsync("homelab/energy/stranger", meterReading(0, Date.now() - 60_000), { qos: 1 });
      await until(() => (agent.stats.unknownDevices.has("stranger") ? true : undefined), "stranger reported");
      expect(agent.stats.counters.rejected_by_edge).toBe(1);
      expect((await twinOf(edge, "stranger")).counters.accepted).toBe(0);
    } finally {
      await agent.stop();
    }
  });

  it("delivers a command from the API to the device's set topic and maps the reply back to its result", async () => {
    const agent = await agentFor({ devices: ["meter2"] });
    const device = await lanClient(broker.url, "meter2-device");
    try {
      await device.subscribeAsync("homelab/meter2/set", { qos: 1 });
      device.on("message", (_topic, payload) => {
        const command = JSON.parse(String(payload)) as { id: string; parameters: { relay: string } };
        void device.publishAsync(
          "homelab/meter2/result",
          JSON.stringify({ id: command.id, status: "succeeded", result: { relay: command.parameters.relay } }),
          {
            qos: 1,
          },
        );
      });
      const sent = await edge.admin<{ command: { id: string; status: string; result?: unknown } }>("POST", "/v1/devices/meter2/commands", {
        command: "switch",
        parameters: { relay: "off" },
        wait_s: 20,
      });
      expect(sent.body.command.status).toBe("succeeded");
      expect(sent.body.command.result).toEqual({ relay: "off" });
    } finally {
      await device.endAsync();
      await agent.stop();
    }
  });

  it("fetches commands when the edge wakes it over its WebSocket, and long-polls while that socket is down", async () => {
    const created = await edge.admin("POST", "/v1/devices", { id: "meter9", type: "energy", metadata: { agent: AGENT } });
    expect(created.status).toBe(201);
    const device = await lanClient(broker.url, "meter9-device");
    const received: string[] = [];
    device.on("message", (_topic, payload) => received.push((JSON.parse(String(payload)) as { command: string }).command));
    await device.subscribeAsync("homelab/meter9/set", { qos: 1 });
    const send = (command: string) => edge.admin("POST", "/v1/devices/meter9/commands", { command });
    const direct = await agentFor({ devices: ["meter9"] });
    try {
      await until(() => (direct.stats.streamConnected ? true : undefined), "the wake-up stream");
      // Once the stream is open the device's loop waits for wake-ups (its safety poll is minutes
      // away), so a command that arrives was fetched because the edge woke the agent.
      await new Promise((r) => setTimeout(r, 500));
      expect((await send("first")).status).toBe(202);
      await until(() => (received.includes("first") ? true : undefined), "the first command on the set topic");
      expect(direct.stats.counters.wakes).toBeGreaterThanOrEqual(1);
    } finally {
      await direct.stop();
    }
    // The fault proxy passes plain HTTP only: the socket never opens and the long poll carries commands.
    const proxied = await agentFor({ devices: ["meter9"], viaProxy: true });
    try {
      expect((await send("second")).status).toBe(202);
      await until(() => (received.includes("second") ? true : undefined), "the second command on the set topic");
      expect(proxied.stats.streamConnected).toBe(false);
      expect(proxied.stats.counters.wakes).toBe(0);
    } finally {
      await proxied.stop();
      await device.endAsync();
    }
  });

  it("publishes a change of the desired state to the device's set topic", async () => {
    const agent = await agentFor({ devices: ["meter2"] });
    const device = await lanClient(broker.url, "meter2-desired");
    try {
      const received: unknown[] = [];
      await device.subscribeAsync("homelab/meter2/set", { qos: 1 });
      device.on("message", (_topic, payload) => void received.push(JSON.parse(String(payload))));
      // Once the agent's poll for meter2 is waiting, the change answers it at once.
      await until(() => (agent.downlink.devices.includes("meter2") ? true : undefined), "meter2's poll");
      await new Promise((r) => setTimeout(r, 500));
      const patched = await edge.admin("PATCH", "/v1/devices/meter2/twin/desired", { desired: { relay: "on", brightness: 40 } });
      expect(patched.status).toBe(200);
      const message = await until(() => received.find((m) => (m as { desired?: unknown }).desired), "the desired state on the set topic");
      expect(message).toMatchObject({ desired: { relay: "on", brightness: 40 } });
      expect(agent.stats.counters.desired_published).toBe(1);
    } finally {
      await device.endAsync();
      await agent.stop();
    }
  });

  it("reports availability and last wills seen on the LAN to the twin", async () => {
    const agent = await agentFor({ devices: ["meter3"] });
    try {
      await lan.publishAsync("homelab/energy/meter3", meterReading(0, Date.now() - 60_000), { qos: 1 });
      await until(async () => ((await twinOf(edge, "meter3")).availability.status === "online" ? true : undefined), "meter3 online");
      // A device's last will, as the LAN broker publishes it when the device vanishes.
      const device = await lanClient(broker.url, "meter3-device");
      device.options.will = undefined;
      await lan.publishAsync("homelab/meter3/availability", "offline", { qos: 1, retain: true });
      const twin = await until(async () => {
        const t = await twinOf(edge, "meter3");
        return t.availability.status === "offline" ? t : undefined;
      }, "meter3 offline");
      expect(twin.availability.reason).toBe("last_will");
      await device.endAsync();
    } finally {
      await agent.stop();
    }
  });

  it("keeps everything in the outbox while the edge is down and delivers it afterwards, exactly once in storage", async () => {
    const agent = await agentFor({ devices: ["meter4"], viaProxy: true });
    try {
      const base = Date.now() - 3_600_000;
      proxy.mode = "down";
      await publishReadings("meter4", 150, base);
      await until(() => (agent.outbox.depth === 150 ? true : undefined), "150 messages in the outbox");
      expect(agent.stats.counters.uplink_errors).toBeGreaterThan(0);
      // The edge comes back but its answers are lost: it stores, the agent cannot know and resends.
      const errorsWhileDown = agent.stats.counters.uplink_errors;
      proxy.mode = "lose_answers";
      await until(() => (agent.stats.counters.uplink_errors >= errorsWhileDown + 2 ? true : undefined), "resends with lost answers");
      proxy.mode = "up";
      await until(() => (agent.outbox.depth === 0 ? true : undefined), "the outbox drained");
      await until(async () => ((await storedReadings(edge, "meter4", base)) === 150 ? true : undefined), "150 stored readings");
      const twin = await twinOf(edge, "meter4");
      expect(twin.counters.accepted).toBe(150);
      expect(twin.counters.duplicates).toBeGreaterThan(0);
      expect(await storedReadings(edge, "meter4", base)).toBe(150);
    } finally {
      proxy.mode = "up";
      await agent.stop();
    }
  });

  it("leaves the broker while the outbox is full (backpressure), comes back when there is room, and loses nothing", async () => {
    const agent = await agentFor({ devices: ["meter5"], viaProxy: true, outbox: "  max_messages: 20\n  when_full: backpressure" });
    try {
      const base = Date.now() - 3_600_000;
      proxy.mode = "down";
      await publishReadings("meter5", 60, base);
      await until(() => (agent.outbox.depth === 20 ? true : undefined), "a full outbox");
      await new Promise((r) => setTimeout(r, 500));
      expect(agent.outbox.depth).toBe(20);
      expect(agent.outbox.dropped).toBe(0);
      // Paused: off the broker (which keeps the other 40 in the agent's session), not stalled on it.
      expect(agent.stats.counters.backpressure_pauses).toBeGreaterThanOrEqual(1);
      expect(agent.stats.mqttConnected).toBe(false);
      proxy.mode = "up";
      await until(async () => ((await storedReadings(edge, "meter5", base)) === 60 ? true : undefined), "all 60 stored", 90_000);
      expect((await twinOf(edge, "meter5")).counters.accepted).toBe(60);
    } finally {
      proxy.mode = "up";
      await agent.stop();
    }
  });

  it("sends smaller batches to a device whose burst is below its share of a batch", async () => {
    const created = await edge.admin("POST", "/v1/devices", {
      id: "meter8",
      type: "energy",
      metadata: { agent: AGENT },
      rate: { per_second: 1000, burst: 5 },
    });
    expect(created.status).toBe(201);
    const agent = await agentFor({ devices: ["meter8"], viaProxy: true });
    try {
      const base = Date.now() - 3_600_000;
      proxy.mode = "down";
      await publishReadings("meter8", 30, base);
      await until(() => (agent.outbox.depth === 30 ? true : undefined), "30 in the outbox");
      proxy.mode = "up";
      await until(async () => ((await storedReadings(edge, "meter8", base)) === 30 ? true : undefined), "30 stored");
      expect(agent.outbox.depth).toBe(0);
      expect(agent.stats.counters.rejected_by_edge).toBe(0);
    } finally {
      proxy.mode = "up";
      await agent.stop();
    }
  });

  it("rides out a restart of the LAN broker", async () => {
    const agent = await agentFor({ devices: ["meter6"] });
    try {
      const base = Date.now() - 3_600_000;
      await publishReadings("meter6", 20, base);
      await broker.restart();
      await until(() => (agent.stats.mqttConnected ? true : undefined), "the agent reconnected");
      await until(() => (lan.connected ? true : undefined), "the publisher reconnected");
      await new Promise((r) => setTimeout(r, 300));
      await publishReadings("meter6", 20, base, 20);
      await until(async () => ((await storedReadings(edge, "meter6", base)) === 40 ? true : undefined), "40 stored readings");
      expect((await twinOf(edge, "meter6")).counters.accepted).toBe(40);
    } finally {
      await agent.stop();
    }
  });

  it("loses no acknowledged message when killed with SIGKILL mid-stream and restarted", async () => {
    const { file, dir } = writeAgentConfig({
      edgeUrl: edge.url,
      mqttUrl: broker.url,
      token,
      clientId: "agent-crash",
      devices: ["meter7"],
      logLevel: "info",
    });
    const run = (): ChildProcess =>
      spawn(process.execPath, [join(PROJECT_ROOT, "agent/main.ts"), "run", "--config", file], {
        cwd: dir,
        stdio: ["ignore", "pipe", "pipe"],
      });
    const base = Date.now() - 3_600_000;
    const total = 600;
    let child = run();
    let output = "";
    child.stdout?.on("data", (d) => {
      output += String(d);
    });
    try {
      // Its persistent session exists once it connected; from then on the broker keeps its messages.
      await until(() => (output.includes("connected to the LAN broker") ? true : undefined), "the agent connected");
      await new Promise((r) => setTimeout(r, 300));
      const publishing = publishReadings("meter7", total, base);
      await until(async () => ((await storedReadings(edge, "meter7", base)) >= 50 ? true : undefined), "some messages through");
      child.kill("SIGKILL");
      await new Promise((r) => child.once("exit", r));
      // Mid-stream: the killed agent had not carried everything yet.
      expect(await storedReadings(edge, "meter7", base)).toBeLessThan(total);
      await publishing;
      child = run();
      await until(async () => ((await storedReadings(edge, "meter7", base)) === total ? true : undefined), `${total} stored`, 90_000);
      expect((await twinOf(edge, "meter7")).counters.accepted).toBe(total);
    } finally {
      child.kill("SIGTERM");
    }
  });
});

describe.runIf(haveMosquitto && haveKafka)("LAN agent with Kafka (KRaft)", () => {
  it("consumes a topic in a group and commits offsets only once the edge acknowledged", async () => {
    const brokers = kafka?.brokers ?? [];
    const client = new KafkaClient({ clientId: "test", brokers, logLevel: logLevel.NOTHING });
    const admin = client.admin();
    const producer = client.producer({ allowAutoTopicCreation: true });
    await Promise.all([admin.connect(), producer.connect()]);
    const topic = "homelab.energy";
    const group = "edgemesh-agent-test";
    const base = Date.now() - 3_600_000;
    await admin.createTopics({
      topics: [topic, "homelab.commands"].map((name) => ({ topic: name, numPartitions: 1, replicationFactor: 1 })),
      waitForLeaders: true,
    });
    await producer.send({ topic, messages: Array.from({ length: 50 }, (_, i) => ({ key: "kmeter1", value: meterReading(i, base) })) });
    const committed = async () => (await admin.fetchOffsets({ groupId: group, topics: [topic] }))[0]?.partitions[0]?.offset;

    proxy.mode = "down";
    const agent = await agentFor({
      devices: ["kmeter1"],
      viaProxy: true,
      extra: `kafka:\n  brokers: [${brokers.join(", ")}]\n  group_id: ${group}\n  commands_topic: homelab.commands\n  sources:\n    - topic: ${topic}\n      routing_key: sensors.energy.{key}\n`,
    });
    try {
      await until(() => (agent.outbox.depth === 50 ? true : undefined), "50 Kafka records in the outbox", 90_000);
      await new Promise((r) => setTimeout(r, 1000));
      // Consumed, on disk, but not acknowledged by the edge: nothing committed.
      expect(await committed()).toBe("-1");
      proxy.mode = "up";
      await until(async () => ((await storedReadings(edge, "kmeter1", base)) === 50 ? true : undefined), "50 stored readings");
      await until(async () => ((await committed()) === "50" ? true : undefined), "offset 50 committed");
      expect((await twinOf(edge, "kmeter1")).counters.accepted).toBe(50);
      expect(agent.kafka?.tracker.pending).toBe(0);

      // The sink: a command the agent delivers is also produced to the LAN's commands topic.
      const seen: unknown[] = [];
      const consumer = client.consumer({ groupId: "test-commands-reader" });
      await consumer.connect();
      await consumer.subscribe({ topic: "homelab.commands", fromBeginning: true });
      await consumer.run({ eachMessage: async ({ message }) => void seen.push(JSON.parse(String(message.value))) });
      await edge.admin("POST", "/v1/devices/kmeter1/commands", { command: "reset_counter", parameters: { to: 0 } });
      await until(() => (seen.length > 0 ? true : undefined), "the command on homelab.commands");
      expect(seen[0]).toMatchObject({ device: "kmeter1", command: "reset_counter", parameters: { to: 0 } });
      await consumer.disconnect();
    } finally {
      proxy.mode = "up";
      await agent.stop();
      await Promise.all([admin.disconnect(), producer.disconnect()]);
    }
  });
});
