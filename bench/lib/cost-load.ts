/**
 * bench/cost's fleet and transports: seed 004's devices (2 energy meters, a heat pump, 5
 * temperature sensors, and a motion sensor for events), their messages, and the five ways a
 * message reaches the edge — HTTPS one per request, HTTPS 100 per request, MQTT over WebSocket
 * at QoS 0 and 1 (the `mqtt` package), and the LAN agent's batch route as agent/uplink.ts uses it.
 */
import mqtt, { type MqttClient } from "mqtt";
import type { LocalEdge } from "../../scripts/lib/local-edge.ts";

export const KINDS = ["meter", "temperature", "heatpump", "event"] as const;
export type Kind = (typeof KINDS)[number];

export const TRANSPORTS = ["https_single", "https_batch", "mqtt_qos0", "mqtt_qos1", "agent_batch"] as const;
export type Transport = (typeof TRANSPORTS)[number];

/** Seed 004's load per kind, messages a day: 2 meters at 1/s, the heat pump every 30 s, 5 sensors every 5 min. */
export const SEED_004_PER_DAY: Record<Kind, number> = { meter: 2 * 86_400, heatpump: 86_400 / 30, temperature: 5 * 288, event: 0 };
/** Readings a message carries (for bytes per reading). */
export const READINGS: Record<Kind, number> = { meter: 4, temperature: 2, heatpump: 5, event: 0 };
/** Devices connected all month at 1× (for AWS IoT Core's connection minutes). */
export const SEED_004_DEVICES = 8;

export const AGENT = "bench-cost-agent";

interface Device {
  id: string;
  kind: Kind;
  token: string;
  seq: number;
}

const FLEET: { kind: Kind; ids: string[]; type: string; room: string }[] = [
  { kind: "meter", ids: ["meter1", "meter2"], type: "energy", room: "utility" },
  // A heat pump has no queue of its own in seed 001's topology; as an energy consumer it is routed with the meters.
  { kind: "heatpump", ids: ["heatpump"], type: "energy", room: "utility" },
  { kind: "temperature", ids: ["temp1", "temp2", "temp3", "temp4", "temp5"], type: "temperature", room: "living" },
  { kind: "event", ids: ["hall-motion"], type: "motion", room: "hall" },
];

export class Fleet {
  readonly devices: Device[] = [];
  agentToken = "";
  #clients = new Map<string, MqttClient>();
  /** Device timestamps start a day back, one second apart per message, so no two readings share a key. */
  readonly #start = Date.now() - 86_400_000;

  readonly edge: LocalEdge;
  constructor(edge: LocalEdge) {
    this.edge = edge;
  }

  async register(): Promise<void> {
    const agent = await this.edge.admin<{ token: string }>("POST", "/v1/devices", { id: AGENT, kind: "service", type: "agent" });
    if (agent.status !== 201) throw new Error(`agent: ${agent.status} ${JSON.stringify(agent.body)}`);
    this.agentToken = agent.body.token;
    for (const group of FLEET)
      for (const id of group.ids) {
        const res = await this.edge.admin<{ token: string }>("POST", "/v1/devices", {
          id,
          type: group.type,
          room: group.room,
          metadata: { agent: AGENT },
          rate: { per_second: 10_000, burst: 10_000 },
        });
        if (res.status !== 201) throw new Error(`device ${id}: ${res.status} ${JSON.stringify(res.body)}`);
        this.devices.push({ id, kind: group.kind, token: res.body.token, seq: 0 });
      }
  }

  of(kind: Kind): Device[] {
    return this.devices.filter((d) => d.kind === kind);
  }

