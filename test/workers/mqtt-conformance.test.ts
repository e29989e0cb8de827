/**
 * The gateway's own MQTT conformance suite, byte by byte: each finding of issue 15 and the other
 * "must close" rules of MQTT 3.1.1 and 5.0. Every case checks the whole byte stream the gateway
 * sent (checkStream: nothing truncated, nothing unparsable, nothing acknowledged that must not
 * be) and that a bystander connection keeps working.
 */
import { runDurableObjectAlarm } from "cloudflare:test";
import { env } from "cloudflare:workers";
import type { Packet } from "mqtt-packet";
import { describe, expect, it } from "vitest";
import { PUBACK_REASONS } from "../../durable-objects/mqtt/reasons";
import { type Conn, KEEP_ALIVE_MARGIN_MS, keepAliveDeadline } from "../../durable-objects/mqtt/types";
import { REASON } from "../../shared/mqtt";
import { createDevice, uniqueId } from "./helpers";
import {
  type Client,
  checkStream,
  connected,
  connectPacket,
  open,
  packet,
  props,
  publish,
  type RawConnect,
  rawConnect,
  str,
  u16,
  u32,
  type V,
  varint,
} from "./mqtt-harness";

const utf8 = (s: string) => [...new TextEncoder().encode(s)];
/** A PUBLISH built from bytes: QoS in the flags, a packet id for QoS > 0, v5 properties. */
function rawPublish(topic: string | number[], qos: 0 | 1 | 2, v5: boolean, properties: number[] = [0], payload = "{}", flags = 0) {
  return packet(0x30 | (qos << 1) | flags, [...str(topic), ...(qos > 0 ? u16(1) : []), ...(v5 ? properties : []), ...utf8(payload)]);
}

async function bystanderWorks(version: V): Promise<void> {
  const bystander = await connected(version);
  bystander.client.send(publish(`devices/${bystander.device}/telemetry`, { payload: { temperature: 3 } }, 1, 1));
  await bystander.client.next("puback");
}

/** After CONNECT: the act closes the connection (v5: DISCONNECT with the reason first); nothing else is answered. */
async function closes(version: V, act: (c: Client, device: string) => void, reason?: number): Promise<void> {
  const { device, client } = await connected(version);
  act(client, device);
  const closed = await client.closed;
  await client.settled();
  expect(closed.code).toBeGreaterThanOrEqual(1000);
  const stream = checkStream(client.bytes, version);
  expect(stream).toEqual(version === 5 ? ["connack", "disconnect"] : ["connack"]);
  if (version === 5) expect((client.packets[1] as { reasonCode?: number }).reasonCode).toBe(reason);
  expect(client.streamErrors).toEqual([]);
  await bystanderWorks(version);
}

/**
 * A CONNECT that must be refused: with a code, v5 gets a CONNACK with it (and a Reason String) and
 * 3.1.1 the 4-byte CONNACK; without one, nothing at all. Then the close.
 */
async function connectRefused(version: V, build: (device: string, token: string) => RawConnect, code?: number): Promise<void> {
  const { device, token } = await createDevice({ id: uniqueId("mq"), type: "climate" });
  const client = await open(device.id, version);
  client.raw(rawConnect({ version, clientId: device.id, username: device.id, password: token, ...build(device.id, token) }));
  await client.closed;
  await client.settled();
  if (code === undefined) expect(client.bytes).toEqual([]);
  else if (version === 4) expect(client.bytes).toEqual([0x20, 0x02, 0x00, code]);
  else {
    expect(checkStream(client.bytes, 5)).toEqual(["connack"]);
    expect((client.packets[0] as { reasonCode?: number }).reasonCode).toBe(code);
  }
  await bystanderWorks(version);
}

