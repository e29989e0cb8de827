/**
 * The end of a connection and its will: stored at CONNECT, discarded by DISCONNECT, delayed by
 * v5's Will Delay Interval, published like the device's own publish when the connection ends
 * without DISCONNECT [MQTT-3.1.2-8].
 */

import { log } from "../../shared/log";
import { MqttError, REASON } from "../../shared/mqtt";
import { twinStub } from "../stubs";
import { accept } from "./publish";
import { delayWill, dropWill, persistSession, willOf } from "./store";
import type { CloseOptions, Conn, Gateway, StoredWill } from "./types";
import { fromBase64 } from "./wire";

/** What happens once a connected connection has ended: its session kept, its will published or discarded. */
export async function ended(g: Gateway, conn: Conn, options: CloseOptions): Promise<void> {
  const sql = g.sql();
  persistSession(sql, conn);
  if (options.will && conn.will) {
    // v5 §3.1.3.2.2: the will waits out its delay, or the end of the session if that comes first.
    const row = willOf(sql, conn.clientId);
    const delay = row ? Math.min((JSON.parse(row.will) as StoredWill).delaySeconds, conn.sessionExpiry) : 0;
    if (delay > 0) {
      const at = Date.now() + delay * 1000;
      delayWill(sql, conn.clientId, at);
      await g.scheduleAt(at);
      return;
    }
    await publishWill(g, conn.clientId);
    return;
  }
  // [MQTT-3.14.4-3] a DISCONNECT (or a takeover) discards the will.
  if (conn.will) dropWill(sql, conn.clientId);
  if (options.presence && !otherConnected(g, conn)) await twinStub(g.env, conn.device).signalPresence("offline", "mqtt_disconnect");
}

/**
 * [MQTT-3.1.2-8] the will is published like the device's own publish — routed, retained, handed
 * to its subscribers — and the twin goes offline (`last_will`). It is sent under the credential
 * it was given with; a token rotated since then refuses it.
 */
export async function publishWill(g: Gateway, clientId: string): Promise<void> {
  const sql = g.sql();
  const row = willOf(sql, clientId);
  if (!row) return;
  dropWill(sql, clientId);
  const will = JSON.parse(row.will) as StoredWill;
  // A token rotated since the CONNECT makes the twin refuse it (an MqttError from route).
  const reason = await accept(
    g,
    { device: row.device, clientId, secret: "", credentialHash: row.credential },
    { topic: will.topic, payload: fromBase64(will.payload), qos: will.qos, retain: will.retain, properties: will.properties },
  ).catch((error: unknown) => (error instanceof MqttError ? error.reason : REASON.unspecified));
  if (reason >= 0x80) {
    log("warn", "will refused", { device: row.device, topic: will.topic, reason });
  }
  await twinStub(g.env, row.device).signalPresence("offline", "last_will");
}

function otherConnected(g: Gateway, conn: Conn): boolean {
  return g.ctx.getWebSockets().some((ws) => {
    const other = ws.deserializeAttachment() as Conn;
    return other.state === "connected" && other.clientId !== conn.clientId;
  });
}
