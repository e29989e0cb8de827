/**
 * The device registry: D1 holds every device for listing and filtering; each device's
 * DeviceTwin holds the same profile and the credential hash for the ingest path. Writes go to
 * the twin first, so a credential never works in the registry's name before the twin knows it.
 */

import type { TwinProfile } from "../durable-objects/device-twin";
import { roomStub as room, twinStub as twin } from "../durable-objects/stubs";
import { readConfig } from "../shared/config";
import { issueDeviceToken } from "../shared/credentials";
import { type Device, type DeviceCreate, type DevicePatch, defaultPublish } from "../shared/schemas/device";
import { ApiError } from "./errors";

interface DeviceRow {
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
  availability: "online" | "stale" | "offline";
  last_seen: string | null;
}

function toDevice(row: DeviceRow): Device {
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

function profileOf(row: DeviceRow): TwinProfile {
  return {
    id: row.id,
    kind: row.kind,
    type: row.type,
    class: row.class,
    room: row.room,
    publish: JSON.parse(row.publish) as string[],
    rate: { per_second: row.rate_per_second, burst: row.rate_burst },
    token_hash: row.token_hash,
    agent: agentOf(row.metadata),
  };
}

function agentOf(metadata: string): string | null {
  const agent = (JSON.parse(metadata) as Record<string, unknown>).agent;
  return typeof agent === "string" ? agent : null;
}

export { roomStub as room, twinStub as twin } from "../durable-objects/stubs";

/** Naming a room on a device creates it when it does not exist yet, as people expect. */
async function ensureRoom(env: Env, roomId: string): Promise<void> {
  await env.DB.prepare("INSERT OR IGNORE INTO rooms (id, name, metadata, created_at) VALUES (?, NULL, '{}', ?)")
    .bind(roomId, new Date().toISOString())
    .run();
}

async function getRow(env: Env, id: string): Promise<DeviceRow | null> {
  return env.DB.prepare("SELECT * FROM devices WHERE id = ?").bind(id).first<DeviceRow>();
}

export async function createDevice(env: Env, input: DeviceCreate): Promise<{ device: Device; token: string }> {
  const config = readConfig(env);
  const { token, hash } = await issueDeviceToken(input.id);
  const now = new Date().toISOString();
  const row: DeviceRow = {
    id: input.id,
    kind: input.kind,
    name: input.name ?? null,
    type: input.type,
    class: input.class,
    room: input.room ?? null,
    metadata: JSON.stringify(input.metadata),
    publish: JSON.stringify(input.publish ?? defaultPublish(input.kind, input.id, input.type)),
    rate_per_second: input.rate?.per_second ?? config.DEVICE_RATE_PER_SECOND,
    rate_burst: input.rate?.burst ?? config.DEVICE_RATE_BURST,
    token_hash: hash,
    created_at: now,
    updated_at: now,
    token_rotated_at: now,
    availability: "offline",
    last_seen: null,
  };
  // The row first: its primary key settles two concurrent creates of one id, so only the winner
  // provisions the twin, whose credential is the one the device will use.
  const inserted = await env.DB.prepare(
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
  if (inserted.meta.changes === 0) {
    throw new ApiError("conflict", `device "${input.id}" already exists`, { issues: [{ path: "id", message: "already exists" }] });
  }
  try {
    if (row.room) await ensureRoom(env, row.room);
    await twin(env, row.id).provision(profileOf(row));
    if (row.room) await room(env, row.room).join(row.id);
  } catch (error) {
    // A half-made device must not keep a working credential, nor a row without a twin.
    await twin(env, row.id)
      .deprovision()
      .catch(() => undefined);
    await env.DB.prepare("DELETE FROM devices WHERE id = ?").bind(row.id).run();
    throw error;
  }
  return { device: toDevice(row), token };
}

export async function getDevice(env: Env, id: string): Promise<Device> {
  const row = await getRow(env, id);
  if (!row) throw new ApiError("not_found", `no device "${id}"`);
  return toDevice(row);
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

export async function listDevices(env: Env, filter: DeviceFilter): Promise<{ devices: Device[]; next: string | null }> {
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
  const { results } = await env.DB.prepare(sql)
    .bind(...params, filter.limit + 1)
    .all<DeviceRow>();
  const page = results.slice(0, filter.limit);
  return { devices: page.map(toDevice), next: results.length > filter.limit ? (page.at(-1)?.id ?? null) : null };
}

export async function patchDevice(env: Env, id: string, patch: DevicePatch): Promise<Device> {
  const row = await getRow(env, id);
  if (!row) throw new ApiError("not_found", `no device "${id}"`);
  const next: DeviceRow = {
    ...row,
    name: patch.name ?? row.name,
    type: patch.type ?? row.type,
    class: patch.class ?? row.class,
    room: patch.room === undefined ? row.room : patch.room,
    metadata: patch.metadata ? JSON.stringify(patch.metadata) : row.metadata,
    publish: patch.publish ? JSON.stringify(patch.publish) : row.publish,
    rate_per_second: patch.rate?.per_second ?? row.rate_per_second,
    rate_burst: patch.rate?.burst ?? row.rate_burst,
    updated_at: new Date().toISOString(),
  };
  if (next.room && next.room !== row.room) await ensureRoom(env, next.room);
  const { token_hash: _unchanged, ...profile } = profileOf(next);
  if (!(await twin(env, id).configure(profile))) throw new ApiError("not_found", `no device "${id}"`);
  if (next.room !== row.room) {
    if (row.room) await room(env, row.room).leave(id);
    if (next.room) await room(env, next.room).join(id);
  }
  await env.DB.prepare(
    "UPDATE devices SET name = ?, type = ?, class = ?, room = ?, metadata = ?, publish = ?, rate_per_second = ?, rate_burst = ?, updated_at = ? WHERE id = ?",
  )
    .bind(
      next.name,
      next.type,
      next.class,
      next.room,
      next.metadata,
      next.publish,
      next.rate_per_second,
      next.rate_burst,
      next.updated_at,
      id,
    )
    .run();
  return toDevice(next);
}

export async function rotateToken(env: Env, id: string): Promise<{ device: Device; token: string }> {
  const row = await getRow(env, id);
  if (!row) throw new ApiError("not_found", `no device "${id}"`);
  const { token, hash } = await issueDeviceToken(id);
  const next = { ...row, token_hash: hash, token_rotated_at: new Date().toISOString() };
  // The twin first: from this call on, the old token fails.
  await twin(env, id).setCredential(hash);
  await env.DB.prepare("UPDATE devices SET token_hash = ?, token_rotated_at = ? WHERE id = ?").bind(hash, next.token_rotated_at, id).run();
  return { device: toDevice(next), token };
}

export async function deleteDevice(env: Env, id: string): Promise<void> {
  const row = await getRow(env, id);
  if (!row) throw new ApiError("not_found", `no device "${id}"`);
  await twin(env, id).deprovision();
  if (row.room) await room(env, row.room).leave(id);
  await env.DB.prepare("DELETE FROM devices WHERE id = ?").bind(id).run();
}
