/** The MQTT gateway's test client inside workerd: raw packets from mqtt-packet over the Worker's WebSocket. */
import { generate, type Packet, parser } from "mqtt-packet";
import { expect } from "vitest";
import { ADMIN, call, createDevice, json, uniqueId, uniqueIp } from "./helpers";

export type V = 4 | 5;

export interface Client {
  ws: WebSocket;
  packets: Packet[];
  /** Every byte the gateway sent, in order: conformance tests check the stream itself. */
  bytes: number[];
  /** What the client's decoder could not parse (a corrupted stream). */
  streamErrors: string[];
  closed: Promise<{ code: number; reason: string }>;
  isClosed: () => boolean;
  /** Resolves once every frame received so far is decoded. */
  settled: () => Promise<void>;
  send(packet: Packet): void;
  raw(bytes: Uint8Array | string): void;
  next(cmd: string, timeoutMs?: number): Promise<Packet>;
}

export function decoder(version: V) {
  const p = parser({ protocolVersion: version }) as unknown as {
    parse(b: Uint8Array): number;
    on(e: "packet", f: (p: Packet) => void): void;
    on(e: "error", f: (e: Error) => void): void;
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
  const bytes: number[] = [];
  const streamErrors: string[] = [];
  const waiters: { cmd: string; resolve: (p: Packet) => void; from: number }[] = [];
  const dec = decoder(version);
  let closedFlag = false;
  dec.on("error", (error) => streamErrors.push(error.message));
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
      const frame = new Uint8Array(data instanceof Blob ? await data.arrayBuffer() : (data as ArrayBuffer));
      for (const byte of frame) bytes.push(byte);
      dec.parse(frame);
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
    bytes,
    streamErrors,
    closed,
    isClosed: () => closedFlag,
    settled: () => order,
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

// ── Raw bytes, for the conformance suite and the fuzzer ─────────────────────────────────────

export const u16 = (n: number) => [(n >> 8) & 0xff, n & 0xff];
export const u32 = (n: number) => [(n >>> 24) & 0xff, (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff];
export function varint(n: number): number[] {
  const out: number[] = [];
  do {
    let byte = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) byte |= 0x80;
    out.push(byte);
  } while (n > 0);
  return out;
}
/** A length-prefixed string (or raw bytes given as numbers). */
export const str = (s: string | number[]) => {
  const b = typeof s === "string" ? [...new TextEncoder().encode(s)] : s;
  return [...u16(b.length), ...b];
};
/** A v5 property block from [identifier, ...value bytes] entries. */
export const props = (...entries: number[][]) => {
  const flat = entries.flat();
  return [...varint(flat.length), ...flat];
};
export const packet = (first: number, body: number[]) => new Uint8Array([first, ...varint(body.length), ...body]);

export interface RawConnect {
  version?: 4 | 5;
  name?: string;
  level?: number;
  flags?: number;
  clientId?: string | number[];
  username?: string | number[];
  password?: string;
  properties?: number[];
  will?: { properties?: number[]; topic: string | number[]; payload: string; qos?: number };
  trailing?: number[];
}

/** A CONNECT built byte by byte, so that tests can break any field of it. */
export function rawConnect(o: RawConnect): Uint8Array {
  const version = o.version ?? 4;
  let flags = o.flags ?? 0x02;
  if (o.username !== undefined) flags |= 0x80;
  if (o.password !== undefined) flags |= 0x40;
  if (o.will) flags |= 0x04 | ((o.will.qos ?? 0) << 3);
  const body = [
    ...str(o.name ?? "MQTT"),
    o.level ?? version,
    flags,
    ...u16(30),
    ...(version === 5 ? (o.properties ?? [0]) : []),
    ...str(o.clientId ?? ""),
    ...(o.will ? [...(version === 5 ? (o.will.properties ?? [0]) : []), ...str(o.will.topic), ...str(o.will.payload)] : []),
    ...(o.username !== undefined ? str(o.username) : []),
    ...(o.password !== undefined ? str(o.password) : []),
    ...(o.trailing ?? []),
  ];
  return packet(0x10, body);
}

/**
 * The server's byte stream, checked packet by packet: every fixed header and length well formed,
 * every packet parsing alone to exactly one packet with nothing left over, no acknowledgement
 * shorter than its packet identifier. Returns the packets' types.
 */
export function checkStream(bytes: number[], version: V): string[] {
  const types: string[] = [];
  let at = 0;
  const dec = decoder(version);
  const seen: Packet[] = [];
  const errors: string[] = [];
  dec.on("packet", (p) => seen.push(p));
  dec.on("error", (e) => errors.push(e.message));
  while (at < bytes.length) {
    let length = 0;
    let i = 1;
    for (; i <= 4; i++) {
      const byte = bytes[at + i];
      if (byte === undefined) throw new Error(`the stream ends inside a fixed header at ${at}`);
      length += (byte & 0x7f) * 128 ** (i - 1);
      if ((byte & 0x80) === 0) break;
    }
    if (i > 4) throw new Error(`a bad remaining length at ${at}`);
    const total = 1 + i + length;
    if (at + total > bytes.length) throw new Error(`the stream ends inside a packet at ${at}`);
    const type = (bytes[at] as number) >> 4;
    // PUBACK, PUBREC, PUBREL, PUBCOMP, SUBACK, UNSUBACK always carry a packet identifier.
    if ([4, 5, 6, 7, 9, 11].includes(type) && length < 2) throw new Error(`a truncated acknowledgement (type ${type}) at ${at}`);
    const before = seen.length;
    dec.parse(new Uint8Array(bytes.slice(at, at + total)));
    if (errors.length > 0) throw new Error(`packet at ${at} does not parse: ${errors.join("; ")}`);
    if (seen.length !== before + 1) throw new Error(`packet at ${at} did not parse to one packet`);
    types.push((seen[seen.length - 1] as Packet).cmd);
    at += total;
  }
  return types;
}
