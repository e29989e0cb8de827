/**
 * The device registry: D1 holds every device for listing and filtering (its queries are
 * shared/repos/devices.ts); each device's DeviceTwin holds the same profile and the credential
 * hash for the ingest path. Writes go to the twin first, so a credential never works in the
 * registry's name before the twin knows it.
 */

import type { TwinProfile } from "../durable-objects/device-twin";
import { roomStub as room, twinStub as twin } from "../durable-objects/stubs";
import { readConfig } from "../shared/config";
import { issueDeviceToken } from "../shared/credentials";
import {
  type DeviceFilter,
  type DeviceRow,
  deleteDeviceRow,
  ensureRoom,
  getDeviceRow,
  insertDeviceRow,
  listDeviceRows,
  toDevice,
  updateDeviceProfile,
  updateDeviceToken,
} from "../shared/repos/devices";
import { type Device, type DeviceCreate, type DevicePatch, defaultPublish } from "../shared/schemas/device";
import { ApiError } from "./errors";

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
  if (!(await insertDeviceRow(env.DB, row))) {
    throw new ApiError("conflict", `device "${input.id}" already exists`, { issues: [{ path: "id", message: "already exists" }] });
  }
  try {
    if (row.room) await ensureRoom(env.DB, row.room);
    await twin(env, row.id).provision(profileOf(row));
    if (row.room) await room(env, row.room).join(row.id);
  } catch (error) {
    // A half-made device must not keep a working credential, nor a row without a twin.
    await twin(env, row.id)
      .deprovision()
      .catch(() => undefined);
    await deleteDeviceRow(env.DB, row.id);
    throw error;
  }
  return { device: toDevice(row), token };
}

export async function getDevice(env: Env, id: string): Promise<Device> {
  const row = await getDeviceRow(env.DB, id);
  if (!row) throw new ApiError("not_found", `no device "${id}"`);
  return toDevice(row);
}

export type { DeviceFilter };

export async function listDevices(env: Env, filter: DeviceFilter): Promise<{ devices: Device[]; next: string | null }> {
  return listDeviceRows(env.DB, filter);
}

export async function patchDevice(env: Env, id: string, patch: DevicePatch): Promise<Device> {
  const row = await getDeviceRow(env.DB, id);
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
  if (next.room && next.room !== row.room) await ensureRoom(env.DB, next.room);
  const { token_hash: _unchanged, ...profile } = profileOf(next);
  if (!(await twin(env, id).configure(profile))) throw new ApiError("not_found", `no device "${id}"`);
  if (next.room !== row.room) {
    if (row.room) await room(env, row.room).leave(id);
    if (next.room) await room(env, next.room).join(id);
  }
  await updateDeviceProfile(env.DB, next);
  return toDevice(next);
}

export async function rotateToken(env: Env, id: string): Promise<{ device: Device; token: string }> {
  const row = await getDeviceRow(env.DB, id);
  if (!row) throw new ApiError("not_found", `no device "${id}"`);
  const { token, hash } = await issueDeviceToken(id);
  const next = { ...row, token_hash: hash, token_rotated_at: new Date().toISOString() };
  // The twin first: from this call on, the old token fails.
  await twin(env, id).setCredential(hash);
  await updateDeviceToken(env.DB, id, hash, next.token_rotated_at);
  return { device: toDevice(next), token };
}

export async function deleteDevice(env: Env, id: string): Promise<void> {
  const row = await getDeviceRow(env.DB, id);
  if (!row) throw new ApiError("not_found", `no device "${id}"`);
  await twin(env, id).deprovision();
  if (row.room) await room(env, row.room).leave(id);
  await deleteDeviceRow(env.DB, id);
}
