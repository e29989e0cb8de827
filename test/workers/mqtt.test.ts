/** The MQTT gateway inside workerd, with raw packets from mqtt-packet: fixtures, CONNECT, PUBLISH at every QoS, commands, wills, violations. */
import { runDurableObjectAlarm } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { generate, type Packet } from "mqtt-packet";
import { describe, expect, it } from "vitest";
import { REASON } from "../../shared/mqtt";
import { ADMIN, call, createDevice, eventually, json, uniqueId } from "./helpers";
import { type Client, connected, connectPacket, decoder, lenTopic, open, publish, twinOf, type V } from "./mqtt-harness";

describe("mqtt-packet round-trip fixtures", () => {
  const fixtures: [string, Packet][] = [
    ["connect", connectPacket("dev-a", "dev-a.0123456789abcdef0123", 4)],
    ["connack", { cmd: "connack", sessionPresent: false, returnCode: 0, reasonCode: 0 } as Packet],
    ["publish qos0", publish("devices/dev-a/telemetry", { payload: { temperature: 21 } }, 0)],
    ["publish qos1", publish("devices/dev-a/telemetry", { payload: { temperature: 21 } }, 1, 7)],
    ["publish qos2", publish("devices/dev-a/telemetry", { payload: { temperature: 21 } }, 2, 8)],
    ["puback", { cmd: "puback", messageId: 7 } as Packet],
    ["pubrec", { cmd: "pubrec", messageId: 8 } as Packet],
    ["pubrel", { cmd: "pubrel", messageId: 8 } as Packet],
    ["pubcomp", { cmd: "pubcomp", messageId: 8 } as Packet],
    ["subscribe", { cmd: "subscribe", messageId: 3, subscriptions: [{ topic: "devices/dev-a/commands", qos: 1 }] } as Packet],
    ["suback", { cmd: "suback", messageId: 3, granted: [1] } as Packet],
    ["unsubscribe", { cmd: "unsubscribe", messageId: 4, unsubscriptions: ["devices/dev-a/commands"] } as Packet],
    ["unsuback", { cmd: "unsuback", messageId: 4 } as Packet],
    ["pingreq", { cmd: "pingreq" } as Packet],
    ["pingresp", { cmd: "pingresp" } as Packet],
    ["disconnect", { cmd: "disconnect" } as Packet],
  ];
  for (const version of [4, 5] as const) {
    for (const [name, packet] of fixtures) {
      it(`v${version} ${name}: bytes ⇄ packet`, () => {
        let p = (version === 5 && packet.cmd === "connect" ? { ...packet, protocolVersion: 5 } : packet) as Packet;
        // v5 acknowledgements carry reason codes.
        if (version === 5 && ["puback", "pubrec", "pubrel", "pubcomp"].includes(p.cmd)) p = { ...p, reasonCode: 0 } as Packet;
        if (version === 5 && p.cmd === "unsuback") p = { ...p, granted: [0] } as Packet;
        const bytes = generate(p, { protocolVersion: version }) as unknown as Uint8Array;
        const dec = decoder(version);
        const out: Packet[] = [];
        dec.on("packet", (x) => out.push(x));
        // Split in two frames: the parser keeps the partial bytes.
        dec.parse(bytes.slice(0, 1));
        dec.parse(bytes.slice(1));
        expect(out).toHaveLength(1);
        expect(out[0]?.cmd).toBe(p.cmd);
        // Mirror: the parsed packet generates bytes that parse to the same packet.
        const again = generate(out[0] as Packet, { protocolVersion: version }) as unknown as Uint8Array;
        const back = decoder(version);
        const mirrored: Packet[] = [];
        back.on("packet", (x) => mirrored.push(x));
        back.parse(again);
        const plain = (list: Packet[]) => list.map(({ length: _length, ...rest }) => JSON.parse(JSON.stringify(rest)));
        expect(plain(mirrored)).toEqual(plain(out));
      });
    }
  }
});

