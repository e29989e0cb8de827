/**
 * The device registry's D1 table (`devices`, and the `rooms` rows devices name): every query of
 * it, and the row ↔ answer mapping. functions/registry.ts keeps the twins and the table in step;
 * this file only reads and writes the table.
 */
import type { Availability } from "../schemas/api/common";
import type { Device } from "../schemas/api/device";

export interface DeviceRow {
  id: string;
  kind: "device" | "service";
  name: string | null;
  type: string;
  class: "mains" | "battery";
  room: string | null;
  metadata: string;
  publish: string;
  rate_per_second: number;
  rate_burst: number;
  token_hash: string;
  created_at: string;
  updated_at: string;
  token_rotated_at: string;
  availability: Availability;
  last_seen: string | null;
}

export function toDevice(row: DeviceRow): Device {
  return {
    id: row.id,
    kind: row.kind,
    name: row.name,
    type: row.type,
    class: row.class,
    room: row.room,
    metadata: JSON.parse(row.metadata) as Record<string, unknown>,
    publish: JSON.parse(row.publish) as string[],
    rate: { per_second: row.rate_per_second, burst: row.rate_burst },
    created_at: row.created_at,
    updated_at: row.updated_at,
    token_rotated_at: row.token_rotated_at,
    availability: row.availability,
    last_seen: row.last_seen,
  };
}

/** Naming a room on a device creates it when it does not exist yet, as people expect. */
export async function ensureRoom(db: D1Database, roomId: string): Promise<void> {
  await db
    .prepare("INSERT OR IGNORE INTO rooms (id, name, metadata, created_at) VALUES (?, NULL, '{}', ?)")
    .bind(roomId, new Date().toISOString())
    .run();
}

export async function getDeviceRow(db: D1Database, id: string): Promise<DeviceRow | null> {
  return db.prepare("SELECT * FROM devices WHERE id = ?").bind(id).first<DeviceRow>();
}

/** Inserts the row unless its id exists; answers whether it did (the primary key settles concurrent creates). */
export async function insertDeviceRow(db: D1Database, row: DeviceRow): Promise<boolean> {
  const inserted = await db
    .prepare(
      `INSERT OR IGNORE INTO devices (id, kind, name, type, class, room, metadata, publish, rate_per_second, rate_burst, token_hash, created_at, updated_at, token_rotated_at)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    )
    .bind(
      row.id,
      row.kind,
      row.name,
      row.type,
      row.class,
      row.room,
      row.metadata,
      row.publish,
      row.rate_per_second,
      row.rate_burst,
      row.token_hash,
      row.created_at,
      row.updated_at,
      row.token_rotated_at,
    )
    .run();
  return inserted.meta.changes > 0;
}

export async function deleteDeviceRow(db: D1Database, id: string): Promise<void> {
  await db.prepare("DELETE FROM devices WHERE id = ?").bind(id).run();
}

export interface DeviceFilter {
  type?: string;
  room?: string;
  kind?: string;
  class?: string;
  availability?: string;
  metadata: [string, string][];
  limit: number;
  after?: string;
}

export async function listDeviceRows(db: D1Database, filter: DeviceFilter): Promise<{ devices: Device[]; next: string | null }> {
  const where: string[] = [];
  const params: unknown[] = [];
  if (filter.type) where.push("type = ?") && params.push(filter.type);
  if (filter.room) where.push("room = ?") && params.push(filter.room);
  if (filter.kind) where.push("kind = ?") && params.push(filter.kind);
  if (filter.class) where.push("class = ?") && params.push(filter.class);
  if (filter.availability) where.push("availability = ?") && params.push(filter.availability);
  for (const [key, value] of filter.metadata) {
    // The key is bound as a JSON path (never spliced into SQL); keys were validated by the route.
    where.push("CAST(json_extract(metadata, ?) AS TEXT) = ?");
    params.push(`$."${key}"`, value);
  }
  if (filter.after) where.push("id > ?") && params.push(filter.after);
  const sql = `SELECT * FROM devices ${where.length ? `WHERE ${where.join(" AND ")}` : ""} ORDER BY id LIMIT ?`;
  const { results } = await db
    .prepare(sql)
    .bind(...params, filter.limit + 1)
    .all<DeviceRow>();
  const page = results.slice(0, filter.limit);
  return { devices: page.map(toDevice), next: results.length > filter.limit ? (page.at(-1)?.id ?? null) : null };
}

/** Writes the row's profile (everything but the credential, the times it was made and the twin's availability). */
export async function updateDeviceProfile(db: D1Database, row: DeviceRow): Promise<void> {
  await db
    .prepare(
      "UPDATE devices SET name = ?, type = ?, class = ?, room = ?, metadata = ?, publish = ?, rate_per_second = ?, rate_burst = ?, updated_at = ? WHERE id = ?",
    )
    .bind(row.name, row.type, row.class, row.room, row.metadata, row.publish, row.rate_per_second, row.rate_burst, row.updated_at, row.id)
    .run();
}

export async function updateDeviceToken(db: D1Database, id: string, hash: string, rotatedAt: string): Promise<void> {
  await db.prepare("UPDATE devices SET token_hash = ?, token_rotated_at = ? WHERE id = ?").bind(hash, rotatedAt, id).run();
}
