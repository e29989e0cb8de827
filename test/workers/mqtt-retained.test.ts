/**
 * The MQTT gateway's device namespace inside workerd: retained messages, subscriptions with
 * wildcards inside `devices/<id>/…`, forwarding between a device's own connections, message
 * expiry, wills published (and delayed), and commands at QoS 2.
 */
import { runDurableObjectAlarm } from "cloudflare:test";
import { env } from "cloudflare:workers";
import type { Packet } from "mqtt-packet";
import { describe, expect, it } from "vitest";
import { REASON } from "../../shared/mqtt";
import { ADMIN, call, createDevice, eventually, uniqueId } from "./helpers";
import { type Client, connectPacket, open, publish, twinOf, type V } from "./mqtt-harness";

type Publish = Packet & {
  topic: string;
  payload: Uint8Array;
  retain: boolean;
  qos: number;
  messageId?: number;
  properties?: Record<string, unknown>;
};

async function newDevice(): Promise<{ device: string; token: string }> {
  const { device, token } = await createDevice({ id: uniqueId("mr"), type: "climate", room: "den" });
  return { device: device.id, token };
}

/** A connection of the device under a client id of its own (`<device>-<suffix>` or the device id). */
async function join(device: string, token: string, version: V, clientId = device, extra: Record<string, unknown> = {}): Promise<Client> {
  const client = await open(device, version);
  client.send(connectPacket(device, token, version, { clientId, ...extra }));
  const connack = (await client.next("connack")) as { returnCode?: number; reasonCode?: number };
  expect(version === 5 ? connack.reasonCode : connack.returnCode).toBe(0);
  return client;
}

async function subscribe(client: Client, subscriptions: Record<string, unknown>[], messageId = 1): Promise<number[]> {
  client.send({ cmd: "subscribe", messageId, subscriptions } as unknown as Packet);
  return ((await client.next("suback")) as { granted: number[] }).granted;
}

const reasonOf = (packet: Packet) => (packet as { reasonCode?: number }).reasonCode ?? 0;
const text = (packet: Publish) => new TextDecoder().decode(packet.payload);

/** Everything the client received by the time a PINGREQ round trip completes. */
async function settled(client: Client): Promise<Publish[]> {
  client.send({ cmd: "pingreq" });
  await client.next("pingresp");
  return client.packets.filter((p) => p.cmd === "publish") as Publish[];
}

async function sendCommand(device: string, command: string): Promise<string> {
  const sent = await call(`/v1/devices/${device}/commands`, {
    method: "POST",
    headers: { ...ADMIN, "content-type": "application/json" },
    body: JSON.stringify({ command }),
  });
  expect(sent.status).toBe(202);
  return ((await sent.json()) as { command: { id: string } }).command.id;
}

