/**
 * The gateway's packet logic without the Durable Object: the framer, validate.ts and mqtt-packet
 * exactly as durable-objects/mqtt/session.ts chains them, driven by the fuzzer in one process.
 * Each fuzzed input is checked against what the session relies on:
 * - nothing but an MqttError ever escapes (a crash would be any other exception);
 * - every reason a violation carries is one a v5 DISCONNECT may carry;
 * - what validate.ts passes, mqtt-packet parses to exactly one packet (validate.ts is at least as
 *   strict as the parser), with a usable packet id, topic or filter list where the type has one;
 * - the answer the session would send for it is whole (an acknowledgement is never shorter than
 *   its packet id).
 */
import { generate, type Packet } from "mqtt-packet";
import { DISCONNECT_REASONS } from "../../durable-objects/mqtt/reasons";
import { validateConnect, validatePacket } from "../../durable-objects/mqtt/validate";
import { decode, frame, newReader, type Reader } from "../../durable-objects/mqtt/wire";
import { MqttError } from "../../shared/mqtt";
import { corpus, frames, fuzzed, prng } from "./fuzz";

export interface Tally {
  packets: number;
  accepted: number;
  closed: number;
  byReason: Record<string, number>;
}

const MAX = 131_072;

/** One simulated connection: CONNECT, then whatever the fuzzer sends, until a violation closes it. */
export class LogicConnection {
  #reader: Reader;
  #open = true;

  constructor(
    readonly version: 4 | 5,
    connect: Uint8Array,
  ) {
    this.#reader = newReader(version);
    const { packets } = frame(this.#reader, connect, MAX);
    validateConnect(packets[0] as Uint8Array);
    decode(this.#reader, packets[0] as Uint8Array);
  }

  get open(): boolean {
    return this.#open;
  }

  /** Bytes of a packet still arriving: the real session would wait for them (and the keep alive end it). */
  waiting = false;

  /** Feeds one frame; returns false once the connection is closed. Throws only on a broken invariant. */
  feed(bytes: Uint8Array, tally: Tally): boolean {
    try {
      const { packets, error, left } = frame(this.#reader, bytes, MAX);
      this.waiting = left > 0;
      for (const raw of packets) {
        tally.packets++;
        validatePacket(raw, { version: this.version, sessionExpiry: 0 });
        const packet = decode(this.#reader, raw);
        checkAccepted(packet, this.version);
        tally.accepted++;
        if (packet.cmd === "disconnect") return this.#close(tally, "disconnect");
      }
      if (error) throw error;
      return true;
    } catch (error) {
      if (!(error instanceof MqttError)) throw new Error(`crash: ${String(error)}`);
      if (!DISCONNECT_REASONS.has(error.reason)) throw new Error(`reason 0x${error.reason.toString(16)} is not a DISCONNECT reason`);
      return this.#close(tally, `0x${error.reason.toString(16)}`);
    }
  }

  #close(tally: Tally, reason: string): boolean {
    this.#open = false;
    tally.closed++;
    tally.byReason[reason] = (tally.byReason[reason] ?? 0) + 1;
    return false;
  }
}

function checkAccepted(packet: Packet, version: 4 | 5): void {
  const v = version;
  const fail = (what: string) => {
    throw new Error(`validate.ts passed a ${packet.cmd} that ${what}: ${JSON.stringify(packet).slice(0, 200)}`);
  };
  const id = (packet as { messageId?: number }).messageId;
  switch (packet.cmd) {
    case "publish": {
      if (packet.qos > 0 && !(typeof id === "number" && id >= 1 && id <= 65_535)) fail("has no usable packet id");
      if (packet.topic === "" && packet.properties?.topicAlias === undefined) fail("has no topic");
      if (packet.topic.includes("\u0000")) fail("has U+0000 in its topic");
      if (packet.qos > 0) {
        const ack = generate({ cmd: packet.qos === 1 ? "puback" : "pubrec", messageId: id, reasonCode: 0 } as Packet, {
          protocolVersion: v,
        });
        if (ack.length < 4) fail("would be answered with a truncated acknowledgement");
      }
      return;
    }
    case "puback":
    case "pubrec":
    case "pubrel":
    case "pubcomp":
      if (!(typeof id === "number" && id >= 1 && id <= 65_535)) fail("has no usable packet id");
      if (
        packet.cmd === "pubrel" &&
        generate({ cmd: "pubcomp", messageId: id, reasonCode: 0 } as Packet, { protocolVersion: v }).length < 4
      )
        fail("would be answered with a truncated PUBCOMP");
      return;
    case "subscribe":
      if (packet.subscriptions.length === 0) fail("has no filters");
      if (packet.subscriptions.some((s) => s.topic.includes("\u0000"))) fail("has U+0000 in a filter");
      return;
    case "unsubscribe":
      if (packet.unsubscriptions.length === 0) fail("has no filters");
      return;
    case "pingreq":
    case "disconnect":
      return;
    default:
      fail("is not a client packet");
  }
}

/** A valid CONNECT of the fuzz device. */
export function connectBytes(version: 4 | 5): Uint8Array {
  const connect = {
    cmd: "connect",
    protocolId: "MQTT",
    protocolVersion: version,
    clean: true,
    clientId: "fuzz-dev",
    keepalive: 30,
    username: "fuzz-dev",
    password: "fuzz-dev.0123456789abcdef",
  } as unknown as Packet;
  return new Uint8Array(generate(connect, { protocolVersion: version }) as unknown as Uint8Array);
}

/**
 * `inputs` fuzzed inputs through simulated connections (a new one after each close, and after an
 * input that left a packet half-arrived). Throws on a broken invariant, naming the input.
 */
export function runLogicFuzz(version: 4 | 5, inputs: number, seed: number, connect: Uint8Array) {
  const rand = prng(seed);
  const packets = corpus("fuzz-dev", version);
  const tally: Tally = { packets: 0, accepted: 0, closed: 0, byReason: {} };
  let conn = new LogicConnection(version, connect);
  const started = performance.now();
  for (let i = 0; i < inputs; i++) {
    const input = fuzzed(rand, packets);
    try {
      for (const part of frames(rand, input)) {
        if (!conn.feed(part, tally)) break;
      }
    } catch (error) {
      throw new Error(`seed ${seed}, input ${i} (${JSON.stringify([...input].slice(0, 80))}): ${String(error)}`);
    }
    if (!conn.open || conn.waiting) conn = new LogicConnection(version, connect);
  }
  const seconds = (performance.now() - started) / 1000;
  return {
    fuzz: `mqtt packet logic v${version}`,
    seed,
    inputs,
    packets: tally.packets,
    accepted: tally.accepted,
    closed: tally.closed,
    inputs_per_s: Math.round(inputs / seconds),
    packets_per_s: Math.round(tally.packets / seconds),
    by_reason: tally.byReason,
  };
}