describe("MQTT gateway: CONNECT", () => {
  it("refuses an upgrade without the mqtt subprotocol or without a device", async () => {
    expect((await call("/mqtt/dev-x", { headers: { upgrade: "websocket" } })).status).toBe(400);
    expect((await call("/mqtt/Not%20A%20Device", { headers: { upgrade: "websocket", "sec-websocket-protocol": "mqtt" } })).status).toBe(
      400,
    );
    expect((await call("/mqtt/dev-x")).status).toBe(426);
  });

  for (const version of [4, 5] as const) {
    it(`v${version}: accepts the device's token and marks the twin online`, async () => {
      const { device } = await connected(version);
      const twin = await twinOf(device);
      expect(twin.availability).toMatchObject({ status: "online", reason: "mqtt_connect" });
    });

    it(`v${version}: a wrong password gets ${version === 5 ? "0x86" : "return code 4"} and the close`, async () => {
      const { device } = await createDevice({ id: uniqueId("mq"), type: "climate" });
      const client = await open(device.id, version);
      client.send(connectPacket(device.id, `${device.id}.wrongwrongwrongwrongwrong`, version));
      const connack = (await client.next("connack")) as Packet & { returnCode?: number; reasonCode?: number };
      expect(version === 5 ? connack.reasonCode : connack.returnCode).toBe(version === 5 ? REASON.badUserNameOrPassword : 4);
      expect((await client.closed).code).toBe(1008);
    });

    it(`v${version}: a client id of another device gets ${version === 5 ? "0x85" : "return code 2"}`, async () => {
      const { device, token } = await createDevice({ id: uniqueId("mq"), type: "climate" });
      const client = await open(device.id, version);
      client.send(connectPacket(device.id, token, version, { clientId: "someone-else" }));
      const connack = (await client.next("connack")) as Packet & { returnCode?: number; reasonCode?: number };
      expect(version === 5 ? connack.reasonCode : connack.returnCode).toBe(version === 5 ? REASON.clientIdentifierNotValid : 2);
      await client.closed;
    });
  }

  it("a second connection with the same client id takes over; the first is closed (v5: 0x8E)", async () => {
    const { device, token, client: first } = await connected(5);
    const second = await open(device, 5);
    second.send(connectPacket(device, token, 5));
    expect(((await second.next("connack")) as { reasonCode?: number }).reasonCode).toBe(0);
    const disconnect = (await first.next("disconnect")) as { reasonCode?: number };
    expect(disconnect.reasonCode).toBe(REASON.sessionTakenOver);
    await first.closed;
    second.send({ cmd: "pingreq" });
    await second.next("pingresp");
  });

  for (const version of [4, 5] as const) {
    it(`plain /mqtt (v${version}): the Worker reads the CONNECT and relays to the device's session`, async () => {
      const { device, token } = await createDevice({ id: uniqueId("mq"), type: "climate" });
      const client = await open(device.id, version, "/mqtt");
      // Split across frames: the relay waits for the whole CONNECT.
      const bytes = generate(connectPacket(device.id, token, version), { protocolVersion: version }) as unknown as Uint8Array;
      client.raw(bytes.slice(0, 7));
      client.raw(bytes.slice(7));
      const connack = (await client.next("connack")) as { returnCode?: number; reasonCode?: number };
      expect(version === 5 ? connack.reasonCode : connack.returnCode).toBe(0);
      client.send(publish(`devices/${device.id}/telemetry`, { payload: { temperature: 5 } }, 1, 1));
      await client.next("puback");
      expect((await twinOf(device.id)).reported.readings.temperature?.value).toBe(5);
      client.send({ cmd: "disconnect" } as Packet);
      await client.closed;
    });
  }

  it("plain /mqtt: no device in the CONNECT gets return code 4; a packet before CONNECT closes", async () => {
    const { device } = await createDevice({ id: uniqueId("mq"), type: "climate" });
    const anonymous = await open(device.id, 4, "/mqtt");
    anonymous.send(connectPacket("", "", 4, { username: undefined, password: undefined }));
    expect(((await anonymous.next("connack")) as { returnCode?: number }).returnCode).toBe(4);
    await anonymous.closed;
    const early = await open(device.id, 4, "/mqtt");
    early.send({ cmd: "pingreq" });
    expect((await early.closed).code).toBe(1002);
  });

  it("MQTT 3.1 (MQIsdp, level 3) gets return code 1 and the close", async () => {
    const { device, token } = await createDevice({ id: uniqueId("mq"), type: "climate" });
    const client = await open(device.id, 4);
    client.send(connectPacket(device.id, token, 4, { protocolId: "MQIsdp", protocolVersion: 3 }));
    expect(((await client.next("connack")) as { returnCode?: number }).returnCode).toBe(1);
    await client.closed;
  });

  it("a client id `<device>-suffix` is the device's own", async () => {
    const { device, token } = await createDevice({ id: uniqueId("mq"), type: "climate" });
    const client = await open(device.id, 4);
    client.send(connectPacket(device.id, token, 4, { clientId: `${device.id}-kitchen` }));
    expect(((await client.next("connack")) as { returnCode?: number }).returnCode).toBe(0);
  });
});