describe("MQTT gateway: retained messages", () => {
  it("kept per topic, sent with the retain flag on subscribe, removed by an empty retained payload", async () => {
    const { device, token } = await newDevice();
    const writer = await join(device, token, 5);
    writer.send(publish(`devices/${device}/state/relay`, "on", 1, 1, { retain: true }));
    expect(reasonOf(await writer.next("puback"))).toBe(REASON.success);

    const reader = await join(device, token, 5, `${device}-reader`);
    expect(await subscribe(reader, [{ topic: `devices/${device}/state/#`, qos: 1 }])).toEqual([0]);
    const got = (await reader.next("publish")) as Publish;
    expect({ topic: got.topic, payload: text(got), retain: got.retain, qos: got.qos }).toEqual({
      topic: `devices/${device}/state/relay`,
      payload: "on",
      retain: true,
      qos: 0,
    });

    // [MQTT-3.3.1-6] an empty retained payload removes it.
    writer.send(publish(`devices/${device}/state/relay`, "", 1, 2, { retain: true }));
    expect(reasonOf(await writer.next("puback"))).toBe(REASON.success);
    const late = await join(device, token, 4, `${device}-late`);
    expect(await subscribe(late, [{ topic: `devices/${device}/state/#`, qos: 0 }])).toEqual([0]);
    expect(await settled(late)).toEqual([]);
  });

  it("a retained reading on the telemetry topic is routed (the twin has it) and kept", async () => {
    const { device, token } = await newDevice();
    const writer = await join(device, token, 4);
    writer.send(publish(`devices/${device}/telemetry`, { payload: { temperature: 22.5 } }, 1, 1, { retain: true }));
    await writer.next("puback");
    const twin = await eventually(async () => {
      const t = await twinOf(device);
      return t.reported.readings.temperature ? t : undefined;
    });
    expect(twin.reported.readings.temperature?.value).toBe(22.5);
    const reader = await join(device, token, 4, `${device}-r`);
    await subscribe(reader, [{ topic: `devices/${device}/telemetry`, qos: 0 }]);
    const got = (await reader.next("publish")) as Publish;
    expect(got.retain).toBe(true);
    expect(JSON.parse(text(got))).toEqual({ payload: { temperature: 22.5 } });
  });

  it("v5 message expiry: an expired retained message is not sent; a live one carries what is left of its interval", async () => {
    const { device, token } = await newDevice();
    const writer = await join(device, token, 5);
    writer.send(publish(`devices/${device}/state/short`, "a", 1, 1, { retain: true, properties: { messageExpiryInterval: 1 } }));
    writer.send(publish(`devices/${device}/state/long`, "b", 1, 2, { retain: true, properties: { messageExpiryInterval: 3600 } }));
    await writer.next("puback");
    await writer.next("puback");
    await new Promise((r) => setTimeout(r, 1100));
    const reader = await join(device, token, 5, `${device}-r`);
    await subscribe(reader, [{ topic: `devices/${device}/state/+`, qos: 0 }]);
    const received = await settled(reader);
    expect(received.map((p) => p.topic)).toEqual([`devices/${device}/state/long`]);
    const left = received[0]?.properties?.messageExpiryInterval as number;
    expect(left).toBeGreaterThan(3500);
    expect(left).toBeLessThanOrEqual(3600);
  });

  it("v5 retain handling: 2 sends nothing, 1 sends only for a new subscription", async () => {
    const { device, token } = await newDevice();
    const writer = await join(device, token, 5);
    writer.send(publish(`devices/${device}/state/x`, "1", 1, 1, { retain: true }));
    await writer.next("puback");
    const reader = await join(device, token, 5, `${device}-r`);
    await subscribe(reader, [{ topic: `devices/${device}/state/x`, qos: 0, rh: 2 }], 1);
    expect(await settled(reader)).toEqual([]);
    await subscribe(reader, [{ topic: `devices/${device}/state/#`, qos: 0, rh: 1 }], 2);
    expect((await settled(reader)).length).toBe(1);
    await subscribe(reader, [{ topic: `devices/${device}/state/#`, qos: 0, rh: 1 }], 3);
    expect((await settled(reader)).length).toBe(1);
  });

  it("a device holds at most 100 retained topics: the next is refused with 0x97, replacing one still works", async () => {
    const { device, token } = await newDevice();
    const writer = await join(device, token, 5);
    for (let i = 1; i <= 100; i++) writer.send(publish(`devices/${device}/state/${i}`, "x", 1, i, { retain: true }));
    for (let i = 1; i <= 100; i++) expect(reasonOf(await writer.next("puback"))).toBe(REASON.success);
    writer.send(publish(`devices/${device}/state/101`, "x", 1, 101, { retain: true }));
    expect(reasonOf(await writer.next("puback"))).toBe(REASON.quotaExceeded);
    writer.send(publish(`devices/${device}/state/7`, "y", 1, 102, { retain: true }));
    expect(reasonOf(await writer.next("puback"))).toBe(REASON.success);
  });
});

