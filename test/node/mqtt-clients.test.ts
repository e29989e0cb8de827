/**
 * Real MQTT clients against the local edge (wrangler dev, the real bundle): MQTT.js over
 * ws://127.0.0.1:<port>/mqtt/<device> with protocol 3.1.1 and 5.0 — publish at every QoS, the
 * readings in the twin, a command received and answered (at QoS 1 and 2), retained messages, the
 * last will (and its retained message), a persistent session (both versions), a denied publish.
 */
import mqtt, { type MqttClient } from "mqtt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type LocalEdge, startLocalEdge } from "../../scripts/lib/local-edge.ts";
import { until } from "../../scripts/lib/wait.ts";
import type { TwinView } from "../../shared/schemas/api/twin.ts";

let edge: LocalEdge;

beforeAll(async () => {
  edge = await startLocalEdge();
});

afterAll(async () => {
  await edge?.stop();
});

let n = 0;
async function newDevice(): Promise<{ id: string; token: string }> {
  const id = `mqttjs-${Date.now().toString(36)}-${++n}`;
  const created = await edge.admin<{ device: { id: string }; token: string }>("POST", "/v1/devices", { id, type: "climate", room: "lab" });
  expect(created.status).toBe(201);
  return { id, token: created.body.token };
}

function connect(id: string, token: string, version: 4 | 5, extra: mqtt.IClientOptions = {}, path = `/mqtt/${id}`): Promise<MqttClient> {
  const client = mqtt.connect(`ws://127.0.0.1:${edge.port}${path}`, {
    protocolVersion: version,
    clientId: id,
    username: id,
    password: token,
    reconnectPeriod: 0,
    connectTimeout: 10_000,
    ...extra,
  });
  return new Promise((resolve, reject) => {
    client.once("connect", () => resolve(client));
    client.once("error", reject);
  });
}

const twin = async (id: string) => (await edge.admin<TwinView>("GET", `/v1/devices/${id}/twin`)).body;