  /** One message of the kind, as the device posts it (`{timestamp, payload}`). */
  message(device: Device): { timestamp: string; payload: Record<string, unknown> } {
    const n = ++device.seq;
    const timestamp = new Date(this.#start + n * 1000).toISOString();
    const wobble = (n % 17) / 100;
    switch (device.kind) {
      case "meter":
        // Seed 004's energy meter message.
        return { timestamp, payload: { total_energy_kwh: 12.45 + n / 1000, power_kw: 3.2 + wobble, voltage: 230, current: 13.9 + wobble } };
      case "temperature":
        return { timestamp, payload: { temperature: 21.5 + wobble, humidity: 45 } };
      case "heatpump":
        return {
          timestamp,
          payload: { power_kw: 1.8 + wobble, flow_temperature: 35.2, return_temperature: 30.1, outdoor_temperature: 4.5, cop: 3.4 },
        };
      case "event":
        return {
          timestamp,
          payload: { event_type: "state_changed", previous_state: n % 2 ? "off" : "on", current_state: n % 2 ? "on" : "off" },
        };
    }
  }

  async #post(path: string, token: string, body: unknown): Promise<void> {
    const res = await fetch(`${this.edge.url}${path}`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    const text = await res.text();
    if (res.status !== 202 && res.status !== 200) throw new Error(`${path}: ${res.status} ${text.slice(0, 300)}`);
    if (path === "/v1/agent/messages") {
      const { results } = JSON.parse(text) as { results: { status: string }[] };
      const bad = results.filter((r) => r.status !== "stored");
      if (bad.length > 0) throw new Error(`agent batch: ${bad.length} not stored: ${JSON.stringify(bad[0])}`);
    }
  }

  /** Opens the MQTT connections of a kind's devices (before a measurement: connecting is not what a message costs). */
  async connect(kind: Kind): Promise<void> {
    for (const d of this.of(kind)) {
      const client = mqtt.connect(`ws://127.0.0.1:${this.edge.port}/mqtt/${d.id}`, {
        protocolVersion: 4,
        clientId: d.id,
        username: d.id,
        password: d.token,
        reconnectPeriod: 0,
        connectTimeout: 15_000,
        // A lost connection must fail the publish, not queue it out of sight.
        queueQoSZero: false,
      });
      await new Promise<void>((resolve, reject) => {
        client.once("connect", () => resolve());
        client.once("error", reject);
      });
      this.#clients.set(d.id, client);
    }
  }

  async disconnect(): Promise<void> {
    await Promise.all([...this.#clients.values()].map((c) => c.endAsync()));
    this.#clients.clear();
  }

  /** Sends `count` messages of a kind over a transport; resolves when the edge has answered them all. */
  async send(transport: Transport, kind: Kind, count: number, concurrency = 4): Promise<void> {
    const devices = this.of(kind);
    const path = kind === "event" ? "/v1/events" : "/v1/telemetry";
    const pick = (i: number) => devices[i % devices.length] as Device;
    if (transport === "https_single" || transport === "mqtt_qos0" || transport === "mqtt_qos1") {
      let next = 0;
      const worker = async () => {
        for (let i = next++; i < count; i = next++) {
          const device = pick(i);
          const message = this.message(device);
          if (transport === "https_single") await this.#post(path, device.token, message);
          else {
            const client = this.#clients.get(device.id);
            if (!client) throw new Error(`no MQTT connection for ${device.id}`);
            const topic = `devices/${device.id}/${kind === "event" ? "events" : "telemetry"}`;
            await client.publishAsync(topic, JSON.stringify(message), { qos: transport === "mqtt_qos1" ? 1 : 0 });
          }
        }
      };
      await Promise.all(Array.from({ length: concurrency }, worker));
      return;
    }
    for (let sent = 0, request = 0; sent < count; request++) {
      const size = Math.min(100, count - sent);
      if (transport === "https_batch") {
        const device = pick(request);
        await this.#post(
          path,
          device.token,
          Array.from({ length: size }, () => this.message(device)),
        );
      } else {
        const messages = Array.from({ length: size }, (_, i) => {
          const device = pick(sent + i);
          return { device: device.id, type: kind === "event" ? "event" : "telemetry", ...this.message(device) };
        });
        await this.#post("/v1/agent/messages", this.agentToken, { messages });
      }
      sent += size;
    }
  }
}
