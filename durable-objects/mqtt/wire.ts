/**
 * Bytes in and out of one connection: mqtt-packet's streaming parser per connection, and the
 * sends, which never exceed the client's Maximum Packet Size [MQTT-3.1.2-24/25].
 */
import { generate, parser as mqttParser, type Packet } from "mqtt-packet";
import { MqttError, REASON } from "../../shared/mqtt";
import type { Conn, Version } from "./types";

/** mqtt-packet's streaming parser, as the gateway uses it (its typings lean on Node's types). */
interface PacketParser {
  parse(bytes: Uint8Array): number;
  on(event: "packet", listener: (packet: Packet) => void): void;
  on(event: "error", listener: (error: Error) => void): void;
}

/**
 * A connection's reader: the bytes of a packet still arriving, and mqtt-packet's parser, which
 * is handed one whole, validated packet at a time (so it never reads into the next one).
 */
export interface Reader {
  buffer: Uint8Array;
  parser: PacketParser;
  packets: Packet[];
  error: Error | undefined;
}

export function newReader(protocolVersion: Version): Reader {
  const parser = mqttParser({ protocolVersion }) as unknown as PacketParser;
  const reader: Reader = { buffer: new Uint8Array(), parser, packets: [], error: undefined };
  parser.on("packet", (packet) => reader.packets.push(packet));
  parser.on("error", (error) => {
    reader.error ??= error;
  });
  return reader;
}

/** The whole packets in what has arrived, and what stops the stream (a bad length, a packet too large). */
export interface Frames {
  packets: Uint8Array[];
  error: MqttError | undefined;
  /** Bytes kept for a packet still arriving. */
  left: number;
}

/**
 * Splits the byte stream into packets by their fixed header. The remaining length is checked as
 * soon as it is known, so a packet over `max` is refused before it is buffered (v5 §3.2.2.3.6).
 */
export function frame(reader: Reader, bytes: Uint8Array, max: number): Frames {
  let buffer = reader.buffer.length === 0 ? bytes : concat(reader.buffer, bytes);
  const packets: Uint8Array[] = [];
  let error: MqttError | undefined;
  for (;;) {
    if (buffer.length < 2) break;
    let length = 0;
    let at = 1;
    let complete = false;
    for (; at <= 4 && at < buffer.length; at++) {
      const byte = buffer[at] as number;
      length += (byte & 0x7f) * 128 ** (at - 1);
      if ((byte & 0x80) === 0) {
        complete = true;
        break;
      }
    }
    if (!complete) {
      // [MQTT-1.5.5-1] the remaining length takes at most four bytes.
      if (at > 4)
        error = new MqttError(REASON.malformedPacket, "the remaining length is not a valid variable byte integer", "MQTT-1.5.5-1");
      break;
    }
    if (length > max) {
      error = new MqttError(REASON.packetTooLarge, `a packet of ${length} bytes; the limit is ${max}`);
      break;
    }
    const total = at + 1 + length;
    if (buffer.length < total) break;
    packets.push(buffer.subarray(0, total));
    buffer = buffer.subarray(total);
  }
  reader.buffer = error ? new Uint8Array() : buffer.slice();
  return { packets, error, left: reader.buffer.length };
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

/** mqtt-packet's reading of one whole packet that passed validate.ts. */
export function decode(reader: Reader, bytes: Uint8Array): Packet {
  reader.parser.parse(bytes);
  const [packet] = reader.packets.splice(0);
  const error = reader.error;
  reader.error = undefined;
  if (error || !packet) throw new MqttError(REASON.malformedPacket, error?.message ?? "the packet did not parse", "MQTT-4.13.1-1");
  return packet;
}

export function save(ws: WebSocket, conn: Conn): void {
  ws.serializeAttachment(conn);
}

/** Sends a packet; false when it is over the client's Maximum Packet Size or the socket is gone. */
export function send(ws: WebSocket, conn: Conn, packet: Packet): boolean {
  return sendBytes(ws, conn, generate(packet, { protocolVersion: conn.version === 3 ? 4 : conn.version }));
}

export function sendBytes(ws: WebSocket, conn: Conn, bytes: Uint8Array): boolean {
  if (bytes.length > conn.clientMaxPacket) return false;
  try {
    ws.send(bytes);
    return true;
  } catch {
    // The socket is going away; webSocketClose does the bookkeeping.
    return false;
  }
}

export function toBase64(bytes: Uint8Array): string {
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary);
}

export function fromBase64(text: string): Uint8Array {
  return Uint8Array.from(atob(text), (char) => char.charCodeAt(0));
}

export function payloadBytes(payload: Uint8Array | string | undefined): Uint8Array {
  if (payload === undefined) return new Uint8Array();
  return typeof payload === "string" ? new TextEncoder().encode(payload) : new Uint8Array(payload);
}
