/**
 * SUBSCRIBE and UNSUBSCRIBE inside the device's own namespace, the retained messages a new
 * subscription receives, and the forwarding of a device's publishes to its other connections.
 */
import { generate, type Packet } from "mqtt-packet";
import { filterMatches, filterProblem, MAX_FILTERS_PER_CONNECTION, ownFilter, REASON } from "../../shared/mqtt";
import { deliverCommands, sendDesired } from "./commands";
import { liveRetained, persistSession } from "./store";
import type { Conn, Gateway, Message, RetainedProperties } from "./types";
import { save, send, sendBytes } from "./wire";

export async function onSubscribe(g: Gateway, ws: WebSocket, conn: Conn, packet: Extract<Packet, { cmd: "subscribe" }>): Promise<void> {
  const granted: number[] = [];
  const added: { filter: string; isNew: boolean; retainHandling: number; desired: boolean }[] = [];
  for (const sub of packet.subscriptions) {
    // [MQTT-4.7.3-1] at least one character; [MQTT-4.7.1-*] wildcards must fill whole levels (UTF-8: validate.ts).
    if (sub.topic === "" || filterProblem(sub.topic)) {
      granted.push(conn.version === 5 ? REASON.topicFilterInvalid : 0x80);
      continue;
    }
    const own = ownFilter(sub.topic, conn.device);
    if (!own) {
      // [MQTT-3.9.3-2] a refused subscription is 0x80 (3.1.1) or 0x87 Not authorized (v5).
      granted.push(conn.version === 5 ? REASON.notAuthorized : 0x80);
      continue;
    }
    const isNew = conn.filters[sub.topic] === undefined;
    if (isNew && Object.keys(conn.filters).length >= MAX_FILTERS_PER_CONNECTION) {
      granted.push(conn.version === 5 ? REASON.quotaExceeded : 0x80);
      continue;
    }
    // [MQTT-3.8.4-6] the server may grant less than asked: commands go out at up to QoS 2 on
    // their exact topic; everything else (and commands through a wildcard) at QoS 0.
    const qos = own.exactCommands ? Math.min(sub.qos, 2) : 0;
    // [MQTT-3.8.4-3] a subscription to a filter already held replaces it.
    conn.filters[sub.topic] = { qos, noLocal: sub.nl === true, retainAsPublished: sub.rap === true };
    granted.push(qos);
    added.push({ filter: sub.topic, isNew, retainHandling: sub.rh ?? 0, desired: own.desired });
  }
  persistSession(g.sql(), conn);
  save(ws, conn);
  // [MQTT-3.8.4-1] SUBACK with the same packet id, one code per filter [MQTT-3.8.4-5].
  send(ws, conn, { cmd: "suback", messageId: packet.messageId ?? 0, granted });
  for (const { filter, isNew, retainHandling, desired } of added) {
    // v5 Retain Handling: 0 sends retained messages, 1 only for a new subscription, 2 never [MQTT-3.3.1-9..11].
    if (retainHandling === 2 || (retainHandling === 1 && !isNew)) continue;
    if (desired) await sendDesired(g, ws, conn, true);
    sendRetained(g, ws, conn, filter);
  }
  await deliverCommands(g, ws, conn);
  await g.schedule();
}

export function onUnsubscribe(g: Gateway, ws: WebSocket, conn: Conn, packet: Extract<Packet, { cmd: "unsubscribe" }>): void {
  const codes: number[] = [];
  for (const topic of packet.unsubscriptions) {
    const had = conn.filters[topic] !== undefined;
    delete conn.filters[topic];
    // v5 §3.11.2.1: 0x11 No subscription existed.
    codes.push(had ? 0 : 0x11);
  }
  persistSession(g.sql(), conn);
  save(ws, conn);
  // [MQTT-3.10.4-4] UNSUBACK with the same packet id.
  send(ws, conn, {
    cmd: "unsuback",
    messageId: packet.messageId ?? 0,
    ...(conn.version === 5 && { granted: codes }),
  } as Packet);
}

/** On subscribe: the retained messages the filter matches, with the retain flag set [MQTT-3.3.1-9]. */
function sendRetained(g: Gateway, ws: WebSocket, conn: Conn, filter: string): void {
  const now = Date.now();
  for (const row of liveRetained(g.sql(), now)) {
    if (!filterMatches(filter, row.topic)) continue;
    const properties = JSON.parse(row.properties) as RetainedProperties;
    // [MQTT-3.3.2-6] the expiry handed on is what is left of it.
    if (row.expires_at !== null) properties.messageExpiryInterval = Math.max(1, Math.ceil((row.expires_at - now) / 1000));
    sendMessage(ws, conn, { topic: row.topic, payload: new Uint8Array(row.payload), qos: row.qos, retain: true, properties }, true);
  }
}

/**
 * A device's publish to every connection of the device subscribed to it, once per connection
 * [MQTT-3.3.4-2], but not back to its sender when it asked for No Local [MQTT-3.8.3-3].
 * Returns how many connections it went to.
 */
export function forward(g: Gateway, fromClientId: string, message: Message): number {
  let delivered = 0;
  for (const ws of g.ctx.getWebSockets()) {
    const conn = ws.deserializeAttachment() as Conn;
    if (conn.state !== "connected") continue;
    const matching = Object.entries(conn.filters).filter(([filter]) => filterMatches(filter, message.topic));
    if (matching.length === 0) continue;
    if (conn.clientId === fromClientId && matching.every(([, sub]) => sub.noLocal)) continue;
    // [MQTT-3.3.1-12/13] live forwarding clears the retain flag unless Retain As Published.
    const retain = message.retain && matching.some(([, sub]) => sub.retainAsPublished);
    if (sendMessage(ws, conn, { ...message, retain }, retain)) delivered++;
  }
  return delivered;
}

/**
 * Namespace messages go out at QoS 0 (the QoS the gateway grants those subscriptions), and not
 * at all when larger than the client's Maximum Packet Size [MQTT-3.1.2-24/25].
 */
function sendMessage(ws: WebSocket, conn: Conn, message: Message, retain: boolean): boolean {
  const properties = conn.version === 5 && Object.keys(message.properties).length > 0 ? message.properties : undefined;
  // mqtt-packet writes only its own Buffer class, which the Worker cannot make. The payload is
  // the last field of a PUBLISH, so it is encoded with a placeholder of the same byte length,
  // which the real bytes then overwrite.
  const bytes = generate(
    {
      cmd: "publish",
      topic: message.topic,
      payload: "\u0000".repeat(message.payload.byteLength),
      qos: 0,
      dup: false,
      retain,
      ...(properties && { properties }),
    },
    { protocolVersion: conn.version === 3 ? 4 : conn.version },
  );
  bytes.set(message.payload, bytes.length - message.payload.byteLength);
  return sendBytes(ws, conn, bytes);
}