describe("MQTT gateway: PUBLISH into the ingest path", () => {
  it("QoS 0, 1 and 2 (PUBREC/PUBREL/PUBCOMP) reach the twin; a repeated QoS 2 id is not ingested twice", async () => {
    const { device, client } = await connected(5);
    const topic = `devices/${device}/telemetry`;
    client.send(publish(topic, { payload: { temperature: 20 } }, 0));
    client.send(publish(topic, { payload: { humidity: 40 } }, 1, 1));
    expect(((await client.next("puback")) as { reasonCode?: number }).reasonCode ?? 0).toBe(0);
    client.send(publish(topic, { id: "q2-once", payload: { battery: 80 } }, 2, 2));
    expect(((await client.next("pubrec")) as { messageId?: number }).messageId).toBe(2);
    client.send({ ...publish(topic, { id: "q2-once", payload: { battery: 80 } }, 2, 2), dup: true } as Packet);
    await client.next("pubrec");
    client.send({ cmd: "pubrel", messageId: 2 } as Packet);
    expect(((await client.next("pubcomp")) as { messageId?: number }).messageId).toBe(2);
    const twin = await eventually(async () => {
      const t = await twinOf(device);
      return t.reported.readings.temperature && t.reported.readings.battery ? t : undefined;
    });
    expect(twin.reported.readings.humidity?.value).toBe(40);
    const counters = (
      await json<{ counters: { accepted: number; duplicates: number } }>(await call(`/v1/devices/${device}/twin`, { headers: ADMIN }))
    ).counters;
    expect(counters).toMatchObject({ accepted: 3, duplicates: 0 });
  });

  it("QoS 2 in flight past the receive maximum (32) closes with 0x93", async () => {
    const { device, client } = await connected(5);
    const connack = client.packets[0] as { properties?: { receiveMaximum?: number; maximumPacketSize?: number } };
    expect(connack.properties).toMatchObject({ receiveMaximum: 32, maximumPacketSize: 131072 });
    for (let id = 1; id <= 32; id++) client.send(publish(`devices/${device}/telemetry`, { payload: { n: id } }, 2, id));
    await eventually(async () => (client.packets.filter((p) => p.cmd === "pubrec").length === 32 ? true : undefined));
    client.send(publish(`devices/${device}/telemetry`, { payload: { n: 33 } }, 2, 33));
    expect(((await client.next("disconnect")) as { reasonCode?: number }).reasonCode).toBe(REASON.receiveMaximumExceeded);
  });

  it("v5 topic aliases: set once, then used with an empty topic", async () => {
    const { device, client } = await connected(5);
    client.send(publish(`devices/${device}/telemetry`, { payload: { temperature: 1 } }, 1, 1, { properties: { topicAlias: 2 } }));
    await client.next("puback");
    client.send(publish("", { payload: { temperature: 2 } }, 1, 2, { properties: { topicAlias: 2 } }));
    expect(((await client.next("puback")) as { reasonCode?: number }).reasonCode ?? 0).toBe(0);
    const twin = await eventually(async () => {
      const t = await twinOf(device);
      return t.reported.readings.temperature?.value === 2 ? t : undefined;
    });
    expect(twin).toBeDefined();
  });

  it("v5 topic aliases: all 16 with long topics (the per-connection state stays within the attachment limit)", async () => {
    const { device, client } = await connected(5);
    for (let alias = 1; alias <= 16; alias++) {
      // The device's own unrouted topics: accepted, but nobody subscribes (0x10).
      const topic = `devices/${device}/telemetry/${"x".repeat(200)}${alias}`;
      client.send(publish(topic, { payload: { n: alias } }, 1, alias, { properties: { topicAlias: alias } }));
      expect(((await client.next("puback")) as { reasonCode?: number }).reasonCode).toBe(REASON.noMatchingSubscribers);
    }
    client.send({ cmd: "pingreq" });
    await client.next("pingresp");
  });

  it("a bare reading object is the payload; TOPIC_RULES topics map to routing keys", async () => {
    const { device, client } = await connected(5);
    client.send(publish(`devices/${device}/telemetry`, { temperature: 19.5 }, 1, 1));
    expect(((await client.next("puback")) as { reasonCode?: number }).reasonCode ?? 0).toBe(0);
    // homelab/temperature/+ → sensors.temperature.<room>; this device may publish sensors.climate.* only.
    client.send(publish("homelab/temperature/den", { temperature: 19 }, 1, 2));
    expect(((await client.next("puback")) as { reasonCode?: number }).reasonCode).toBe(REASON.notAuthorized);
    client.send(publish("nowhere/at/all", { temperature: 19 }, 1, 3));
    expect(((await client.next("puback")) as { reasonCode?: number }).reasonCode).toBe(REASON.topicNameInvalid);
  });

  it("v5: refusals carry reason codes (0x87 another device, 0x99 bad payload) and nothing is routed", async () => {
    const { device, client } = await connected(5);
    client.send(publish("devices/someone-else/telemetry", { payload: { temperature: 1 } }, 1, 1));
    expect(((await client.next("puback")) as { reasonCode?: number }).reasonCode).toBe(REASON.notAuthorized);
    client.send(publish(`devices/${device}/telemetry`, "not json", 1, 2));
    expect(((await client.next("puback")) as { reasonCode?: number }).reasonCode).toBe(REASON.payloadFormatInvalid);
    client.send(publish(`devices/${device}/telemetry`, { payload: { temperature: "hot" } }, 2, 3));
    expect(((await client.next("pubrec")) as { reasonCode?: number }).reasonCode).toBe(REASON.payloadFormatInvalid);
    const twin = await twinOf(device);
    expect(twin.reported.readings).toEqual({});
  });

  it("a rotated token ends the connection at its next publish (v5: 0x87)", async () => {
    const { device, client } = await connected(5);
    const rotated = await call(`/v1/devices/${device}/token`, { method: "POST", headers: ADMIN });
    expect(rotated.status, await rotated.clone().text()).toBeLessThan(300);
    client.send(publish(`devices/${device}/telemetry`, { payload: { temperature: 1 } }, 1, 1));
    expect(((await client.next("disconnect")) as { reasonCode?: number }).reasonCode).toBe(REASON.notAuthorized);
    await client.closed;
  });

  it("v3.1.1: a publish the device may not make ends the connection [MQTT-3.3.5-2]", async () => {
    const { client } = await connected(4);
    client.send(publish("devices/someone-else/telemetry", { payload: { temperature: 1 } }, 1, 1));
    expect((await client.closed).code).toBe(1002);
  });

  it("v3.1.1: a payload that is no valid message is acknowledged and dropped, and the connection stays (no resend loop)", async () => {
    const { device, client } = await connected(4);
    client.send(publish(`devices/${device}/telemetry`, { payload: { "Not A Reading Name": 1 } }, 1, 7));
    expect(((await client.next("puback")) as { messageId?: number }).messageId).toBe(7);
    client.send(publish(`devices/${device}/telemetry`, { payload: { temperature: 2 } }, 1, 8));
    expect(((await client.next("puback")) as { messageId?: number }).messageId).toBe(8);
    const errors = await json<{ errors: { code: string }[] }>(await call(`/v1/devices/${device}/errors`, { headers: ADMIN }));
    expect(errors.errors.map((e) => e.code)).toContain("invalid_payload");
  });

  it("packets joined in one frame and split across frames", async () => {
    const { device, client } = await connected(4);
    const a = generate(publish(`devices/${device}/telemetry`, { payload: { temperature: 1 } }, 1, 1)) as unknown as Uint8Array;
    const b = generate({ cmd: "pingreq" }) as unknown as Uint8Array;
    const joined = new Uint8Array([...a, ...b]);
    client.raw(joined.slice(0, 5));
    client.raw(joined.slice(5));
    await client.next("puback");
    await client.next("pingresp");
  });
});

