/**
 * The demo fleet and its simulator: four devices of a small home posting realistic readings to
 * the edge — a thermostat with a diurnal temperature curve (sometimes in °F, to show unit
 * normalization), a bathroom humidity sensor on a random walk with the odd shower, a hallway
 * motion sensor with bursts of motion (and a `state_changed` home event on each change), and
 * seed 004's energy meter whose counter grows with the power it draws.
 *
 * A module (the dev script and tests import it; the fleet is scripts/lib/demo-fleet.ts, the
 * models scripts/lib/device-models.ts) and a command:
 *
 *   node scripts/simulate.ts [--url URL] [--devices FILE] [--interval-ms MS] [--report-every N] [--seed N] [--once]
 *
 * It reads device tokens from `.edgemesh/demo-devices.json`, which `bash scripts/dev.sh` writes.
 */
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { EdgeError, retryAfterMs } from "../shared/edge-error.ts";
import { type Random, seededRandom } from "../shared/random.ts";
import { DEVICES_FILE, type DemoDevicesFile, type DeviceCredential, loadDevicesFile } from "./lib/demo-fleet.ts";
import { type DeviceModel, modelFor, type Outgoing } from "./lib/device-models.ts";

export * from "./lib/demo-fleet.ts";
export * from "./lib/device-models.ts";
export { EdgeError, type Random, retryAfterMs, seededRandom };

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
    const error = EdgeError.fromAnswer(res.status, text, res.headers, (e) => (e.fromBody ? e.message : text.slice(0, 300)));
    const code = error.code;
    let message = error.message;
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
