/**
 * The MQTT fuzzer's packets: a seeded PRNG (a failure is reproduced from its seed) mutating valid
 * client packets of both versions — byte flips, truncations, extensions, length rewrites, spliced
 * and repeated fields, random bytes. Shared by the fuzz test inside workerd
 * (test/workers/mqtt-conformance-fuzz.test.ts) and the million-packet run of the gateway's
 * packet logic in Node (test/mqtt/fuzz-run.ts).
 *
 * Hand-written rather than fast-check: the generator is mutation of known-good packets (what finds
 * parser bugs), which fast-check has no ready arbitrary for, and the run must be reproducible
 * from one number in a log line inside workerd, where shrinking across live connections would
 * not apply anyway.
 */
import { generate, type Packet } from "mqtt-packet";

/** mulberry32: small, fast, good enough for fuzzing, and the same everywhere. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

const int = (rand: () => number, n: number) => Math.floor(rand() * n);

/** Valid client packets after CONNECT, of the device's own topics (answers come back for them). */
export function corpus(device: string, version: 4 | 5): Uint8Array[] {
  const v5 = version === 5;
  const packets: Packet[] = [
    { cmd: "publish", topic: `devices/${device}/telemetry`, payload: '{"temperature":21}', qos: 0, dup: false, retain: false },
    {
      cmd: "publish",
      topic: `devices/${device}/telemetry`,
      payload: '{"temperature":22}',
      qos: 1,
      messageId: 11,
      dup: false,
      retain: false,
    },
    { cmd: "publish", topic: `devices/${device}/state/relay`, payload: "on", qos: 2, messageId: 12, dup: false, retain: true },
    {
      cmd: "publish",
      topic: `devices/${device}/events`,
      payload: '{"payload":{"door":"open"}}',
      qos: 1,
      messageId: 13,
      dup: false,
      retain: false,
    },
    { cmd: "subscribe", messageId: 14, subscriptions: [{ topic: `devices/${device}/#`, qos: 1 }] },
    { cmd: "subscribe", messageId: 15, subscriptions: [{ topic: `devices/${device}/commands`, qos: 2 }] },
    { cmd: "unsubscribe", messageId: 16, unsubscriptions: [`devices/${device}/#`] },
    { cmd: "pubrel", messageId: 12 },
    { cmd: "puback", messageId: 1 },
    { cmd: "pubrec", messageId: 2 },
    { cmd: "pubcomp", messageId: 3 },
    { cmd: "pingreq" },
  ];
  if (v5) {
    packets.push(
      {
        cmd: "publish",
        topic: `devices/${device}/state/x`,
        payload: "1",
        qos: 1,
        messageId: 17,
        dup: false,
        retain: true,
        properties: {
          payloadFormatIndicator: true,
          messageExpiryInterval: 60,
          contentType: "text/plain",
          topicAlias: 2,
          responseTopic: `devices/${device}/reply`,
          correlationData: "abc" as never,
          userProperties: { a: "1", b: ["2", "3"] },
        },
      },
      { cmd: "publish", topic: "", payload: "2", qos: 1, messageId: 18, dup: false, retain: false, properties: { topicAlias: 2 } },
      {
        cmd: "subscribe",
        messageId: 19,
        subscriptions: [{ topic: `devices/${device}/state/+`, qos: 0, nl: true, rap: true, rh: 1 }],
        properties: { userProperties: { k: "v" } },
      },
      { cmd: "puback", messageId: 4, reasonCode: 0x10, properties: { reasonString: "fine" } },
    );
  }
  return packets.map((p) => new Uint8Array(generate(p, { protocolVersion: version }) as unknown as Uint8Array));
}

/** One fuzzed input from the corpus: mostly mutations of valid packets, some valid, some noise. */
export function fuzzed(rand: () => number, corpus: readonly Uint8Array[]): Uint8Array {
  const pick = () => corpus[int(rand, corpus.length)] as Uint8Array;
  let bytes = Uint8Array.from(pick());
  const strategy = int(rand, 10);
  switch (strategy) {
    case 0: // valid, untouched
      return bytes;
    case 1: // random bytes
      return new Uint8Array(1 + int(rand, 48)).map(() => int(rand, 256));
    case 2: // truncated: the fixed header kept, the body cut short (the length still claims it all)
      return bytes.subarray(0, Math.max(1, int(rand, bytes.length)));
    case 3: {
      // the remaining length rewritten to a shorter one (a truncated packet with a consistent header)
      const body = bytes.subarray(2);
      const keep = int(rand, body.length + 1);
      return Uint8Array.from([bytes[0] as number, keep, ...body.subarray(0, keep)]);
    }
    case 4: {
      // bytes inserted inside the body, the length fixed up
      const at = 2 + int(rand, Math.max(1, bytes.length - 2));
      const extra = new Uint8Array(1 + int(rand, 6)).map(() => int(rand, 256));
      const body = Uint8Array.from([...bytes.subarray(2, at), ...extra, ...bytes.subarray(at)]);
      return body.length < 128 ? Uint8Array.from([bytes[0] as number, body.length, ...body]) : bytes;
    }
    case 5: // the flags nibble changed
      bytes[0] = ((bytes[0] as number) & 0xf0) | int(rand, 16);
      return bytes;
    case 6: {
      // a field duplicated: a slice of the body repeated, the length fixed up
      const from = 2 + int(rand, Math.max(1, bytes.length - 2));
      const slice = bytes.subarray(from, from + 1 + int(rand, 8));
      const body = Uint8Array.from([...bytes.subarray(2), ...slice]);
      return body.length < 128 ? Uint8Array.from([bytes[0] as number, body.length, ...body]) : bytes;
    }
    case 7: {
      // two packets glued, one of them mutated
      const other = fuzzed(rand, corpus);
      return Uint8Array.from([...bytes, ...other]);
    }
    default: {
      // 1-3 random byte flips
      for (let i = 0; i < 1 + int(rand, 3); i++) bytes[int(rand, bytes.length)] = int(rand, 256);
      bytes = Uint8Array.from(bytes);
      return bytes;
    }
  }
}

/** Splits bytes into 1-3 frames at random points (a packet split across WebSocket frames). */
export function frames(rand: () => number, bytes: Uint8Array): Uint8Array[] {
  if (bytes.length < 2 || rand() < 0.7) return [bytes];
  const at = 1 + int(rand, bytes.length - 1);
  return [bytes.subarray(0, at), bytes.subarray(at)];
}
