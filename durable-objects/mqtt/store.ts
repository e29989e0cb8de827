/**
 * The session's SQLite: persistent sessions, retained messages, QoS 2 ids awaiting PUBREL, wills.
 *
 * sessions: persistent sessions (subscriptions, and command publishes not yet acknowledged).
 * retained: the device namespace's retained messages [MQTT-3.3.1-5]. awaiting_rel: QoS 2
 * publishes of persistent sessions received and PUBREC'd, not yet released [MQTT-4.3.3-9]; a
 * resumed session keeps refusing to ingest their repeats. wills: the will of each
 * connected client id, and wills waiting out their v5 delay (fire_at set); the secret is kept only
 * as its SHA-256, which the twin compares with its own.
 */
import { deviceTopics } from "../../shared/mqtt";
import { type Conn, MAX_RETAINED_PER_DEVICE, type Message, type Outbound, type Sub } from "./types";

export const SCHEMA = `CREATE TABLE IF NOT EXISTS sessions (
  client_id TEXT PRIMARY KEY, subs TEXT NOT NULL, inflight TEXT NOT NULL DEFAULT '{}', expires INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS retained (
  topic TEXT PRIMARY KEY, payload BLOB NOT NULL, qos INTEGER NOT NULL, properties TEXT NOT NULL, expires_at INTEGER);
CREATE TABLE IF NOT EXISTS awaiting_rel (client_id TEXT NOT NULL, packet_id INTEGER NOT NULL, PRIMARY KEY (client_id, packet_id));
CREATE TABLE IF NOT EXISTS wills (
  client_id TEXT PRIMARY KEY, device TEXT NOT NULL, will TEXT NOT NULL, credential TEXT NOT NULL, fire_at INTEGER);`;

/** Sessions stored before wildcard subscriptions held `{commands, desired}` QoS values. */
export function readFilters(device: string, stored: unknown): Record<string, Sub> {
  const value = (stored ?? {}) as Record<string, unknown>;
  if ("commands" in value || "desired" in value) {
    const filters: Record<string, Sub> = {};
    const own = deviceTopics(device);
    if (typeof value.commands === "number") filters[own.commands] = { qos: value.commands, noLocal: false, retainAsPublished: false };
    if (typeof value.desired === "number") filters[own.desired] = { qos: value.desired, noLocal: false, retainAsPublished: false };
    return filters;
  }
  return value as Record<string, Sub>;
}

/** Outbound entries stored before QoS 2 held only the command id (QoS 1). */
export function readOutbound(stored: unknown): Record<string, Outbound> {
  const entries = Object.entries((stored ?? {}) as Record<string, string | Outbound>);
  return Object.fromEntries(
    entries.map(([id, value]) => [id, typeof value === "string" ? { command: value, qos: 1 as const, released: false } : value]),
  );
}

export function persistSession(sql: SqlStorage, conn: Conn): void {
  if (!conn.persistent) return;
  sql.exec(
    "INSERT OR REPLACE INTO sessions (client_id, subs, inflight, expires) VALUES (?, ?, ?, ?)",
    conn.clientId,
    JSON.stringify(conn.filters),
    JSON.stringify(conn.outbound),
    Date.now() + conn.sessionExpiry * 1000,
  );
}

/** A stored session of the client id, if one has not expired. */
export function storedSession(sql: SqlStorage, clientId: string): { subs: string; inflight: string } | undefined {
  const row = sql
    .exec<{ subs: string; inflight: string; expires: number }>("SELECT subs, inflight, expires FROM sessions WHERE client_id = ?", clientId)
    .toArray()[0];
  return row && row.expires > Date.now() ? row : undefined;
}

export function dropSession(sql: SqlStorage, clientId: string): void {
  sql.exec("DELETE FROM sessions WHERE client_id = ?", clientId);
  sql.exec("DELETE FROM awaiting_rel WHERE client_id = ?", clientId);
}

export function awaitingRel(sql: SqlStorage, clientId: string): number[] {
  return sql
    .exec<{ packet_id: number }>("SELECT packet_id FROM awaiting_rel WHERE client_id = ?", clientId)
    .toArray()
    .map((r) => r.packet_id);
}