/** The next PUBLISH on this topic (the desired state may come first on a wildcard). */
async function publishOn(client: Client, topic: string): Promise<Packet & { topic: string; retain: boolean }> {
  for (let i = 0; i < 5; i++) {
    const p = (await client.next("publish")) as Packet & { topic: string; retain: boolean };
    if (p.topic === topic) return p;
  }
  throw new Error(`no publish on ${topic.slice(0, 80)}`);
}

describe("issue 15, finding 1: v5 CONNACK never carries Maximum QoS 2", () => {
  it("the CONNACK leaves Maximum QoS out (absent means 2) and parses cleanly", async () => {
    const { client } = await connected(5);
    await client.settled();
    const connack = client.packets[0] as { properties?: Record<string, unknown> };
    expect(connack.properties?.maximumQoS).toBeUndefined();
    expect(connack.properties).toMatchObject({ receiveMaximum: 32, topicAliasMaximum: 16 });
    // Maximum QoS is property 0x24: it must not be in the bytes at all.
    const propertyBytes = client.bytes.slice(5);
    expect(checkStream(client.bytes, 5)).toEqual(["connack"]);
    expect(propertyBytes.indexOf(0x24)).toBe(-1);
  });
});

describe("issue 15, finding 2: PUBACK / PUBREC reason codes come from their table", () => {
  it("a result for an unknown command gets 0x83, not 0x92", async () => {
    const { device, client } = await connected(5);
    client.send(publish(`devices/${device}/commands/no-such-command/result`, { status: "succeeded" }, 1, 4));
    const ack = (await client.next("puback")) as { reasonCode?: number };
    expect(ack.reasonCode).toBe(REASON.implementationSpecific);
    expect(PUBACK_REASONS.has(ack.reasonCode as number)).toBe(true);
  });

  for (const qos of [1, 2] as const) {
    it(`telemetry over MAX_MESSAGE_BYTES at QoS ${qos} gets 0x83, not 0x95`, async () => {
      const { device, client } = await connected(5);
      client.send(publish(`devices/${device}/telemetry`, { payload: { blob: "x".repeat(70_000) } }, qos, 5));
      const ack = (await client.next(qos === 1 ? "puback" : "pubrec")) as { reasonCode?: number };
      expect(ack.reasonCode).toBe(REASON.implementationSpecific);
      await client.settled();
      checkStream(client.bytes, 5);
      client.send({ cmd: "pingreq" });
      await client.next("pingresp");
    });
  }
});

describe("issue 15, finding 3: truncated packets close the connection, never a truncated acknowledgement", () => {
  for (const version of [4, 5] as const) {
    const ackReason = version === 5 ? REASON.malformedPacket : undefined;
    it(`v${version}: a QoS 1 PUBLISH that ends before its packet id`, () =>
      closes(version, (c, d) => c.raw(packet(0x32, [...str(`devices/${d}/telemetry`), 0])), ackReason));
    it(`v${version}: a QoS 2 PUBLISH with no packet id`, () =>
      closes(version, (c, d) => c.raw(packet(0x34, str(`devices/${d}/telemetry`))), ackReason));
    it(`v${version}: an empty PUBACK (40 00)`, () => closes(version, (c) => c.raw(new Uint8Array([0x40, 0x00])), ackReason));
    it(`v${version}: a one-byte PUBREC (50 01 00)`, () => closes(version, (c) => c.raw(new Uint8Array([0x50, 0x01, 0x00])), ackReason));
    it(`v${version}: an empty PUBREL (62 00)`, () => closes(version, (c) => c.raw(new Uint8Array([0x62, 0x00])), ackReason));
    it(`v${version}: a one-byte PUBREL followed by a PINGREQ`, () =>
      closes(version, (c) => c.raw(new Uint8Array([0x62, 0x01, 0x00, 0xc0, 0x00])), ackReason));
    it(`v${version}: an empty PUBCOMP`, () => closes(version, (c) => c.raw(new Uint8Array([0x70, 0x00])), ackReason));
  }
});