describe("MQTT gateway: commands, wills, keep alive", () => {
  it("commands arrive as PUBLISH on devices/<id>/commands; a result publish completes them", async () => {
    const { device, client } = await connected(5);
    client.send({
      cmd: "subscribe",
      messageId: 1,
      subscriptions: [
        { topic: `devices/${device}/commands`, qos: 1 },
        { topic: "#", qos: 0 },
      ],
    } as Packet);
    expect(((await client.next("suback")) as { granted?: number[] }).granted).toEqual([1, REASON.notAuthorized]);
    const sent = await call(`/v1/devices/${device}/commands`, {
      method: "POST",
      headers: { ...ADMIN, "content-type": "application/json" },
      body: JSON.stringify({ command: "set_mode", parameters: { mode: "eco" } }),
    });
    expect(sent.status).toBe(202);
    const { command } = await json<{ command: { id: string } }>(sent);
    const delivery = (await client.next("publish")) as Packet & { topic: string; payload: Uint8Array; messageId: number; qos: number };
    expect(delivery.topic).toBe(`devices/${device}/commands`);
    expect(delivery.qos).toBe(1);
    expect(JSON.parse(new TextDecoder().decode(delivery.payload))).toMatchObject({
      id: command.id,
      command: "set_mode",
      parameters: { mode: "eco" },
    });
    client.send({ cmd: "puback", messageId: delivery.messageId } as Packet);
    client.send(publish(`devices/${device}/commands/${command.id}/result`, { status: "succeeded", result: { mode: "eco" } }, 1, 9));
    expect(((await client.next("puback")) as { reasonCode?: number }).reasonCode ?? 0).toBe(0);
    const done = await json<{ command: { status: string; result: unknown } }>(
      await call(`/v1/devices/${device}/commands/${command.id}`, { headers: ADMIN }),
    );
    expect(done.command).toMatchObject({ status: "succeeded", result: { mode: "eco" } });
  });

  it("desired state: sent retained on subscribe, then again on every change", async () => {
    const { device, client } = await connected(4);
    client.send({ cmd: "subscribe", messageId: 1, subscriptions: [{ topic: `devices/${device}/desired`, qos: 0 }] } as Packet);
    await client.next("suback");
    const first = (await client.next("publish")) as Packet & { topic: string; payload: Uint8Array; retain: boolean };
    expect(first.topic).toBe(`devices/${device}/desired`);
    expect(first.retain).toBe(true);
    expect(JSON.parse(new TextDecoder().decode(first.payload))).toMatchObject({ desired: {} });
    const patched = await call(`/v1/devices/${device}/twin/desired`, {
      method: "PATCH",
      headers: { ...ADMIN, "content-type": "application/json" },
      body: JSON.stringify({ desired: { target_temperature: 21 } }),
    });
    expect(patched.status, await patched.clone().text()).toBe(200);
    const change = (await client.next("publish")) as Packet & { payload: Uint8Array; retain: boolean };
    expect(change.retain).toBe(false);
    expect(JSON.parse(new TextDecoder().decode(change.payload))).toMatchObject({ desired: { target_temperature: 21 } });
  });

  it("a resumed session resends an unacknowledged command publish with DUP and the same packet id", async () => {
    const { device, token, client } = await connected(4, { clean: false });
    client.send({ cmd: "subscribe", messageId: 1, subscriptions: [{ topic: `devices/${device}/commands`, qos: 1 }] } as Packet);
    await client.next("suback");
    await call(`/v1/devices/${device}/commands`, {
      method: "POST",
      headers: { ...ADMIN, "content-type": "application/json" },
      body: JSON.stringify({ command: "reboot" }),
    });
    const first = (await client.next("publish")) as Packet & { messageId: number; payload: Uint8Array };
    client.ws.close(1000, "gone before PUBACK");
    await client.closed;
    const again = await open(device, 4);
    again.send(connectPacket(device, token, 4, { clean: false }));
    const connack = (await again.next("connack")) as { sessionPresent?: boolean };
    expect(connack.sessionPresent).toBe(true);
    const resent = (await again.next("publish")) as Packet & { messageId: number; dup: boolean; payload: Uint8Array };
    expect(resent).toMatchObject({ messageId: first.messageId, dup: true });
    expect(JSON.parse(new TextDecoder().decode(resent.payload))).toMatchObject({ command: "reboot" });
    again.send({ cmd: "puback", messageId: resent.messageId } as Packet);
    again.send({ cmd: "pingreq" });
    await again.next("pingresp");
  });

  it("a connection lost without DISCONNECT fires the last will: the twin goes offline (last_will)", async () => {
    const { device, client } = await connected(4, { will: { topic: `devices/x/status`, payload: "gone", qos: 0, retain: false } });
    client.ws.close(1000, "bye");
    const twin = await eventually(async () => {
      const t = await twinOf(device);
      return t.availability.status === "offline" ? t : undefined;
    });
    expect(twin.availability.reason).toBe("last_will");
  });

  it("a clean DISCONNECT discards the will and marks the twin offline (mqtt_disconnect)", async () => {
    const { device, client } = await connected(4, { will: { topic: `devices/x/status`, payload: "gone", qos: 0, retain: false } });
    client.send({ cmd: "disconnect" } as Packet);
    await client.closed;
    const twin = await eventually(async () => {
      const t = await twinOf(device);
      return t.availability.status === "offline" ? t : undefined;
    });
    expect(twin.availability.reason).toBe("mqtt_disconnect");
  });

  it("keep alive: 1.5 × keepalive of silence closes with 0x8D and fires the will", async () => {
    const { device, client } = await connected(5, {
      keepalive: 1,
      will: { topic: "devices/x/status", payload: "gone", qos: 0, retain: false },
    });
    await new Promise((r) => setTimeout(r, 1600));
    await runDurableObjectAlarm(env.MQTT_SESSION.getByName(device));
    expect(((await client.next("disconnect")) as { reasonCode?: number }).reasonCode).toBe(REASON.keepAliveTimeout);
    await client.closed;
    expect((await twinOf(device)).availability.reason).toBe("last_will");
  });
});