export function dropAwaitingRel(sql: SqlStorage, clientId: string): void {
  sql.exec("DELETE FROM awaiting_rel WHERE client_id = ?", clientId);
}

export function addAwaitingRel(sql: SqlStorage, clientId: string, id: number): void {
  sql.exec("INSERT OR IGNORE INTO awaiting_rel (client_id, packet_id) VALUES (?, ?)", clientId, id);
}

export function releaseAwaitingRel(sql: SqlStorage, clientId: string, id: number): void {
  sql.exec("DELETE FROM awaiting_rel WHERE client_id = ? AND packet_id = ?", clientId, id);
}

// ── Retained messages ──────────────────────────────────────────────────────────────────────

export function removeRetained(sql: SqlStorage, topic: string): void {
  sql.exec("DELETE FROM retained WHERE topic = ?", topic);
}

/** Whether the topic may be stored: it is already, or the device holds fewer than the limit. */
export function retainedRoom(sql: SqlStorage, topic: string): boolean {
  sql.exec("DELETE FROM retained WHERE expires_at IS NOT NULL AND expires_at <= ?", Date.now());
  if (sql.exec("SELECT 1 FROM retained WHERE topic = ?", topic).toArray().length > 0) return true;
  const [row] = sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM retained").toArray();
  return (row?.n ?? 0) < MAX_RETAINED_PER_DEVICE;
}

/** [MQTT-3.3.1-5] the message replaces the topic's retained one; v5 message expiry bounds its life. */
export function storeRetained(sql: SqlStorage, message: Message): void {
  const expiry = message.properties.messageExpiryInterval;
  sql.exec(
    "INSERT OR REPLACE INTO retained (topic, payload, qos, properties, expires_at) VALUES (?, ?, ?, ?, ?)",
    message.topic,
    message.payload,
    message.qos,
    JSON.stringify(message.properties),
    expiry !== undefined ? Date.now() + expiry * 1000 : null,
  );
}

export type RetainedRow = {
  topic: string;
  payload: ArrayBuffer;
  qos: number;
  properties: string;
  expires_at: number | null;
};

/** The retained messages not yet expired, by topic. */
export function liveRetained(sql: SqlStorage, now: number): RetainedRow[] {
  return sql
    .exec<RetainedRow>(
      "SELECT topic, payload, qos, properties, expires_at FROM retained WHERE expires_at IS NULL OR expires_at > ? ORDER BY topic",
      now,
    )
    .toArray();
}

// ── Wills ──────────────────────────────────────────────────────────────────────────────────

export function storeWill(sql: SqlStorage, clientId: string, device: string, will: string, credential: string): void {
  sql.exec(
    "INSERT INTO wills (client_id, device, will, credential, fire_at) VALUES (?, ?, ?, ?, NULL)",
    clientId,
    device,
    will,
    credential,
  );
}

export function dropWill(sql: SqlStorage, clientId: string): void {
  sql.exec("DELETE FROM wills WHERE client_id = ?", clientId);
}

export function willOf(sql: SqlStorage, clientId: string): { device: string; will: string; credential: string } | undefined {
  return sql
    .exec<{ device: string; will: string; credential: string }>("SELECT device, will, credential FROM wills WHERE client_id = ?", clientId)
    .toArray()[0];
}

export function delayWill(sql: SqlStorage, clientId: string, at: number): void {
  sql.exec("UPDATE wills SET fire_at = ? WHERE client_id = ?", at, clientId);
}

export function nextWillAt(sql: SqlStorage): number | null {
  const [pending] = sql.exec<{ at: number | null }>("SELECT MIN(fire_at) AS at FROM wills").toArray();
  return pending?.at ?? null;
}

export function dueWills(sql: SqlStorage, now: number): string[] {
  return sql
    .exec<{ client_id: string }>("SELECT client_id FROM wills WHERE fire_at IS NOT NULL AND fire_at <= ?", now)
    .toArray()
    .map((row) => row.client_id);
}
