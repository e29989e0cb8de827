/**
 * The QoS handshakes: PUBREL from the client (our PUBCOMP), and PUBACK / PUBREC / PUBCOMP for the
 * command publishes we sent, each checked against the packet id's stage (v5 §4.13).
 */
import { MqttError, REASON } from "../../shared/mqtt";
import { deliverCommands } from "./commands";
import { persistSession, releaseAwaitingRel } from "./store";
import type { Conn, Gateway, Outbound } from "./types";
import { save, send } from "./wire";

export function onPubrel(g: Gateway, ws: WebSocket, conn: Conn, id: number): void {
  const at = conn.awaitingRel.indexOf(id);
  if (at >= 0) conn.awaitingRel.splice(at, 1);
  if (conn.persistent) releaseAwaitingRel(g.sql(), conn.clientId, id);
  save(ws, conn);
  // [MQTT-4.3.3-11] PUBREL is answered with PUBCOMP; v5 names an id it does not know (0x92).
  send(ws, conn, { cmd: "pubcomp", messageId: id, reasonCode: at >= 0 ? 0 : REASON.packetIdentifierNotFound });
}

/** Our outbound publish of this packet id, which must be at the given QoS stage, else a protocol error (v5 §4.13). */
function inFlight(conn: Conn, id: number, cmd: string, qos: 1 | 2): Outbound {
  const entry = conn.outbound[String(id)];
  if (entry === undefined || entry.qos !== qos)
    throw new MqttError(REASON.protocolError, `${cmd.toUpperCase()} for packet id ${id}, which is not in flight at QoS ${qos}`);
  return entry;
}

export async function onPuback(g: Gateway, ws: WebSocket, conn: Conn, id: number): Promise<void> {
  inFlight(conn, id, "puback", 1);
  delete conn.outbound[String(id)];
  save(ws, conn);
  await deliverCommands(g, ws, conn);
}

export async function onPubrec(g: Gateway, ws: WebSocket, conn: Conn, id: number, reasonCode: number): Promise<void> {
  const entry = inFlight(conn, id, "pubrec", 2);
  if (reasonCode >= 0x80) {
    // [MQTT-4.3.3-4] a PUBREC with a failure code ends the exchange; the twin's outbox redelivers.
    delete conn.outbound[String(id)];
    save(ws, conn);
    return deliverCommands(g, ws, conn);
  }
  entry.released = true;
  persistSession(g.sql(), conn);
  save(ws, conn);
  // [MQTT-4.3.3-4] PUBREC is answered with PUBREL (again, for a repeated PUBREC).
  send(ws, conn, { cmd: "pubrel", messageId: id });
}

export async function onPubcomp(g: Gateway, ws: WebSocket, conn: Conn, id: number): Promise<void> {
  const entry = inFlight(conn, id, "pubcomp", 2);
  if (!entry.released) throw new MqttError(REASON.protocolError, `PUBCOMP for packet id ${id} before our PUBREL`);
  // [MQTT-4.3.3-5] the packet id is free once PUBCOMP arrives.
  delete conn.outbound[String(id)];
  save(ws, conn);
  await deliverCommands(g, ws, conn);
}