describe("issue 15, finding 4: a malformed v5 property is never acknowledged or retained", () => {
  it("a retained PUBLISH whose User Property runs past the packet closes with 0x81; the topic stays clean", async () => {
    const { device, token, client } = await connected(5);
    const topic = `devices/${device}/state/relay`;
    // A User Property "k" whose value claims 255 bytes: it runs past the property block and the
    // packet (mqtt-packet read it as null and the old gateway retained it).
    const bad = [...varint(6), 0x26, ...str("k"), 0x00, 0xff];
    client.raw(packet(0x33, [...str(topic), ...u16(9), ...bad, ...utf8("on")]));
    expect(((await client.next("disconnect")) as { reasonCode?: number }).reasonCode).toBe(REASON.malformedPacket);
    await client.closed;
    await client.settled();
    expect(checkStream(client.bytes, 5)).toEqual(["connack", "disconnect"]);
    // A later v5 subscriber gets no retained message and stays connected.
    const later = await open(device, 5);
    later.send({ ...connectPacket(device, token, 5), clientId: `${device}-later` } as Packet);
    await later.next("connack");
    later.send({ cmd: "subscribe", messageId: 2, subscriptions: [{ topic: `devices/${device}/#`, qos: 0 }] } as Packet);
    await later.next("suback");
    later.send({ cmd: "pingreq" });
    await later.next("pingresp");
    expect(later.packets.filter((p) => p.cmd === "publish" && (p as { topic: string }).topic === topic)).toEqual([]);
    expect(later.isClosed()).toBe(false);
  });
});

describe("issue 15, finding 5: an empty SUBSCRIBE or UNSUBSCRIBE closes", () => {
  it("v5 SUBSCRIBE without filters: 0x82", () => closes(5, (c) => c.raw(packet(0x82, [...u16(1), 0])), REASON.protocolError));
  it("v3.1.1 SUBSCRIBE without filters: closed, no SUBACK", () => closes(4, (c) => c.raw(packet(0x82, u16(1)))));
  it("v5 UNSUBSCRIBE without filters: 0x82", () => closes(5, (c) => c.raw(packet(0xa2, [...u16(1), 0])), REASON.protocolError));
  it("v3.1.1 UNSUBSCRIBE without filters: closed, no UNSUBACK", () => closes(4, (c) => c.raw(packet(0xa2, u16(1)))));
});

describe("issue 15, finding 6: ill-formed UTF-8 and U+0000 close the connection", () => {
  const badUtf8 = [0xc3, 0x28];
  const surrogate = [0xed, 0xa0, 0x80];
  for (const version of [4, 5] as const) {
    const reason = version === 5 ? REASON.malformedPacket : undefined;
    it(`v${version}: a topic filter with ill-formed UTF-8`, () =>
      closes(
        version,
        (c, d) => c.raw(packet(0x82, [...u16(1), ...(version === 5 ? [0] : []), ...str([...utf8(`devices/${d}/`), ...badUtf8]), 0])),
        reason,
      ));
    it(`v${version}: a topic filter with U+0000`, () =>
      closes(
        version,
        (c, d) => c.raw(packet(0x82, [...u16(1), ...(version === 5 ? [0] : []), ...str(`devices/${d}/a\u0000b`), 0])),
        reason,
      ));
    it(`v${version}: an UNSUBSCRIBE filter with an encoded surrogate`, () =>
      closes(version, (c) => c.raw(packet(0xa2, [...u16(1), ...(version === 5 ? [0] : []), ...str(surrogate)])), reason));
    it(`v${version}: a topic name with U+0000`, () =>
      closes(version, (c, d) => c.raw(rawPublish(`devices/${d}/a\u0000`, 1, version === 5)), reason));
    it(`v${version}: a client id with ill-formed UTF-8`, () =>
      connectRefused(version, (d) => ({ clientId: [...utf8(d), ...badUtf8] }), version === 5 ? REASON.malformedPacket : undefined));
    it(`v${version}: a client id with U+0000`, () =>
      connectRefused(version, (d) => ({ clientId: `${d}\u0000` }), version === 5 ? REASON.malformedPacket : undefined));
    it(`v${version}: a user name with ill-formed UTF-8`, () =>
      connectRefused(version, () => ({ username: badUtf8 }), version === 5 ? REASON.malformedPacket : undefined));
  }
  it("v5: a Content Type with ill-formed UTF-8", () =>
    closes(5, (c, d) => c.raw(rawPublish(`devices/${d}/state`, 1, true, props([0x03, ...str(badUtf8)]))), REASON.malformedPacket));
  it("v5: a User Property holding U+0000", () =>
    closes(
      5,
      (c, d) => c.raw(rawPublish(`devices/${d}/state`, 1, true, props([0x26, ...str("k"), ...str("a\u0000")]))),
      REASON.malformedPacket,
    ));
  it("v5: a Reason String with ill-formed UTF-8 in a PUBACK", () =>
    closes(5, (c) => c.raw(packet(0x40, [...u16(9), 0x00, ...props([0x1f, ...str(surrogate)])])), REASON.malformedPacket));
});