describe("MQTT.js against the local edge", () => {
  for (const version of [4, 5] as const) {
    it(`v${version === 4 ? "3.1.1" : "5.0"}: publish at QoS 0, 1 and 2; the readings reach the twin`, async () => {
      const { id, token } = await newDevice();
      const client = await connect(id, token, version);
      await client.publishAsync(`devices/${id}/telemetry`, JSON.stringify({ payload: { temperature: 20.5 } }), { qos: 0 });
      await client.publishAsync(`devices/${id}/telemetry`, JSON.stringify({ payload: { humidity: 41 } }), { qos: 1 });
      await client.publishAsync(`devices/${id}/telemetry`, JSON.stringify({ battery: 77 }), { qos: 2 });
      const t = await until(async () => {
        const current = await twin(id);
        const r = current.reported.readings;
        return r.temperature && r.humidity && r.battery ? current : undefined;
      }, "three readings");
      expect(t.reported.readings.battery?.value).toBe(77);
      expect(t.availability.status).toBe("online");
      await client.endAsync();
    });

    it(`v${version === 4 ? "3.1.1" : "5.0"}: receives a command and answers it`, async () => {
      const { id, token } = await newDevice();
      const client = await connect(id, token, version);
      await client.subscribeAsync(`devices/${id}/commands`, { qos: 1 });
      const received = new Promise<{ id: string; command: string }>((resolve) =>
        client.on("message", (topic, payload) => {
          if (topic === `devices/${id}/commands`) resolve(JSON.parse(payload.toString()));
        }),
      );
      const sent = await edge.admin<{ command: { id: string } }>("POST", `/v1/devices/${id}/commands`, {
        command: "set_mode",
        parameters: { mode: "eco" },
      });
      expect(sent.status).toBe(202);
      const command = await received;
      expect(command).toMatchObject({ id: sent.body.command.id, command: "set_mode" });
      await client.publishAsync(`devices/${id}/commands/${command.id}/result`, JSON.stringify({ status: "succeeded" }), { qos: 1 });
      const done = await edge.admin<{ command: { status: string } }>("GET", `/v1/devices/${id}/commands/${command.id}`);
      expect(done.body.command.status).toBe("succeeded");
      await client.endAsync();
    });
  }

  it("v5: a refused publish gets its reason code and the connection stays up", async () => {
    const { id, token } = await newDevice();
    const client = await connect(id, token, 5);
    await expect(client.publishAsync(`devices/someone-else/telemetry`, "{}", { qos: 1 })).rejects.toThrow();
    await client.publishAsync(`devices/${id}/telemetry`, JSON.stringify({ temperature: 1 }), { qos: 1 });
    await client.endAsync();
  });

  for (const version of [4, 5] as const) {
    it(`plain /mqtt, as unchanged firmware would use it (v${version}): relayed to the device's session`, async () => {
      const { id, token } = await newDevice();
      const client = await connect(id, token, version, {}, "/mqtt");
      await client.publishAsync(`devices/${id}/telemetry`, JSON.stringify({ temperature: 12 }), { qos: 1 });
      await client.subscribeAsync(`devices/${id}/commands`, { qos: 1 });
      const received = new Promise<string>((resolve) => client.on("message", (_t, payload) => resolve(payload.toString())));
      await edge.admin("POST", `/v1/devices/${id}/commands`, { command: "ping" });
      expect(JSON.parse(await received)).toMatchObject({ command: "ping" });
      expect((await twin(id)).reported.readings.temperature?.value).toBe(12);
      await client.endAsync();
    });
  }

  it("wrong password: the connection is refused", async () => {
    const { id } = await newDevice();
    await expect(connect(id, `${id}.this-is-not-the-secret-at-all`, 4)).rejects.toThrow(/Bad username or password|Not authorized/i);
  });

  it("last will: a dropped connection marks the twin offline (last_will)", async () => {
    const { id, token } = await newDevice();
    const client = await connect(id, token, 4, {
      will: { topic: `devices/${id}/status`, payload: Buffer.from("offline"), qos: 0, retain: false },
    });
    client.stream.destroy(); // no DISCONNECT
    const t = await until(async () => {
      const current = await twin(id);
      return current.availability.status === "offline" ? current : undefined;
    }, "offline");
    expect(t.availability.reason).toBe("last_will");
    client.end(true);
  });

  for (const version of [4, 5] as const) {
    it(`v${version === 4 ? "3.1.1" : "5.0"}: a retained message and a retained will reach a later subscriber; commands at QoS 2`, async () => {
      const { id, token } = await newDevice();
      const status = `devices/${id}/status`;
      const device = await connect(id, token, version, { will: { topic: status, payload: Buffer.from("offline"), qos: 1, retain: true } });
      await device.publishAsync(`devices/${id}/state/relay`, "on", { qos: 1, retain: true });
      const granted = await device.subscribeAsync(`devices/${id}/commands`, { qos: 2 });
      expect(granted.map((g) => g.qos)).toEqual([2]);
      const command = new Promise<{ id: string }>((resolve) =>
        device.on("message", (topic, payload, packet) => {
          if (topic === `devices/${id}/commands` && packet.qos === 2) resolve(JSON.parse(payload.toString()));
        }),
      );
      await edge.admin("POST", `/v1/devices/${id}/commands`, { command: "ping" });
      const delivered = await command;
      await device.publishAsync(`devices/${id}/commands/${delivered.id}/result`, JSON.stringify({ status: "succeeded" }), { qos: 2 });
      device.stream.destroy(); // no DISCONNECT: the will fires

      const reader = await connect(id, token, version, { clientId: `${id}-reader` });
      const retained = new Map<string, string>();
      const both = new Promise<void>((resolve) =>
        reader.on("message", (topic, payload, packet) => {
          if (packet.retain) retained.set(topic, payload.toString());
          if (retained.size === 2) resolve();
        }),
      );
      await reader.subscribeAsync([status, `devices/${id}/state/#`], { qos: 0 });
      await both;
      expect(Object.fromEntries(retained)).toEqual({ [status]: "offline", [`devices/${id}/state/relay`]: "on" });
      const done = await edge.admin<{ command: { status: string } }>("GET", `/v1/devices/${id}/commands/${delivered.id}`);
      expect(done.body.command.status).toBe("succeeded");
      await reader.endAsync();
      device.end(true);
    });
  }

  for (const version of [4, 5] as const) {
    it(`v${version === 4 ? "3.1.1" : "5.0"}: reconnect with a persistent session: the subscription is still there`, async () => {
      const { id, token } = await newDevice();
      const persistent: mqtt.IClientOptions = { clean: false, ...(version === 5 && { properties: { sessionExpiryInterval: 300 } }) };
      const first = await connect(id, token, version, persistent);
      await first.subscribeAsync(`devices/${id}/commands`, { qos: 1 });
      await first.endAsync();
      const second = mqtt.connect(`ws://127.0.0.1:${edge.port}/mqtt/${id}`, {
        protocolVersion: version,
        clientId: id,
        username: id,
        password: token,
        reconnectPeriod: 0,
        resubscribe: false,
        ...persistent,
      });
      const connack = await new Promise<{ sessionPresent: boolean }>((resolve, reject) => {
        second.once("connect", (packet) => resolve(packet));
        second.once("error", reject);
      });
      expect(connack.sessionPresent).toBe(true);
      const received = new Promise<string>((resolve) => second.on("message", (_topic, payload) => resolve(payload.toString())));
      await edge.admin("POST", `/v1/devices/${id}/commands`, { command: "ping" });
      expect(JSON.parse(await received)).toMatchObject({ command: "ping" });
      await second.endAsync();
    });
  }

  it("v3.1.1: a denied publish closes the connection (3.1.1 has no negative acknowledgement)", async () => {
    const { id, token } = await newDevice();
    const client = await connect(id, token, 4);
    const closed = new Promise<void>((resolve) => client.once("close", () => resolve()));
    client.publish(`devices/someone-else/telemetry`, "{}", { qos: 1 });
    await closed;
    expect(edge.log()).not.toContain("mqtt gateway failure");
    client.end(true);
  });
});
