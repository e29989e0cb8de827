/**
 * The demo fleet: four devices of a small home, the file that keeps their tokens
 * (`.edgemesh/demo-devices.json`, written by `bash scripts/dev.sh`), and their provisioning
 * through the edge's device API. Failures are the clients' one EdgeError (shared/edge-error.ts).
 */
import { chmodSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { z } from "zod";
import { EdgeError } from "../../shared/edge-error.ts";
import { Device, DeviceWithToken } from "../../shared/schemas/api/device.ts";
import { PROJECT_ROOT } from "./local-edge.ts";

export type DemoType = "temperature" | "humidity" | "motion" | "energy";

export interface DemoDevice {
  id: string;
  name: string;
  type: DemoType;
  room: string;
  class: "mains" | "battery";
}

export const DEMO_DEVICES: readonly DemoDevice[] = [
  { id: "living-room-thermo", name: "Living room thermostat", type: "temperature", room: "living_room", class: "battery" },
  { id: "bathroom-humidity", name: "Bathroom humidity sensor", type: "humidity", room: "bathroom", class: "battery" },
  { id: "hallway-motion", name: "Hallway motion sensor", type: "motion", room: "hallway", class: "mains" },
  { id: "meter1", name: "Main energy meter", type: "energy", room: "utility", class: "mains" },
];

/** A device the simulator posts as: its id, what it measures, and its token. */
export interface DeviceCredential {
  id: string;
  type: string;
  room: string | null;
  class?: string;
  token: string;
}

export interface DemoDevicesFile {
  edge: string;
  provisioned_at: string;
  devices: DeviceCredential[];
}

export const DEVICES_FILE = join(PROJECT_ROOT, ".edgemesh", "demo-devices.json");

/** Writes the device tokens readable by the owner only (the folder is git-ignored). */
export function saveDevicesFile(contents: DemoDevicesFile, file = DEVICES_FILE): void {
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  chmodSync(dirname(file), 0o700);
  const temporary = `${file}.${process.pid}.tmp`;
  writeFileSync(temporary, `${JSON.stringify(contents, null, 2)}\n`, { mode: 0o600 });
  chmodSync(temporary, 0o600);
  renameSync(temporary, file);
}

export function loadDevicesFile(file = DEVICES_FILE): DemoDevicesFile {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch {
    throw new Error(
      `${relative(process.cwd(), file) || file} does not exist: run \`bash scripts/dev.sh\`, which provisions the demo devices`,
    );
  }
  const parsed = JSON.parse(text) as Partial<DemoDevicesFile>;
  if (!Array.isArray(parsed.devices)) throw new Error(`${file} has no "devices" list; rerun \`bash scripts/dev.sh\``);
  return { edge: parsed.edge ?? "", provisioned_at: parsed.provisioned_at ?? "", devices: parsed.devices };
}

// ---------------------------------------------------------------------------------------------
// Provisioning through the admin API

export type ProvisionStatus = "created" | "existing" | "updated";

export interface ProvisionedDevice extends DeviceCredential {
  status: ProvisionStatus;
}

const DeviceAnswer = z.object({ device: Device });
/** What creating a device or rotating its token answers; the simulator needs only the token. */
const TokenAnswer = DeviceWithToken.pick({ token: true });

interface ApiAnswer {
  status: number;
  body: Record<string, unknown>;
}

async function adminCall(url: string, adminToken: string, method: string, path: string, body?: unknown): Promise<ApiAnswer> {
  const res = await fetch(new URL(path, url), {
    method,
    headers: { authorization: `Bearer ${adminToken}`, ...(body === undefined ? {} : { "content-type": "application/json" }) },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(15_000),
  });
  const text = await res.text();
  let parsed: Record<string, unknown> = {};
  try {
    parsed = text ? (JSON.parse(text) as Record<string, unknown>) : {};
  } catch {
    parsed = { raw: text.slice(0, 200) };
  }
  return { status: res.status, body: parsed };
}

function errorOf(answer: ApiAnswer): { code?: string; message: string } {
  const error = answer.body.error as { code?: string; message?: string } | undefined;
  return { code: error?.code, message: error?.message ?? JSON.stringify(answer.body).slice(0, 200) };
}

function unexpected(what: string, answer: ApiAnswer): EdgeError {
  const { code, message } = errorOf(answer);
  let hint = "";
  if (answer.status === 401) hint = " — the edge does not accept the admin token: it must be the ADMIN_TOKEN in .dev.vars";
  if (answer.status === 429) hint = " — too many failed authentication attempts from this address; wait a minute and retry";
  return new EdgeError({
    status: answer.status,
    code: code ?? `http_${answer.status}`,
    message: `${what}: HTTP ${answer.status} ${code ?? ""} ${message}${hint}`.replace(/\s+/g, " ").trim(),
    body: answer.body,
  });
}

/**
 * Creates each device, or — when it exists (409 conflict) — brings its type, room, class and
 * name in line and rotates its token: tokens are shown once, so a rerun needs fresh ones.
 */
export async function provisionDevices(
  url: string,
  adminToken: string,
  devices: readonly DemoDevice[] = DEMO_DEVICES,
): Promise<ProvisionedDevice[]> {
  const out: ProvisionedDevice[] = [];
  for (const device of devices) {
    const profile = { name: device.name, type: device.type, room: device.room, class: device.class };
    const created = await adminCall(url, adminToken, "POST", "/v1/devices", {
      id: device.id,
      ...profile,
      metadata: { demo: true, simulated_by: "scripts/simulate.ts" },
    });
    let token: unknown;
    let status: ProvisionStatus = "created";
    if (created.status === 201) {
      token = TokenAnswer.safeParse(created.body).data?.token;
    } else if (created.status === 409 && errorOf(created).code === "conflict") {
      status = "existing";
      const current = await adminCall(url, adminToken, "GET", `/v1/devices/${device.id}`);
      if (current.status !== 200) throw unexpected(`reading device ${device.id}`, current);
      const answer = DeviceAnswer.safeParse(current.body);
      if (!answer.success) throw unexpected(`reading device ${device.id} (not a device answer)`, current);
      const existing = answer.data.device;
      if (existing.kind !== "device") {
        throw new EdgeError({
          status: 409,
          code: "conflict",
          message: `"${device.id}" exists as a ${String(existing.kind)}, not a device: delete it (DELETE /v1/devices/${device.id})`,
        });
      }
      if (Object.entries(profile).some(([key, value]) => existing[key as keyof typeof profile] !== value)) {
        const patched = await adminCall(url, adminToken, "PATCH", `/v1/devices/${device.id}`, profile);
        if (patched.status !== 200) throw unexpected(`updating device ${device.id}`, patched);
        status = "updated";
      }
      const rotated = await adminCall(url, adminToken, "POST", `/v1/devices/${device.id}/token`);
      if (rotated.status !== 200) throw unexpected(`rotating the token of ${device.id}`, rotated);
      token = TokenAnswer.safeParse(rotated.body).data?.token;
    } else {
      throw unexpected(`creating device ${device.id}`, created);
    }
    if (typeof token !== "string" || !token)
      throw new EdgeError({ status: 502, code: "bad_answer", message: `the edge returned no token for ${device.id}` });
    out.push({ id: device.id, type: device.type, room: device.room, class: device.class, token, status });
  }
  return out;
}