describe("issue 15, finding 7: v5 CONNECT properties are validated", () => {
  const refusal = (code: number) => code;
  it("Receive Maximum 0: CONNACK 0x82", () => connectRefused(5, () => ({ properties: props([0x21, ...u16(0)]) }), refusal(0x82)));
  it("Maximum Packet Size 0: CONNACK 0x82", () => connectRefused(5, () => ({ properties: props([0x27, ...u32(0)]) }), refusal(0x82)));
  it("a Session Expiry Interval given twice: CONNACK 0x82", () =>
    connectRefused(5, () => ({ properties: props([0x11, ...u32(60)], [0x11, ...u32(60)]) }), refusal(0x82)));
  it("an Authentication Method: CONNACK 0x8C [MQTT-4.12.0-1]", () =>
    connectRefused(5, () => ({ properties: props([0x15, ...str("SCRAM-SHA-1")]) }), refusal(0x8c)));
  it("Authentication Data without a method: CONNACK 0x82", () =>
    connectRefused(5, () => ({ properties: props([0x16, ...str("xx")]) }), refusal(0x82)));
  it("Request Problem Information 2: CONNACK 0x82", () => connectRefused(5, () => ({ properties: props([0x17, 2]) }), refusal(0x82)));
  it("a property only the server sends (Maximum QoS): CONNACK 0x81", () =>
    connectRefused(5, () => ({ properties: props([0x24, 1]) }), refusal(0x81)));
  it("properties running past the packet: CONNACK 0x81", () => connectRefused(5, () => ({ properties: [0x20, 0x11] }), refusal(0x81)));
  for (const version of [4, 5] as const) {
    it(`v${version}: Will QoS 3 is refused`, () =>
      connectRefused(
        version,
        (d) => ({ will: { topic: `devices/${d}/status`, payload: "gone", qos: 3 } }),
        version === 5 ? refusal(0x81) : undefined,
      ));
    it(`v${version}: Will Retain without a will is refused`, () =>
      connectRefused(version, () => ({ flags: 0x22 }), version === 5 ? refusal(0x81) : undefined));
    it(`v${version}: the reserved connect flag is refused`, () =>
      connectRefused(version, () => ({ flags: 0x03 }), version === 5 ? refusal(0x81) : undefined));
    it(`v${version}: bytes after the CONNECT payload are refused`, () =>
      connectRefused(version, () => ({ trailing: [0x00] }), version === 5 ? refusal(0x81) : undefined));
  }
  it("v5: a will property that belongs elsewhere (Topic Alias): CONNACK 0x81", () =>
    connectRefused(
      5,
      (d) => ({ will: { topic: `devices/${d}/status`, payload: "x", properties: props([0x23, ...u16(1)]) } }),
      refusal(0x81),
    ));
  it("v3.1.1: a password without a user name is refused [MQTT-3.1.2-22]", async () => {
    const { device, token } = await createDevice({ id: uniqueId("mq"), type: "climate" });
    const client = await open(device.id, 4);
    client.raw(rawConnect({ version: 4, clientId: device.id, password: token }));
    await client.closed;
    await client.settled();
    expect(client.bytes).toEqual([]);
  });
});