describe("MQTT gateway: every violation closes that connection only", () => {
  const cases: [string, V, (c: Client, device: string, token: string) => void, number | undefined][] = [
    ["a packet before CONNECT", 4, (c) => c.send({ cmd: "pingreq" }), undefined],
    ["a text frame", 4, (c) => c.raw("hello"), undefined],
    ["a bad remaining length", 4, (c) => c.raw(new Uint8Array([0xc0, 0xff, 0xff, 0xff, 0xff, 0x01])), undefined],
    ["reserved flag bits", 4, (c) => c.raw(new Uint8Array([0xc1, 0x00])), undefined],
  ];
  for (const [name, version, act] of cases) {
    it(`${name} closes the connection`, async () => {
      const { device } = await createDevice({ id: uniqueId("mq"), type: "climate" });
      const client = await open(device.id, version);
      act(client, device.id, "");
      const closed = await client.closed;
      expect(closed.code).toBeGreaterThanOrEqual(1000);
      expect(client.packets.filter((p) => p.cmd !== "connack" && p.cmd !== "disconnect")).toEqual([]);
    });
  }

  const after: [string, (c: Client, device: string, token: string) => void, number][] = [
    ["a second CONNECT", (c, d, t) => c.send(connectPacket(d, t, 5)), REASON.protocolError],
    [
      "a wildcard in a PUBLISH topic",
      (c, d) => c.send(publish(`devices/${d}/+`, { payload: { temperature: 1 } }, 1, 1)),
      REASON.topicNameInvalid,
    ],
    ["a PUBACK for an unknown packet id", (c) => c.send({ cmd: "puback", messageId: 77 } as Packet), REASON.protocolError],
    ["a PUBCOMP the gateway never asked for", (c) => c.send({ cmd: "pubcomp", messageId: 5 } as Packet), REASON.protocolError],
    [
      "QoS 1 with packet id 0",
      (c, d) => c.raw(new Uint8Array([0x32, ...lenTopic(`devices/${d}/telemetry`), 0, 0, 0])),
      REASON.malformedPacket,
    ],
    ["an oversize packet", (c, d) => c.send(publish(`devices/${d}/telemetry`, "x".repeat(140_000), 0)), REASON.packetTooLarge],
    ["an unknown topic alias", (c) => c.send(publish("", "{}", 0, undefined, { properties: { topicAlias: 3 } })), REASON.protocolError],
    ["invalid UTF-8 in a topic", (c) => c.raw(new Uint8Array([0x30, 0x06, 0x00, 0x02, 0xc3, 0x28, 0x00, 0x7b])), REASON.malformedPacket],
    ["a SUBACK from the client", (c) => c.send({ cmd: "suback", messageId: 1, granted: [0] } as Packet), REASON.protocolError],
    ["a PUBREC for a packet id not in flight", (c) => c.send({ cmd: "pubrec", messageId: 6 } as Packet), REASON.protocolError],
    ["an AUTH packet", (c) => c.send({ cmd: "auth", reasonCode: 0x18 } as Packet), REASON.protocolError],
    [
      "a topic alias above the maximum",
      (c, d) => c.send(publish(`devices/${d}/telemetry`, "{}", 0, undefined, { properties: { topicAlias: 17 } })),
      REASON.topicAliasInvalid,
    ],
  ];
  for (const [name, act, reason] of after) {
    it(`v5 ${name}: DISCONNECT 0x${reason.toString(16)} and close; another session keeps working`, async () => {
      const { device, token, client } = await connected(5);
      const bystander = await connected(5);
      act(client, device, token);
      const disconnect = (await client.next("disconnect")) as { reasonCode?: number };
      expect(disconnect.reasonCode).toBe(reason);
      await client.closed;
      bystander.client.send(publish(`devices/${bystander.device}/telemetry`, { payload: { temperature: 3 } }, 1, 1));
      await bystander.client.next("puback");
    });
  }

  it("v3.1.1: a violation closes without DISCONNECT", async () => {
    const { device, client } = await connected(4);
    client.send(publish(`devices/${device}/#`, "{}", 0));
    await client.closed;
    expect(client.packets.map((p) => p.cmd)).toEqual(["connack"]);
  });
});
