/**
 * The demo fleet and its simulator: four devices of a small home posting realistic readings to
 * the edge — a thermostat with a diurnal temperature curve (sometimes in °F, to show unit
 * normalization), a bathroom humidity sensor on a random walk with the odd shower, a hallway
 * motion sensor with bursts of motion (and a `state_changed` home event on each change), and
 * seed 004's energy meter whose counter grows with the power it draws.
 *
 * A module (the dev script and tests import it) and a command:
 *
 *   node scripts/simulate.ts [--url URL] [--devices FILE] [--interval-ms MS] [--report-every N] [--seed N] [--once]
 *
 * It reads device tokens from `.edgemesh/demo-devices.json`, which `bash scripts/dev.sh` writes.
 */
import { chmodSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { gaussian, type Random, seededRandom } from "../shared/random.ts";
import { PROJECT_ROOT } from "./lib/local-edge.ts";

export { type Random, seededRandom };

// ---------------------------------------------------------------------------------------------
// The demo fleet

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

export class EdgeRequestError extends Error {
  override name = "EdgeRequestError";
  readonly status: number;
  readonly code: string | undefined;

  constructor(message: string, status: number, code?: string) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

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

function unexpected(what: string, answer: ApiAnswer): EdgeRequestError {
  const { code, message } = errorOf(answer);
  let hint = "";
  if (answer.status === 401) hint = " — the edge does not accept the admin token: it must be the ADMIN_TOKEN in .dev.vars";
  if (answer.status === 429) hint = " — too many failed authentication attempts from this address; wait a minute and retry";
  return new EdgeRequestError(
    `${what}: HTTP ${answer.status} ${code ?? ""} ${message}${hint}`.replace(/\s+/g, " ").trim(),
    answer.status,
    code,
  );
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
      token = created.body.token;
    } else if (created.status === 409 && errorOf(created).code === "conflict") {
      status = "existing";
      const current = await adminCall(url, adminToken, "GET", `/v1/devices/${device.id}`);
      if (current.status !== 200) throw unexpected(`reading device ${device.id}`, current);
      const existing = current.body.device as Record<string, unknown>;
      if (existing.kind !== "device") {
        throw new EdgeRequestError(
          `"${device.id}" exists as a ${String(existing.kind)}, not a device: delete it (DELETE /v1/devices/${device.id})`,
          409,
        );
      }
      if (Object.entries(profile).some(([key, value]) => existing[key] !== value)) {
        const patched = await adminCall(url, adminToken, "PATCH", `/v1/devices/${device.id}`, profile);
        if (patched.status !== 200) throw unexpected(`updating device ${device.id}`, patched);
        status = "updated";
      }
      const rotated = await adminCall(url, adminToken, "POST", `/v1/devices/${device.id}/token`);
      if (rotated.status !== 200) throw unexpected(`rotating the token of ${device.id}`, rotated);
      token = rotated.body.token;
    } else {
      throw unexpected(`creating device ${device.id}`, created);
    }
    if (typeof token !== "string" || !token) throw new EdgeRequestError(`the edge returned no token for ${device.id}`, 500);
    out.push({ id: device.id, type: device.type, room: device.room, class: device.class, token, status });
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Device models: what each kind of device reports

export interface Outgoing {
  path: "/v1/telemetry" | "/v1/events";
  body: Record<string, unknown>;
}

export interface DeviceModel {
  /** The messages the device sends at `now` (a telemetry reading, sometimes an event). */
  next(now: number): Outgoing[];
  /** The latest reading in a few characters, for the summary line. */
  describe(): string;
}

const round = (value: number, digits: number) => Number(value.toFixed(digits));
const clamp = (value: number, min: number, max: number) => Math.min(max, Math.max(min, value));
const iso = (now: number) => new Date(now).toISOString();

function hourOfDay(now: number): number {
  const d = new Date(now);
  return d.getHours() + d.getMinutes() / 60 + d.getSeconds() / 3600;
}

/** Indoor temperature: 21 °C ± 2.5 over the day (warmest mid-afternoon), with sensor noise; every third reading in °F. */
export function temperatureModel(random: Random): DeviceModel {
  let battery = 78 + random() * 20;
  let count = 0;
  let last = "";
  return {
    next(now) {
      const celsius = 21 + 2.5 * Math.sin((2 * Math.PI * (hourOfDay(now) - 9)) / 24) + gaussian(random) * 0.15;
      const fahrenheit = count % 3 === 2;
      count++;
      battery = Math.max(5, battery - 0.002);
      const temperature = fahrenheit ? { value: round((celsius * 9) / 5 + 32, 1), unit: "°F" } : { value: round(celsius, 1), unit: "°C" };
      last = `${temperature.value} ${temperature.unit}`;
      return [
        {
          path: "/v1/telemetry",
          body: { timestamp: iso(now), payload: { temperature, battery: { value: Math.round(battery), unit: "%" } } },
        },
      ];
    },
    describe: () => last,
  };
}

/** Bathroom humidity: a random walk around 55 %RH, pulled back to it, with the odd shower. */
export function humidityModel(random: Random): DeviceModel {
  let humidity = 50 + random() * 10;
  let battery = 60 + random() * 35;
  return {
    next(now) {
      humidity += 0.08 * (55 - humidity) + gaussian(random) * 0.8;
      if (random() < 0.02) humidity += 15 + random() * 10; // someone showers
      humidity = clamp(humidity, 30, 95);
      battery = Math.max(5, battery - 0.001);
      return [
        {
          path: "/v1/telemetry",
          body: {
            timestamp: iso(now),
            payload: { humidity: { value: round(humidity, 1), unit: "%" }, battery: { value: Math.round(battery), unit: "%" } },
          },
        },
      ];
    },
    describe: () => `${round(humidity, 1)} %RH`,
  };
}

/**
 * Hallway motion: quiet stretches and bursts of a few readings. Every change of state is also a
 * home event (`state_changed`, routed `home.hallway.hallway-motion.state_changed`). The first
 * reading starts a burst, so a single round already shows the event path.
 */
export function motionModel(random: Random): DeviceModel {
  let detected = false;
  let remaining = 0;
  let first = true;
  return {
    next(now) {
      const previous = detected;
      if (detected) {
        remaining--;
        if (remaining <= 0) detected = false;
      } else if (first || random() < 0.12) {
        detected = true;
        remaining = 2 + Math.floor(random() * 4);
      }
      first = false;
      const out: Outgoing[] = [{ path: "/v1/telemetry", body: { timestamp: iso(now), payload: { motion: detected } } }];
      if (detected !== previous) {
        const state = (on: boolean) => (on ? "detected" : "clear");
        out.push({
          path: "/v1/events",
          body: {
            timestamp: iso(now),
            event_type: "state_changed",
            payload: { event_type: "state_changed", previous_state: state(previous), current_state: state(detected) },
          },
        });
      }
      return out;
    },
    describe: () => (detected ? "motion" : "clear"),
  };
}

/** The meter never draws more than this (base load plus the biggest appliance). */
export const MAX_POWER_KW = 3;

/**
 * Where the meter's counter starts: a plausible reading that grows with the wall clock at
 * MAX_POWER_KW, so a restarted simulator never reports less than the previous run reached (the
 * counter grows by at most MAX_POWER_KW × time while it runs). Seed 004's counter is monotonic.
 */
export function energyStartKwh(now: number): number {
  return round(1000 + (MAX_POWER_KW * Math.max(0, now - Date.UTC(2026, 0, 1))) / 3_600_000, 4);
}

/**
 * Seed 004's energy meter: a base load drifting around 0.35 kW, appliances switching on now and
 * then (a kettle, an oven), mains voltage around 230 V, and a kWh counter that only ever grows,
 * by the power drawn over the time between readings.
 */
export function energyModel(random: Random, startKwh?: number): DeviceModel {
  let total: number | undefined = startKwh;
  let lastAt: number | undefined;
  let base = 0.3 + random() * 0.1;
  let appliance = 0;
  let applianceLeft = 0;
  let power = base;
  return {
    next(now) {
      total ??= energyStartKwh(now);
      if (lastAt !== undefined) total += (power * Math.max(0, now - lastAt)) / 3_600_000;
      lastAt = now;
      base = clamp(base + gaussian(random) * 0.02, 0.15, 0.6);
      if (applianceLeft > 0) applianceLeft--;
      else if (random() < 0.05) {
        appliance = random() < 0.5 ? 2.0 + random() * 0.4 : 1.2 + random() * 0.8;
        applianceLeft = 1 + Math.floor(random() * 4);
      } else appliance = 0;
      power = round(Math.min(MAX_POWER_KW, base + appliance + Math.abs(gaussian(random)) * 0.01), 3);
      const voltage = round(230 + gaussian(random) * 1.5, 1);
      return [
        {
          path: "/v1/telemetry",
          body: {
            timestamp: iso(now),
            payload: {
              total_energy_kwh: round(total, 4),
              power_kw: power,
              voltage,
              current: round((power * 1000) / voltage, 2),
            },
          },
        },
      ];
    },
    describe: () => `${total === undefined ? "-" : round(total, 3)} kWh @ ${power} kW`,
  };
}

export function modelFor(type: string, random: Random, options: { energyStartKwh?: number } = {}): DeviceModel | undefined {
  switch (type) {
    case "temperature":
      return temperatureModel(random);
    case "humidity":
      return humidityModel(random);
    case "motion":
      return motionModel(random);
    case "energy":
      return energyModel(random, options.energyStartKwh);
    default:
      return undefined;
  }
}

// ---------------------------------------------------------------------------------------------
// The simulator

export interface SimulatorOptions {
  url: string;
  devices: readonly DeviceCredential[];
  /** Between rounds (one reading per device); 5000 by default. */
  intervalMs?: number;
  /** Posts between summary lines; 20 by default (the first round always prints one). */
  reportEvery?: number;
  random?: Random;
  energyStartKwh?: number;
  log?: (line: string) => void;
  /** Per-request timeout; 10 s by default. */
  timeoutMs?: number;
}

export interface PostResult {
  device: string;
  path: Outgoing["path"];
  ok: boolean;
  /** HTTP status, or null when the request did not get an answer. */
  status: number | null;
  code?: string;
  message?: string;
}

export interface SimulatorStats {
  rounds: number;
  posts: number;
  accepted: number;
  failed: number;
  /** Failures by error code (`network` when the edge did not answer). */
  failures: Record<string, number>;
}

interface SimDevice {
  credential: DeviceCredential;
  model: DeviceModel;
  pausedUntil: number;
  disabled: boolean;
  /** Failed posts in a row. */
  failStreak: number;
  /** The failure last logged, so a recurring one is logged once a minute, not per post. */
  lastLogged: { code: string; at: number } | undefined;
}

const RELOG_AFTER_MS = 60_000;

const MAX_PAUSE_MS = 5 * 60_000;

/** Retry-After in milliseconds: delta-seconds or an HTTP date. */
export function retryAfterMs(header: string | null, now = Date.now()): number | undefined {
  if (!header) return undefined;
  const seconds = Number(header);
  if (Number.isFinite(seconds) && seconds >= 0) return seconds * 1000;
  const date = Date.parse(header);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

function clock(now = Date.now()): string {
  return new Date(now).toTimeString().slice(0, 8);
}

export class Simulator {
  readonly stats: SimulatorStats = { rounds: 0, posts: 0, accepted: 0, failed: 0, failures: {} };
  #url: string;
  #devices: SimDevice[];
  #intervalMs: number;
  #reportEvery: number;
  #timeoutMs: number;
  #log: (line: string) => void;
  #abort = new AbortController();
  #loop: Promise<void> | undefined;
  #sinceReport = { posts: 0, accepted: 0, failed: 0 };
  #pausedAllUntil = 0;
  /** An unreachable edge is one problem, not one per device: it is logged once for all. */
  #shared: { lastLogged: { code: string; at: number } | undefined } = { lastLogged: undefined };

  constructor(options: SimulatorOptions) {
    this.#url = options.url;
    this.#intervalMs = Math.max(100, options.intervalMs ?? 5000);
    this.#reportEvery = Math.max(1, options.reportEvery ?? 20);
    this.#timeoutMs = options.timeoutMs ?? 10_000;
    this.#log = options.log ?? ((line) => console.log(line));
    const random = options.random ?? Math.random;
    this.#devices = [];
    for (const credential of options.devices) {
      const model = modelFor(credential.type, random, { energyStartKwh: options.energyStartKwh });
      if (!model) {
        this.#log(`sim: skipping ${credential.id}: no model for devices of type "${credential.type}"`);
        continue;
      }
      this.#devices.push({ credential, model, pausedUntil: 0, disabled: false, failStreak: 0, lastLogged: undefined });
    }
  }

  get stopped(): boolean {
    return this.#abort.signal.aborted;
  }

  /** One reading from every device that is not paused; resolves with what each post got. */
  async round(): Promise<PostResult[]> {
    const now = Date.now();
    const due = this.#devices.filter((d) => !d.disabled && d.pausedUntil <= now && this.#pausedAllUntil <= now);
    const results = (await Promise.all(due.map((device) => this.#postAll(device, now)))).flat();
    this.stats.rounds++;
    this.#maybeReport();
    return results;
  }

  /** Runs rounds every intervalMs until stop(); the promise settles when it has stopped. */
  start(): Promise<void> {
    this.#loop ??= this.#run();
    return this.#loop;
  }

  async stop(): Promise<void> {
    this.#abort.abort();
    await this.#loop;
  }

  async #run(): Promise<void> {
    let next = Date.now();
    while (!this.stopped) {
      await this.round();
      next += this.#intervalMs;
      const now = Date.now();
      if (next < now) next = now; // fell behind (a slow edge): do not fire a catch-up burst
      await this.#sleep(next - now);
    }
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((done) => {
      if (this.stopped) return done();
      const timer = setTimeout(finish, ms);
      const signal = this.#abort.signal;
      function finish() {
        clearTimeout(timer);
        signal.removeEventListener("abort", finish);
        done();
      }
      signal.addEventListener("abort", finish);
    });
  }

  async #postAll(device: SimDevice, now: number): Promise<PostResult[]> {
    const results: PostResult[] = [];
    for (const outgoing of device.model.next(now)) {
      if (this.stopped) break;
      const result = await this.#post(device, outgoing);
      if (result) results.push(result);
      if (!result?.ok) break; // the rest of this device's round waits for the next one
    }
    return results;
  }

  async #post(device: SimDevice, outgoing: Outgoing): Promise<PostResult | undefined> {
    const id = device.credential.id;
    let res: Response;
    try {
      res = await fetch(new URL(outgoing.path, this.#url), {
        method: "POST",
        headers: { authorization: `Bearer ${device.credential.token}`, "content-type": "application/json" },
        body: JSON.stringify(outgoing.body),
        signal: AbortSignal.any([this.#abort.signal, AbortSignal.timeout(this.#timeoutMs)]),
      });
    } catch (error) {
      if (this.stopped) return undefined; // stopping: not a failure
      const message =
        (error as Error).name === "TimeoutError" ? `no answer within ${this.#timeoutMs} ms` : edgeUnreachable(error, this.#url);
      return this.#failed(device, outgoing, { status: null, code: "network", message });
    }
    const text = await res.text().catch(() => "");
    if (res.status === 202) {
      this.#count(true);
      if (device.failStreak >= 3) this.#log(`${clock()} sim: ${id} posts again after ${device.failStreak} failed posts`);
      device.failStreak = 0;
      return { device: id, path: outgoing.path, ok: true, status: res.status };
    }
    let code = `http_${res.status}`;
    let message = text.slice(0, 300);
    try {
      const error = (JSON.parse(text) as { error?: { code?: string; message?: string } }).error;
      code = error?.code ?? code;
      message = error?.message ?? message;
    } catch {}
    const now = Date.now();
    if (res.status === 429) {
      const wait = Math.min(retryAfterMs(res.headers.get("retry-after"), now) ?? 5000, MAX_PAUSE_MS);
      // A device over its own rate pauses alone; failed authentications count against the whole address.
      if (code === "too_many_failed_attempts") this.#pausedAllUntil = now + wait;
      else device.pausedUntil = now + wait;
      message = `${message} (pausing ${code === "too_many_failed_attempts" ? "every device" : id} for ${Math.ceil(wait / 1000)} s)`;
    } else if (res.status === 401 || res.status === 403) {
      // Retrying a rejected token only adds failed attempts, which lock out the address.
      device.disabled = true;
      message = `${message} — stopped posting as ${id}; rerun \`bash scripts/dev.sh\` to provision fresh tokens`;
    }
    return this.#failed(device, outgoing, { status: res.status, code, message });
  }

  #failed(device: SimDevice, outgoing: Outgoing, failure: { status: number | null; code: string; message: string }): PostResult {
    this.#count(false);
    this.stats.failures[failure.code] = (this.stats.failures[failure.code] ?? 0) + 1;
    device.failStreak++;
    // One line per kind of trouble (again after a minute), not one per post.
    const now = Date.now();
    const scope = failure.code === "network" ? this.#shared : device;
    const logged = scope.lastLogged;
    if (device.disabled || logged?.code !== failure.code || now - logged.at > RELOG_AFTER_MS) {
      const who = scope === device ? `${device.credential.id} ${outgoing.path}` : "posting";
      this.#log(`${clock()} sim: ${who} failed: ${failure.status === null ? "" : `${failure.status} ${failure.code}: `}${failure.message}`);
      scope.lastLogged = { code: failure.code, at: now };
    }
    return { device: device.credential.id, path: outgoing.path, ok: false, ...failure };
  }

  #count(ok: boolean): void {
    this.stats.posts++;
    this.#sinceReport.posts++;
    if (ok) {
      this.stats.accepted++;
      this.#sinceReport.accepted++;
    } else {
      this.stats.failed++;
      this.#sinceReport.failed++;
    }
  }

  #maybeReport(): void {
    if (this.stats.rounds !== 1 && this.#sinceReport.posts < this.#reportEvery) return;
    if (this.#sinceReport.posts === 0) return;
    const window = this.#sinceReport;
    const readings = this.#devices.map((d) => `${d.credential.id} ${d.model.describe()}`).join(" · ");
    const failed = window.failed > 0 ? `, ${window.failed} failed` : "";
    this.#log(`${clock()} sim: ${window.accepted}/${window.posts} accepted${failed} (total ${this.stats.posts}) · ${readings}`);
    this.#sinceReport = { posts: 0, accepted: 0, failed: 0 };
  }
}

function edgeUnreachable(error: unknown, url: string): string {
  const cause = (error as { cause?: { code?: string } }).cause;
  if (cause?.code === "ECONNREFUSED") return `nothing listens on ${url} (is the edge running?)`;
  return `${String((error as Error).message ?? error)}${cause?.code ? ` (${cause.code})` : ""}`;
}

// ---------------------------------------------------------------------------------------------
// The command

const USAGE = `usage: node scripts/simulate.ts [options]

Posts realistic readings of the demo devices to the edge until Ctrl-C.

  --url URL            the edge (default: $EDGEMESH_URL, else the one in the devices file, else http://127.0.0.1:$PORT or 8787)
  --devices FILE       device tokens (default: .edgemesh/demo-devices.json, written by bash scripts/dev.sh)
  --interval-ms MS     between rounds (default 5000)
  --report-every N     posts between summary lines (default 20)
  --seed N             reproducible readings
  --once               one round, then exit (status 1 when a post failed)
  -h, --help`;

async function main(): Promise<number> {
  let values: ReturnType<typeof parse>["values"];
  try {
    values = parse().values;
  } catch (error) {
    console.error(`${(error as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const intervalMs = Number(values["interval-ms"] ?? 5000);
  const reportEvery = Number(values["report-every"] ?? 20);
  if (!Number.isFinite(intervalMs) || intervalMs < 100) return usageError("--interval-ms must be a number of milliseconds, at least 100");
  if (!Number.isInteger(reportEvery) || reportEvery < 1) return usageError("--report-every must be a whole number, at least 1");
  const seed = values.seed === undefined ? undefined : Number(values.seed);
  if (seed !== undefined && !Number.isInteger(seed)) return usageError("--seed must be a whole number");

  let file: DemoDevicesFile;
  try {
    file = loadDevicesFile(values.devices ? resolve(values.devices) : DEVICES_FILE);
  } catch (error) {
    console.error(`simulate: ${(error as Error).message}`);
    return 1;
  }
  const url = values.url ?? process.env.EDGEMESH_URL ?? (file.edge || `http://127.0.0.1:${process.env.PORT ?? 8787}`);
  try {
    new URL(url);
  } catch {
    return usageError(`--url "${url}" is not a URL`);
  }

  const simulator = new Simulator({
    url,
    devices: file.devices,
    intervalMs,
    reportEvery,
    random: seed === undefined ? Math.random : seededRandom(seed),
  });
  if (values.once) {
    const results = await simulator.round();
    return results.length > 0 && results.every((r) => r.ok) ? 0 : 1;
  }
  console.log(`simulate: posting for ${file.devices.map((d) => d.id).join(", ")} to ${url} every ${intervalMs} ms; Ctrl-C stops`);
  const stop = () => void simulator.stop();
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
  await simulator.start();
  const { posts, accepted, failed } = simulator.stats;
  console.log(`simulate: stopped after ${posts} posts (${accepted} accepted, ${failed} failed)`);
  return 0;
}

function parse() {
  return parseArgs({
    options: {
      url: { type: "string" },
      devices: { type: "string" },
      "interval-ms": { type: "string" },
      "report-every": { type: "string" },
      seed: { type: "string" },
      once: { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
    strict: true,
    allowPositionals: false,
  });
}

function usageError(message: string): number {
  console.error(`simulate: ${message}\n\n${USAGE}`);
  return 2;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  process.exitCode = await main();
}