describe("issue 15, finding 8: v5 PUBLISH properties are validated; nothing is acknowledged", () => {
  const cases: [string, number[], number][] = [
    ["a Topic Alias given twice", props([0x23, ...u16(1)], [0x23, ...u16(2)]), REASON.protocolError],
    ["a Message Expiry Interval given twice", props([0x02, ...u32(5)], [0x02, ...u32(6)]), REASON.protocolError],
    ["a Session Expiry Interval (not a PUBLISH property)", props([0x11, ...u32(5)]), REASON.malformedPacket],
    ["a Subscription Identifier from the client", props([0x0b, 1]), REASON.protocolError],
    ["a Payload Format Indicator of 2", props([0x01, 2]), REASON.protocolError],
    ["a Response Topic with a wildcard", props([0x08, ...str("a/#")]), REASON.protocolError],
    ["an unknown property identifier", props([0x7f, 0]), REASON.malformedPacket],
    ["Topic Alias 0", props([0x23, ...u16(0)]), REASON.topicAliasInvalid],
  ];
  for (const [name, properties, reason] of cases) {
    for (const qos of [1, 2] as const) {
      it(`QoS ${qos}: ${name} → 0x${reason.toString(16)}`, () =>
        closes(5, (c, d) => c.raw(rawPublish(`devices/${d}/telemetry`, qos, true, properties, '{"temperature":1}')), reason));
    }
  }
});

describe("issue 15, finding 9: protocol levels and topic lengths", () => {
  for (const level of [2, 6, 0x84]) {
    it(`3.1.1 CONNECT with protocol level ${level}: CONNACK return code 1, then the close [MQTT-3.1.2-2]`, async () => {
      await connectRefused(4, () => ({ level }), 1);
    });
  }
  it("the plain /mqtt relay answers an unsupported level the same way", async () => {
    const { device, token } = await createDevice({ id: uniqueId("mq"), type: "climate" });
    const client = await open(device.id, 4, "/mqtt");
    client.raw(rawConnect({ level: 7, clientId: device.id, username: device.id, password: token }));
    await client.closed;
    await client.settled();
    expect(client.bytes).toEqual([0x20, 0x02, 0x00, 0x01]);
  });
  for (const version of [4, 5] as const) {
    it(`v${version}: topic names over 255 bytes are accepted (here 10,000 bytes), retained and delivered`, async () => {
      const { device, client } = await connected(version);
      const topic = `devices/${device}/${"t".repeat(10_000)}`;
      client.send({ ...publish(topic, "on", 1, 3), retain: true } as Packet);
      const ack = (await client.next("puback")) as { reasonCode?: number };
      if (version === 5) expect(ack.reasonCode).toBe(0);
      client.send({ cmd: "subscribe", messageId: 4, subscriptions: [{ topic: `devices/${device}/#`, qos: 0 }] } as Packet);
      await client.next("suback");
      const retained = await publishOn(client, topic);
      expect(retained).toMatchObject({ topic, retain: true });
      await client.settled();
      checkStream(client.bytes, version);
    });
  }
});

