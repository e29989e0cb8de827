/**
 * bench/cost's fleet: seed 004's devices (2 energy meters, a heat pump, 5 temperature sensors,
 * and a motion sensor for events), their messages and rates, and the requests each of the five
 * transports makes — HTTPS one per request, HTTPS up to 100 per request, MQTT over WebSocket at
 * QoS 0 and 1 (the `mqtt` package), and the LAN agent's batch route as agent/uplink.ts uses it.
 * How they are paced at a load's rates: bench/lib/cost-pace.ts.
 */
import mqtt, { type MqttClient } from "mqtt";
import type { LocalEdge } from "../../scripts/lib/local-edge.ts";

export const KINDS = ["meter", "temperature", "heatpump", "event"] as const;
export type Kind = (typeof KINDS)[number];

export const TRANSPORTS = ["https_single", "https_batch", "mqtt_qos0", "mqtt_qos1", "agent_batch"] as const;
export type Transport = (typeof TRANSPORTS)[number];

/** Seed 004's load per kind, messages a day: 2 meters at 1/s, the heat pump every 30 s, 5 sensors every 5 min. */
export const SEED_004_PER_DAY: Record<Kind, number> = { meter: 2 * 86_400, heatpump: 86_400 / 30, temperature: 5 * 288, event: 0 };
/** Seed 004's rate per device at 1×, messages a second (10× and 100× multiply it). */
export const SEED_004_RATE: Record<Kind, number> = { meter: 1, heatpump: 1 / 30, temperature: 1 / 300, event: 0 };
/** The loads bench/cost prices: seed 004's rates × 1, 10, 100. */
export const LOADS = { "1x": 1, "10x": 10, "100x": 100 } as const;
export type Load = keyof typeof LOADS;
/** Readings a message carries (for bytes per reading). */
export const READINGS: Record<Kind, number> = { meter: 4, temperature: 2, heatpump: 5, event: 0 };
/** Devices connected all month at 1× (for AWS IoT Core's connection minutes). */
export const SEED_004_DEVICES = 8;

export const AGENT = "bench-cost-agent";

export interface Device {
  id: string;
  kind: Kind;
  token: string;
  seq: number;
  /** The last timestamp it sent (ms): timestamps are the send time, strictly increasing per device. */
  last: number;
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

  readonly edge: LocalEdge;
  constructor(edge: LocalEdge) {
    this.edge = edge;
  }

  async register(): Promise<void> {
    const agent = await this.edge.admin<{ token: string }>("POST", "/v1/devices", { id: AGENT, kind: "service", type: "agent" });
    if (agent.status !== 201) throw new Error(`agent: ${agent.status} ${JSON.stringify(agent.body)}`);
    this.agentToken = agent.body.token;
    // The meters are added per measurement window (addDevice).
    for (const group of FLEET.filter((g) => g.kind !== "meter")) for (const id of group.ids) await this.addDevice(id, group.kind);
  }

  of(kind: Kind): Device[] {
    return this.devices.filter((d) => d.kind === kind);
  }

  /** One message of the kind, as the device posts it (`{timestamp, payload}`). */
  message(device: Device): { timestamp: string; payload: Record<string, unknown> } {
    const n = ++device.seq;
    // The send time, as a device stamps it (packed series rows group readings by time: docs/series.md).
    device.last = Math.max(Date.now(), device.last + 1);
    const timestamp = new Date(device.last).toISOString();
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

  /**
   * A fresh device of a kind (bench/cost gives each paced meter window its own two meters, so no
   * archive message of one window waits in a twin into the next: docs/cost.md).
   */
  async addDevice(id: string, kind: Kind): Promise<Device> {
    const group = FLEET.find((g) => g.kind === kind) as (typeof FLEET)[number];
    const res = await this.edge.admin<{ token: string }>("POST", "/v1/devices", {
      id,
      type: group.type,
      room: group.room,
      metadata: { agent: AGENT },
      rate: { per_second: 10_000, burst: 10_000 },
    });
    if (res.status !== 201) throw new Error(`device ${id}: ${res.status} ${JSON.stringify(res.body)}`);
    const device: Device = { id, kind, token: res.body.token, seq: 0, last: 0 };
    this.devices.push(device);
    return device;
  }

  /** Opens one MQTT connection per device (before a measurement: connecting is not what a message costs). */
  async connect(devices: readonly Device[]): Promise<void> {
    for (const d of devices) {
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

  /** A device's MQTT connection (connect() first). */
  client(device: Device): MqttClient {
    const client = this.#clients.get(device.id);
    if (!client) throw new Error(`no MQTT connection for ${device.id}`);
    return client;
  }

  /** POST one message (HTTPS single) or an array (HTTPS batch) as the device. */
  postAsDevice(device: Device, body: unknown): Promise<void> {
    return this.#post(device.kind === "event" ? "/v1/events" : "/v1/telemetry", device.token, body);
  }

  /** POST a batch on the agent's route, as agent/uplink.ts does. */
  postAsAgent(messages: { device: Device; message: ReturnType<Fleet["message"]> }[]): Promise<void> {
    return this.#post("/v1/agent/messages", this.agentToken, {
      messages: messages.map(({ device, message }) => ({
        device: device.id,
        type: device.kind === "event" ? "event" : "telemetry",
        ...message,
      })),
    });
  }

  /** Warm-up: `count` messages per device over HTTPS, one at a time (twin, room and series rows exist before counting). */
  async warm(devices: readonly Device[], count: number): Promise<void> {
    for (let i = 0; i < count; i++) await Promise.all(devices.map((d) => this.postAsDevice(d, this.message(d))));
  }
}
