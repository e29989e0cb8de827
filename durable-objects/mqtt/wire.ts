/**
 * Bytes in and out of one connection: mqtt-packet's streaming parser per connection, and the
 * sends, which never exceed the client's Maximum Packet Size [MQTT-3.1.2-24/25].
 */
import { generate, parser as mqttParser, type Packet } from "mqtt-packet";
import type { Conn, Version } from "./types";

/** mqtt-packet's streaming parser, as the gateway uses it (its typings lean on Node's types). */
interface PacketParser {
  parse(bytes: Uint8Array): number;
  on(event: "packet", listener: (packet: Packet) => void): void;
  on(event: "error", listener: (error: Error) => void): void;
  /** The packet being parsed; its length is known once its fixed header is in. */
  packet: { length: number };
}

/** A parser per connection, with what it produced from the current frame. */
export interface Reader {
  parser: PacketParser;
  packets: Packet[];
  error: Error | undefined;
}

export function newReader(protocolVersion: Version): Reader {
  const parser = mqttParser({ protocolVersion }) as unknown as PacketParser;
  const reader: Reader = { parser, packets: [], error: undefined };
  parser.on("packet", (packet) => reader.packets.push(packet));
  parser.on("error", (error) => {
    reader.error ??= error;
  });
  return reader;
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