describe("issue 15, finding 10: the keep-alive close is due within 1.5 × keep alive", () => {
  it("the deadline is 1.5 × keep alive less the alarm margin, never before 1.25 ×", () => {
    const at = (keepalive: number) => keepAliveDeadline({ keepalive, lastSeen: 0 } as Conn);
    expect(at(60)).toBe(90_000 - KEEP_ALIVE_MARGIN_MS);
    expect(at(1)).toBe(1_250);
    for (const keepalive of [1, 2, 5, 30, 65_535]) {
      expect(at(keepalive)).toBeLessThan(keepalive * 1500);
      expect(at(keepalive)).toBeGreaterThanOrEqual(keepalive * 1250);
    }
  });

  it("an alarm running after 1.3 × a 4 s keep alive closes the silent connection (0x8D), before 1.5 ×", async () => {
    const { device, client } = await connected(5, { keepalive: 4 });
    await new Promise((r) => setTimeout(r, 5_200));
    await runDurableObjectAlarm(env.MQTT_SESSION.getByName(device));
    expect(((await client.next("disconnect")) as { reasonCode?: number }).reasonCode).toBe(REASON.keepAliveTimeout);
    await client.closed;
  }, 15_000);
});

describe("the other must-close rules", () => {
  const v5Cases: [string, (c: Client, d: string) => void, number][] = [
    ["reserved flags on PUBACK", (c) => c.raw(packet(0x41, u16(1))), REASON.malformedPacket],
    ["PUBREL flags other than 0010", (c) => c.raw(packet(0x60, u16(1))), REASON.malformedPacket],
    ["SUBSCRIBE flags other than 0010", (c, d) => c.raw(packet(0x80, [...u16(1), 0, ...str(`devices/${d}/x`), 0])), REASON.malformedPacket],
    ["UNSUBSCRIBE flags other than 0010", (c, d) => c.raw(packet(0xa0, [...u16(1), 0, ...str(`devices/${d}/x`)])), REASON.malformedPacket],
    ["DUP on a QoS 0 publish", (c, d) => c.raw(rawPublish(`devices/${d}/state`, 0, true, [0], "{}", 0x08)), REASON.malformedPacket],
    ["a PINGREQ with a body", (c) => c.raw(new Uint8Array([0xc0, 0x01, 0x00])), REASON.malformedPacket],
    ["packet type 0", (c) => c.raw(new Uint8Array([0x00, 0x00])), REASON.malformedPacket],
    ["a PUBACK with packet id 0", (c) => c.raw(packet(0x40, u16(0))), REASON.malformedPacket],
    ["a PUBACK with a PUBREL reason (0x92)", (c) => c.raw(packet(0x40, [...u16(1), 0x92])), REASON.malformedPacket],
    ["a PUBACK with trailing bytes after its properties", (c) => c.raw(packet(0x40, [...u16(1), 0, 0, 0xff])), REASON.malformedPacket],
    [
      "a subscription with Retain Handling 3",
      (c, d) => c.raw(packet(0x82, [...u16(1), 0, ...str(`devices/${d}/x`), 0x30])),
      REASON.protocolError,
    ],
    [
      "subscription options with reserved bits",
      (c, d) => c.raw(packet(0x82, [...u16(1), 0, ...str(`devices/${d}/x`), 0xc0])),
      REASON.malformedPacket,
    ],
    ["a subscription with QoS 3", (c, d) => c.raw(packet(0x82, [...u16(1), 0, ...str(`devices/${d}/x`), 0x03])), REASON.malformedPacket],
    [
      "a Subscription Identifier (announced as not available)",
      (c, d) => c.raw(packet(0x82, [...u16(1), ...props([0x0b, 5]), ...str(`devices/${d}/x`), 0])),
      REASON.subscriptionIdentifiersNotSupported,
    ],
    ["an empty topic without a Topic Alias", (c) => c.raw(rawPublish("", 1, true)), REASON.protocolError],
    ["a DISCONNECT raising a session expiry of 0", (c) => c.raw(packet(0xe0, [0x00, ...props([0x11, ...u32(60)])])), REASON.protocolError],
    ["a DISCONNECT with an unknown reason code", (c) => c.raw(packet(0xe0, [0x05])), REASON.malformedPacket],
    ["a remaining length of five bytes", (c) => c.raw(new Uint8Array([0x30, 0xff, 0xff, 0xff, 0xff, 0x01])), REASON.malformedPacket],
    ["a second CONNECT, even a malformed one", (c) => c.raw(new Uint8Array([0x10, 0x01, 0x00])), REASON.protocolError],
  ];
  for (const [name, act, reason] of v5Cases) {
    it(`v5 ${name}: 0x${reason.toString(16)}`, () => closes(5, act, reason));
  }
  const v4Cases: [string, (c: Client, d: string) => void][] = [
    ["a PUBACK longer than its packet id", (c) => c.raw(packet(0x40, [...u16(1), 0]))],
    ["a DISCONNECT with a body", (c) => c.raw(new Uint8Array([0xe0, 0x01, 0x00]))],
    ["packet type 15", (c) => c.raw(new Uint8Array([0xf0, 0x00]))],
    ["an empty topic name", (c) => c.raw(rawPublish("", 1, false))],
    ["subscription options with bits 7-2 set", (c, d) => c.raw(packet(0x82, [...u16(1), ...str(`devices/${d}/x`), 0x04]))],
    ["a PUBLISH with QoS 3", (c, d) => c.raw(packet(0x36, [...str(`devices/${d}/x`), ...u16(1)]))],
  ];
  for (const [name, act] of v4Cases) {
    it(`v3.1.1 ${name}: closed without an answer`, () => closes(4, act));
  }
  it("a packet before CONNECT gets nothing but the close [MQTT-3.1.0-1]", async () => {
    const { device } = await createDevice({ id: uniqueId("mq"), type: "climate" });
    const client = await open(device.id, 5);
    client.raw(packet(0x82, [...u16(1), 0, ...str(`devices/${device.id}/x`), 0]));
    await client.closed;
    await client.settled();
    expect(client.bytes).toEqual([]);
  });
  it("a protocol name other than MQTT closes without CONNACK [MQTT-3.1.2-1]", async () => {
    await connectRefused(4, () => ({ name: "MQTX" }), undefined);
  });
});