describe("MQTT gateway: the device's own namespace", () => {
  it("subscriptions stay inside devices/<id>/… (wildcards allowed there); malformed filters get 0x8F", async () => {
    const { device, token } = await newDevice();
    const v5 = await join(device, token, 5);
    const granted = await subscribe(v5, [
      { topic: "devices/someone-else/#", qos: 0 },
      { topic: "devices/+/state", qos: 0 },
      { topic: `devices/${device}/a#`, qos: 0 },
      { topic: "#", qos: 0 },
      { topic: `devices/${device}/+/x`, qos: 1 },
      { topic: `devices/${device}/commands`, qos: 2 },
    ]);
    expect(granted).toEqual([REASON.notAuthorized, REASON.notAuthorized, REASON.topicFilterInvalid, REASON.notAuthorized, 0, 2]);
    const v4 = await join(device, token, 4, `${device}-v4`);
    expect(await subscribe(v4, [{ topic: "devices/+/state", qos: 0 }])).toEqual([0x80]);
  });

  it("a device may not publish to the topics the edge publishes (its commands and desired state): 0x87", async () => {
    const { device, token } = await newDevice();
    const client = await join(device, token, 5);
    client.send(publish(`devices/${device}/commands`, "{}", 1, 1));
    expect(reasonOf(await client.next("puback"))).toBe(REASON.notAuthorized);
    client.send(publish(`devices/${device}/desired`, "{}", 1, 2));
    expect(reasonOf(await client.next("puback"))).toBe(REASON.notAuthorized);
  });

  it("publishes reach the device's other subscribed connections, not the sender with No Local", async () => {
    const { device, token } = await newDevice();
    const a = await join(device, token, 5);
    const b = await join(device, token, 5, `${device}-b`);
    await subscribe(a, [{ topic: `devices/${device}/state/#`, qos: 0, nl: true }]);
    await subscribe(b, [
      { topic: `devices/${device}/state/#`, qos: 0, rap: true },
      { topic: `devices/${device}/telemetry`, qos: 0 },
    ]);
    a.send(publish(`devices/${device}/state/mode`, "eco", 1, 1, { retain: true }));
    expect(reasonOf(await a.next("puback"))).toBe(REASON.success);
    const forwarded = (await b.next("publish")) as Publish;
    expect({ topic: forwarded.topic, payload: text(forwarded), retain: forwarded.retain }).toEqual({
      topic: `devices/${device}/state/mode`,
      payload: "eco",
      retain: true, // Retain As Published
    });
    a.send(publish(`devices/${device}/telemetry`, { payload: { temperature: 20 } }, 1, 2));
    expect(reasonOf(await a.next("puback"))).toBe(REASON.success);
    const reading = (await b.next("publish")) as Publish;
    expect(reading.topic).toBe(`devices/${device}/telemetry`);
    expect(reading.retain).toBe(false);
    expect(await settled(a)).toEqual([]);
  });
});

