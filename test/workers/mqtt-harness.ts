/** The MQTT gateway's test client inside workerd: raw packets from mqtt-packet over the Worker's WebSocket. */
import { generate, type Packet, parser } from "mqtt-packet";
import { expect } from "vitest";
import { ADMIN, call, createDevice, json, uniqueId, uniqueIp } from "./helpers";

export type V = 4 | 5;

export interface Client {
  ws: WebSocket;
  packets: Packet[];
  closed: Promise<{ code: number; reason: string }>;
  isClosed: () => boolean;
  send(packet: Packet): void;
  raw(bytes: Uint8Array | string): void;
  next(cmd: string, timeoutMs?: number): Promise<Packet>;
}

export function decoder(version: V) {
  const p = parser({ protocolVersion: version }) as unknown as {
    parse(b: Uint8Array): number;
    on(e: "packet", f: (p: Packet) => void): void;
  };
  return p;
}

export async function open(device: string, version: V = 4, path = `/mqtt/${device}`): Promise<Client> {
  const res = await call(path, {
    headers: { upgrade: "websocket", "sec-websocket-protocol": "mqtt", "cf-connecting-ip": uniqueIp() },
  });
  expect(res.status).toBe(101);
  expect(res.headers.get("sec-websocket-protocol")).toBe("mqtt");
  const ws = res.webSocket as WebSocket;
  ws.accept();
  const packets: Packet[] = [];
  const waiters: { cmd: string; resolve: (p: Packet) => void; from: number }[] = [];
  const dec = decoder(version);
  let closedFlag = false;
  dec.on("packet", (packet) => {
    packets.push(packet);
    for (const w of [...waiters]) {
      if (w.cmd === packet.cmd) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(packet);
      }
    }
  });
  // Binary frames may arrive as Blobs (the standard binaryType): decode them in arrival order.
  let order = Promise.resolve();
  ws.addEventListener("message", (event) => {
    const data = event.data as ArrayBuffer | Blob | string;
    order = order.then(async () => {
      dec.parse(new Uint8Array(data instanceof Blob ? await data.arrayBuffer() : (data as ArrayBuffer)));
    });
  });
  const closed = new Promise<{ code: number; reason: string }>((resolve) =>
    ws.addEventListener("close", (e) => {
      closedFlag = true;
      resolve({ code: e.code, reason: e.reason });
    }),
  );
  let consumed = 0;
  return {
    ws,
    packets,
    closed,
    isClosed: () => closedFlag,
    send: (packet) => ws.send(generate(packet, { protocolVersion: version }) as unknown as Uint8Array),
    raw: (bytes) => ws.send(bytes),
    next: (cmd, timeoutMs = 5000) => {
      const index = packets.findIndex((p, i) => i >= consumed && p.cmd === cmd);
      if (index >= 0) {
        consumed = index + 1;
        return Promise.resolve(packets[index] as Packet);
      }
      return new Promise((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`no ${cmd} within ${timeoutMs} ms; got ${packets.map((p) => p.cmd).join(",")}`)),
          timeoutMs,
        );
        waiters.push({
          cmd,
          from: consumed,
          resolve: (p) => {
            clearTimeout(timer);
            consumed = packets.length;
            resolve(p);
          },
        });
      });
    },
  };
}

export function connectPacket(device: string, token: string, version: V, extra: Record<string, unknown> = {}): Packet {
  return {
    cmd: "connect",
    protocolId: "MQTT",
    protocolVersion: version,
    clean: true,
    clientId: device,
    keepalive: 30,
    username: device,
    // mqtt-packet takes a string or its own Buffer; the pre-bundled copy brings its own Buffer class.
    password: token,
    ...extra,
  } as Packet;
}

export async function connected(version: V = 4, extra: Record<string, unknown> = {}) {
  const { device, token } = await createDevice({ id: uniqueId("mq"), type: "climate", room: "den" });
  const client = await open(device.id, version);
  client.send(connectPacket(device.id, token, version, extra));
  const connack = (await client.next("connack")) as Packet & { returnCode?: number; reasonCode?: number };
  expect(version === 5 ? connack.reasonCode : connack.returnCode).toBe(0);
  return { device: device.id, token, client };
}

export async function twinOf(id: string) {
  return json<{ reported: { readings: Record<string, { value: unknown }> }; availability: { status: string; reason: string } }>(
    await call(`/v1/devices/${id}/twin`, { headers: ADMIN }),
  );
}

export function publish(topic: string, payload: unknown, qos: 0 | 1 | 2, messageId?: number, extra: Record<string, unknown> = {}): Packet {
  return {
    cmd: "publish",
    topic,
    payload: typeof payload === "string" ? payload : JSON.stringify(payload),
    qos,
    dup: false,
    retain: false,
    ...(messageId !== undefined && { messageId }),
    ...extra,
  } as Packet;
}

export function lenTopic(topic: string): number[] {
  const t = new TextEncoder().encode(topic);
  // remaining length = 2 + topic + 2 (packet id) + 1 (properties length 0)
  return [2 + t.length + 2 + 1, 0, t.length, ...t];
}