describe("well-formed edge cases stay accepted", () => {
  it("a U+FEFF at the start of a topic is kept, not stripped [MQTT-1.5.4-3]", async () => {
    const { device, client } = await connected(5);
    client.send({ cmd: "subscribe", messageId: 1, subscriptions: [{ topic: `devices/${device}/#`, qos: 0 }] } as Packet);
    await client.next("suback");
    client.raw(rawPublish(`devices/${device}/\uFEFFstate`, 1, true, [0], "x"));
    expect((await publishOn(client, `devices/${device}/\uFEFFstate`)).topic).toBe(`devices/${device}/\uFEFFstate`);
    await client.next("puback");
  });
  it("v5 acknowledgements with a reason code and properties are accepted", async () => {
    const { device, client } = await connected(5);
    client.send({ cmd: "subscribe", messageId: 1, subscriptions: [{ topic: `devices/${device}/commands`, qos: 1 }] } as Packet);
    await client.next("suback");
    // An unsolicited PUBREL with a Reason String: answered PUBCOMP 0x92 (packet id unknown), not a violation.
    client.raw(packet(0x62, [...u16(9), 0x00, ...props([0x1f, ...str("ok")], [0x26, ...str("a"), ...str("b")])]));
    expect(((await client.next("pubcomp")) as { reasonCode?: number }).reasonCode).toBe(REASON.packetIdentifierNotFound);
    await client.settled();
    checkStream(client.bytes, 5);
  });
  it("a User Property may repeat", async () => {
    const { device, client } = await connected(5);
    client.raw(
      rawPublish(
        `devices/${device}/telemetry`,
        1,
        true,
        props([0x26, ...str("a"), ...str("1")], [0x26, ...str("a"), ...str("2")]),
        '{"temperature":2}',
      ),
    );
    expect(((await client.next("puback")) as { reasonCode?: number }).reasonCode).toBe(0);
  });
});