describe("MQTT gateway: wills", () => {
  it("the will is published: handed to subscribers, retained for later ones, and the twin goes offline", async () => {
    const { device, token } = await newDevice();
    const status = `devices/${device}/status`;
    const watcher = await join(device, token, 4, `${device}-watch`);
    await subscribe(watcher, [{ topic: status, qos: 0 }]);
    const dying = await join(device, token, 4, device, { will: { topic: status, payload: "offline", qos: 1, retain: true } });
    dying.ws.close(1000, "network gone");
    const live = (await watcher.next("publish")) as Publish;
    expect({ topic: live.topic, payload: text(live), retain: live.retain }).toEqual({ topic: status, payload: "offline", retain: false });
    const offline = await eventually(async () => {
      const t = await twinOf(device);
      return t.availability.reason === "last_will" ? t : undefined;
    });
    expect(offline.availability.status).toBe("offline");
    const later = await join(device, token, 5, `${device}-later`);
    await subscribe(later, [{ topic: status, qos: 0 }]);
    const kept = (await later.next("publish")) as Publish;
    expect({ payload: text(kept), retain: kept.retain }).toEqual({ payload: "offline", retain: true });
  });

  it("a will on the telemetry topic is routed under the credential it was given, and refused once the token rotated", async () => {
    const { device, token } = await newDevice();
    const will = { topic: `devices/${device}/telemetry`, payload: JSON.stringify({ payload: { battery: 3 } }), qos: 0, retain: false };
    const first = await join(device, token, 4, device, { will });
    first.ws.close(1000, "gone");
    const twin = await eventually(async () => {
      const t = await twinOf(device);
      return t.reported.readings.battery ? t : undefined;
    });
    expect(twin.reported.readings.battery?.value).toBe(3);

    const other = await newDevice();
    const second = await join(other.device, other.token, 4, other.device, {
      will: { ...will, topic: `devices/${other.device}/telemetry` },
    });
    const rotated = await call(`/v1/devices/${other.device}/token`, { method: "POST", headers: ADMIN });
    expect(rotated.status).toBeLessThan(300);
    second.ws.close(1000, "gone");
    const after = await eventually(async () => {
      const t = await twinOf(other.device);
      return t.availability.reason === "last_will" ? t : undefined;
    });
    expect(after.reported.readings.battery).toBeUndefined();
  });

  it("v5 will delay: the will waits out its interval; a reconnection in time cancels it", async () => {
    const { device, token } = await newDevice();
    const status = `devices/${device}/status`;
    const options = {
      clean: false,
      properties: { sessionExpiryInterval: 60 },
      will: { topic: status, payload: "gone", qos: 0, retain: true, properties: { willDelayInterval: 1 } },
    };
    const first = await join(device, token, 5, device, options);
    first.ws.close(1000, "gone");
    await first.closed;
    expect((await twinOf(device)).availability.reason).not.toBe("last_will");
    await new Promise((r) => setTimeout(r, 1100));
    await runDurableObjectAlarm(env.MQTT_SESSION.getByName(device));
    expect((await twinOf(device)).availability).toMatchObject({ status: "offline", reason: "last_will" });

    const again = await newDevice();
    const lost = await join(again.device, again.token, 5, again.device, {
      ...options,
      will: { ...options.will, topic: `devices/${again.device}/status` },
    });
    lost.ws.close(1000, "blip");
    await lost.closed;
    await join(again.device, again.token, 5, again.device, { clean: false, properties: { sessionExpiryInterval: 60 } });
    await new Promise((r) => setTimeout(r, 1100));
    await runDurableObjectAlarm(env.MQTT_SESSION.getByName(again.device));
    expect((await twinOf(again.device)).availability.status).toBe("online");
    const reader = await join(again.device, again.token, 5, `${again.device}-r`);
    await subscribe(reader, [{ topic: `devices/${again.device}/status`, qos: 0 }]);
    expect(await settled(reader)).toEqual([]);
  });

  it("a will topic with a wildcard refuses the CONNECT (0x90)", async () => {
    const { device, token } = await newDevice();
    const client = await open(device, 5);
    client.send(connectPacket(device, token, 5, { will: { topic: `devices/${device}/#`, payload: "x", qos: 0, retain: false } }));
    expect(reasonOf(await client.next("connack"))).toBe(REASON.topicNameInvalid);
    await client.closed;
  });
});

