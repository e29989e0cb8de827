/**
 * The twin's commands and desired state, out to the device: command publishes at the granted QoS
 * (bounded by the client's Receive Maximum), their resend on session resumption, and the
 * desired-state publish.
 */
import type { Packet } from "mqtt-packet";
import { deviceTopics, filterMatches, type MqttCommandDelivery, MqttError, REASON } from "../../shared/mqtt";
import type { Command } from "../command-outbox";
import { twinStub } from "../stubs";
import { persistSession } from "./store";
import type { Conn, Gateway, Outbound } from "./types";
import { save, send } from "./wire";

/** The QoS commands go out at: the one granted on the exact command topic; a wildcard gets QoS 0. */
export function commandsQos(conn: Conn): number | null {
  let qos: number | null = null;
  for (const [filter, sub] of Object.entries(conn.filters)) {
    if (filterMatches(filter, deviceTopics(conn.device).commands)) qos = Math.max(qos ?? 0, sub.qos);
  }
  return qos;
}

export function wantsDesired(conn: Conn): boolean {
  return Object.keys(conn.filters).some((filter) => filterMatches(filter, deviceTopics(conn.device).desired));
}

function toDelivery(command: Command): MqttCommandDelivery {
  return {
    id: command.id,
    command: command.command,
    parameters: command.parameters as MqttCommandDelivery["parameters"],
    correlation_id: command.correlation_id,
    expires_at: command.expires_at,
  };
}

function nextId(conn: Conn): number {
  // [MQTT-2.3.1-2] a packet id is not reused while in flight.
  for (let tries = 0; tries < 65_535; tries++) {
    const id = conn.nextId;
    conn.nextId = id >= 65_535 ? 1 : id + 1;
    if (conn.outbound[String(id)] === undefined) return id;
  }
  throw new MqttError(REASON.quotaExceeded, "no packet identifier free");
}

export async function deliverCommands(g: Gateway, ws: WebSocket, conn: Conn): Promise<void> {
  const qos = commandsQos(conn);
  if (conn.state !== "connected" || qos === null) return;
  // [MQTT-4.9.0-2] never more unacknowledged QoS 1 and 2 publishes than the client's Receive Maximum.
  const room = Math.min(conn.clientReceiveMax, 20) - Object.keys(conn.outbound).length;
  if (room <= 0) return;
  const twin = twinStub(g.env, conn.device);
  // A rotated or deleted token stops deliveries as it stops publishes.
  if (!(await twin.checkSecret(conn.secret))) throw new MqttError(REASON.notAuthorized, "the device token is no longer valid");
  const commands: Command[] = await twin.takeCommands(0);
  for (const command of commands) {
    const messageId = qos > 0 ? nextId(conn) : undefined;
    if (messageId !== undefined) conn.outbound[String(messageId)] = { command: command.id, qos: qos as 1 | 2, released: false };
    send(ws, conn, commandPublish(conn, command, qos, messageId, false));
  }
  persistSession(g.sql(), conn);
  save(ws, conn);
}

function commandPublish(conn: Conn, command: Command, qos: number, messageId: number | undefined, dup: boolean): Packet {
  // [MQTT-3.3.2-6] v5 clients learn how long the command has left (its outbox TTL).
  const left = Math.ceil((Date.parse(command.expires_at) - Date.now()) / 1000);
  return {
    cmd: "publish",
    topic: deviceTopics(conn.device).commands,
    payload: JSON.stringify(toDelivery(command)),
    qos: qos as 0 | 1 | 2,
    dup,
    retain: false,
    ...(messageId !== undefined && { messageId }),
    ...(conn.version === 5 && left > 0 && { properties: { messageExpiryInterval: left } }),
  };
}

/**
 * [MQTT-4.4.0-1] a resumed session resends its unacknowledged PUBLISH packets, same packet
 * ids, DUP set [MQTT-3.3.1-1], and the PUBRELs of QoS 2 publishes already PUBREC'd — here,
 * commands the twin still has as delivered and unanswered.
 */
export async function resend(g: Gateway, ws: WebSocket, conn: Conn, inflight: Record<string, Outbound>): Promise<void> {
  const twin = twinStub(g.env, conn.device);
  for (const [packetId, entry] of Object.entries(inflight)) {
    if (entry.released) {
      conn.outbound[packetId] = entry;
      send(ws, conn, { cmd: "pubrel", messageId: Number(packetId) });
      continue;
    }
    const command = await twin.command(entry.command);
    if (command?.status !== "delivered") continue;
    conn.outbound[packetId] = entry;
    send(ws, conn, commandPublish(conn, command, entry.qos, Number(packetId), true));
  }
  save(ws, conn);
}

/** The desired state: on subscribe as a retained message, and on every change. */
export async function sendDesired(g: Gateway, ws: WebSocket, conn: Conn, retain: boolean): Promise<void> {
  const twin = await twinStub(g.env, conn.device).twin();
  if (!twin) return;
  send(ws, conn, {
    cmd: "publish",
    topic: deviceTopics(conn.device).desired,
    payload: JSON.stringify({ version: twin.version, desired: twin.desired }),
    qos: 0,
    dup: false,
    // [MQTT-3.3.1-8/9] retain is set on what a new subscription receives, not on live forwarding.
    retain,
  });
}