describe("MQTT gateway: commands at QoS 2", () => {
  it("PUBLISH → PUBREC → PUBREL → PUBCOMP, with the command's remaining lifetime as v5 message expiry", async () => {
    const { device, token } = await newDevice();
    const client = await join(device, token, 5);
    expect(await subscribe(client, [{ topic: `devices/${device}/commands`, qos: 2 }])).toEqual([2]);
    const id = await sendCommand(device, "reboot");
    const delivery = (await client.next("publish")) as Publish;
    expect(delivery.qos).toBe(2);
    expect(delivery.properties?.messageExpiryInterval).toBeGreaterThan(0);
    expect(JSON.parse(text(delivery))).toMatchObject({ id, command: "reboot" });
    client.send({ cmd: "pubrec", messageId: delivery.messageId } as Packet);
    expect((await client.next("pubrel")) as { messageId: number }).toMatchObject({ messageId: delivery.messageId });
    client.send({ cmd: "pubcomp", messageId: delivery.messageId } as Packet);
    // The packet id is free again: a PUBCOMP for it now is a protocol error, so a ping proves the exchange ended cleanly.
    const second = await sendCommand(device, "identify");
    const next = (await client.next("publish")) as Publish;
    expect(JSON.parse(text(next))).toMatchObject({ id: second });
    expect((await settled(client)).length).toBe(2);
  });

  it("a resumed session sends PUBREL again for a command PUBREC'd before the connection dropped", async () => {
    const { device, token } = await newDevice();
    const options = { clean: false, properties: { sessionExpiryInterval: 300 } };
    const first = await join(device, token, 5, device, options);
    await subscribe(first, [{ topic: `devices/${device}/commands`, qos: 2 }]);
    await sendCommand(device, "reboot");
    const delivery = (await first.next("publish")) as Publish;
    first.send({ cmd: "pubrec", messageId: delivery.messageId } as Packet);
    await first.next("pubrel");
    first.ws.close(1000, "dropped before PUBCOMP");
    await first.closed;
    const again = await open(device, 5);
    again.send(connectPacket(device, token, 5, options));
    expect(((await again.next("connack")) as { sessionPresent: boolean }).sessionPresent).toBe(true);
    expect((await again.next("pubrel")) as { messageId: number }).toMatchObject({ messageId: delivery.messageId });
    again.send({ cmd: "pubcomp", messageId: delivery.messageId } as Packet);
    again.send({ cmd: "pingreq" });
    await again.next("pingresp");
    expect(again.isClosed()).toBe(false);
  });
});

describe("MQTT gateway: QoS 2 in a persistent session, and results under the connection's token", () => {
  it("a QoS 2 publish PUBREC'd before the connection dropped is not ingested again when the resumed session repeats it", async () => {
    const { device, token } = await newDevice();
    const options = { clean: false, properties: { sessionExpiryInterval: 300 } };
    const first = await join(device, token, 5, device, options);
    first.send(publish(`devices/${device}/telemetry`, { payload: { temperature: 21 } }, 2, 7));
    expect(reasonOf(await first.next("pubrec"))).toBe(REASON.success);
    first.ws.close(1000, "dropped before PUBREL");
    await first.closed;
    const again = await join(device, token, 5, device, options);
    again.send(publish(`devices/${device}/telemetry`, { payload: { temperature: 21 } }, 2, 7, { dup: true }));
    expect(reasonOf(await again.next("pubrec"))).toBe(REASON.success);
    again.send({ cmd: "pubrel", messageId: 7 } as Packet);
    expect(reasonOf(await again.next("pubcomp"))).toBe(REASON.success);
    const twin = await call(`/v1/devices/${device}/twin`, { headers: ADMIN });
    expect(((await twin.json()) as { counters: { accepted: number } }).counters.accepted).toBe(1);
  });

  it("a command result over MQTT after the token was rotated ends the connection (0x87) and leaves the command open", async () => {
    const { device, token } = await newDevice();
    const client = await join(device, token, 5);
    const id = await sendCommand(device, "reboot");
    const rotated = await call(`/v1/devices/${device}/token`, { method: "POST", headers: ADMIN });
    expect(rotated.status).toBeLessThan(300);
    client.send(publish(`devices/${device}/commands/${id}/result`, { status: "succeeded" }, 1, 1));
    expect(reasonOf(await client.next("disconnect"))).toBe(REASON.notAuthorized);
    const command = await call(`/v1/devices/${device}/commands/${id}`, { headers: ADMIN });
    expect(((await command.json()) as { command: { status: string } }).command.status).not.toBe("succeeded");
  });
});
