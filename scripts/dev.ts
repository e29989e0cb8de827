/**
 * The quick start (run through `bash scripts/dev.sh`, which installs dependencies and creates
 * `.dev.vars` first): applies the D1 migrations to the persistent local state, starts the local
 * edge, provisions the demo fleet, runs the simulator, and prints how to look at it all.
 *
 * Environment: PORT (8787), EDGEMESH_DEMO=0 (edge only: no demo devices, no simulator),
 * EDGEMESH_INTERVAL_MS (5000, between simulator rounds), EDGEMESH_VERBOSE=1 (the edge's log),
 * EDGEMESH_DRAIN_SECONDS (60, the longest wait for the local queues on a stop), and for tests
 * EDGEMESH_STATE_DIR (.wrangler/state) and EDGEMESH_DEV_VARS (.dev.vars).
 *
 * Stopping (Ctrl-C, SIGTERM, SIGHUP): the simulator stops, the edge stops taking requests (503
 * with Retry-After), the local queues are drained (a progress line, at most EDGEMESH_DRAIN_SECONDS),
 * and only then is wrangler stopped. A second Ctrl-C stops at once.
 */
import { readFileSync } from "node:fs";
import { createServer } from "node:net";
import { dirname, join, relative } from "node:path";
import { buildWeb } from "./build-web.ts";
import { applyMigrations, type LocalEdge, PROJECT_ROOT, startLocalEdge } from "./lib/local-edge.ts";
import { DEMO_DEVICES, DEVICES_FILE, EdgeError, type ProvisionedDevice, provisionDevices, Simulator, saveDevicesFile } from "./simulate.ts";

const STATE_DIR = process.env.EDGEMESH_STATE_DIR || join(PROJECT_ROOT, ".wrangler", "state");
const DEV_VARS = process.env.EDGEMESH_DEV_VARS || join(PROJECT_ROOT, ".dev.vars");
const rel = (path: string) => relative(PROJECT_ROOT, path) || ".";

const say = (line = "") => console.log(line);
const info = (line: string) => console.log(`edgemesh dev: ${line}`);

class UserError extends Error {
  override name = "UserError";
}

/** The ADMIN_TOKEN of .dev.vars (dotenv syntax: KEY=value, KEY="value", comments). */
export function readAdminToken(text: string): string | undefined {
  let token: string | undefined;
  for (const line of text.split(/\r?\n/)) {
    const match = /^\s*(?:export\s+)?ADMIN_TOKEN\s*=\s*(.*?)\s*$/.exec(line);
    if (!match) continue;
    let value = match[1] ?? "";
    const quoted = /^(["'])(.*)\1$/.exec(value);
    if (quoted) value = quoted[2] ?? "";
    else value = value.replace(/\s+#.*$/, "");
    token = value;
  }
  return token;
}

function adminTokenFromDevVars(): string {
  let text: string;
  try {
    text = readFileSync(DEV_VARS, "utf8");
  } catch {
    throw new UserError(".dev.vars is missing: start with `bash scripts/dev.sh`, which creates it with a random ADMIN_TOKEN");
  }
  const token = readAdminToken(text);
  if (!token) {
    throw new UserError('.dev.vars has no ADMIN_TOKEN: add a line ADMIN_TOKEN="<a long random string>" (or delete the file and rerun)');
  }
  // It travels in an Authorization header and in a quoted env file: printable, no spaces or quotes.
  if (!/^[!#-&(-~]{16,}$/.test(token)) {
    throw new UserError("ADMIN_TOKEN in .dev.vars must be at least 16 printable characters without spaces or quotes");
  }
  return token;
}

function portFromEnv(): number {
  const raw = process.env.PORT ?? "8787";
  const port = Number(raw);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new UserError(`PORT=${raw} is not a port number (1-65535)`);
  return port;
}

/** Whether something already listens on the port (wrangler would fail, or we would talk to the wrong server). */
function checkPortFree(port: number): Promise<void> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once("error", (error: NodeJS.ErrnoException) => {
      const other = port === 65535 ? 8788 : port + 1;
      if (error.code === "EADDRINUSE") {
        reject(
          new UserError(
            `port ${port} is already in use (another \`bash scripts/dev.sh\` or wrangler dev?). Stop it, or pick another port:\n\n    PORT=${other} bash scripts/dev.sh\n`,
          ),
        );
      } else if (error.code === "EACCES") {
        reject(
          new UserError(
            `not allowed to listen on port ${port}; use a port above 1024:\n\n    PORT=${other < 1025 ? 8787 : other} bash scripts/dev.sh\n`,
          ),
        );
      } else reject(error);
    });
    server.listen(port, "127.0.0.1", () => server.close(() => resolvePort()));
  });
}

function tail(text: string, lines = 30): string {
  return text
    .trimEnd()
    .split("\n")
    .slice(-lines)
    .map((line) => `    ${line}`)
    .join("\n");
}

function sortOfFailure(log: string): string {
  if (/EADDRINUSE|address already in use/i.test(log)) return "\nThe port is taken: try another one, e.g. `PORT=8788 bash scripts/dev.sh`.";
  if (/Cannot find module|ERR_MODULE_NOT_FOUND/.test(log))
    return "\nDependencies look incomplete: `rm -rf node_modules && bash scripts/dev.sh`.";
  return "\nIf the state folder is damaged, `rm -rf .wrangler/state` resets the local edge (devices and counters are lost).";
}

async function checkHealth(url: string): Promise<void> {
  const res = await fetch(`${url}/v1/health`, { signal: AbortSignal.timeout(10_000) });
  if (res.ok) return;
  const body = (await res.json().catch(() => ({}))) as { checks?: Record<string, { ok: boolean; error?: string }> };
  const problems = Object.entries(body.checks ?? {})
    .filter(([, check]) => !check.ok)
    .map(([name, check]) => `  ${name}: ${check.error ?? "not ok"}`);
  throw new UserError(`the edge answers /v1/health with ${res.status}:\n${problems.join("\n") || "  (no details)"}`);
}

function banner(url: string, adminToken: string, devices: ProvisionedDevice[] | undefined, intervalMs: number): string {
  const line = "─".repeat(78);
  const out = [line, `  edgemesh local edge is running`, ""];
  out.push(`  Edge URL      ${url}`);
  out.push(`  Dashboard     ${url}/   (sign in with the admin token below)`);
  out.push(`  Admin token   ${adminToken}   (from .dev.vars)`);
  out.push(`  State         ${rel(STATE_DIR)}/  (D1: registry, history, series; Durable Objects; kept between runs)`);
  if (devices) {
    out.push(`  Demo devices  tokens in ${rel(DEVICES_FILE)} (mode 0600); simulator posts every ${intervalMs / 1000} s`);
    for (const d of devices) {
      out.push(
        `    ${d.id.padEnd(20)} ${d.type.padEnd(12)} room ${String(d.room).padEnd(12)} → sensors.${d.type}.${d.room}  (${d.status})`,
      );
    }
  } else {
    out.push("  Demo devices  off (EDGEMESH_DEMO=0)");
  }
  const auth = `-H 'Authorization: Bearer ${adminToken}'`;
  const sample = devices?.find((d) => d.type === "temperature");
  out.push("", "  Try:");
  out.push(`    curl -s ${url}/v1/health`);
  out.push(`    curl -s ${url}/v1/topology        # queues with delivered / retried / dead-lettered counts`);
  out.push(`    curl -s ${auth} ${url}/v1/devices`);
  if (sample) {
    out.push(`    curl -s -X POST ${url}/v1/telemetry -H 'Authorization: Bearer ${sample.token}' \\`);
    out.push(`         -H 'content-type: application/json' -d '{"payload":{"temperature":{"value":72.5,"unit":"°F"}}}'`);
    out.push(`    curl -s ${auth} ${url}/v1/devices/${sample.id}/errors   # its rejected messages`);
  }
  out.push("  Your own device (the token is shown once):");
  out.push(`    curl -s -X POST ${auth} -H 'content-type: application/json' \\`);
  out.push(`         -d '{"id":"office-thermo","type":"temperature","room":"office"}' ${url}/v1/devices`);
  out.push(
    "",
    `  Stop: Ctrl-C — stops taking requests, drains the local queues (at most ${drainSeconds()} s), then exits.`,
    `        State stays in ${rel(STATE_DIR)}/ (\`rm -rf ${rel(STATE_DIR)}\` starts over). The queues themselves live in`,
    "        memory: a second Ctrl-C or a kill -9 loses the readings still in them (docs/development.md).",
    line,
  );
  return out.join("\n");
}

let edge: LocalEdge | undefined;
let edgeStarting: Promise<LocalEdge> | undefined;
let simulator: Simulator | undefined;
let stopping = false;

async function shutdown(code: number, why?: string): Promise<never> {
  if (stopping) {
    // A second Ctrl-C: do not wait any longer.
    killEdgeNow();
    process.exit(code || 130);
  }
  stopping = true;
  if (why) info(why);
  await simulator?.stop();
  if (!edge && edgeStarting) edge = await edgeStarting.catch(() => undefined);
  if (edge && edge.process.exitCode === null && edge.process.signalCode === null) {
    try {
      const result = await edge.drain({ timeoutMs: drainSeconds() * 1000, progress: info });
      if (result.drained) info(`the local queues are drained (${(result.waitedMs / 1000).toFixed(1)} s); stopping the edge …`);
      else
        info(
          `gave up waiting after ${drainSeconds()} s: ${result.left} message(s) still queued will be lost (EDGEMESH_DRAIN_SECONDS waits longer)`,
        );
    } catch (error) {
      info(`could not drain the local queues (${(error as Error).message}); stopping the edge anyway`);
    }
  }
  await edge?.stop();
  if (code === 0 || code >= 128) info("stopped.");
  process.exit(code);
}

function drainSeconds(): number {
  const seconds = Number(process.env.EDGEMESH_DRAIN_SECONDS ?? 60);
  return Number.isFinite(seconds) && seconds >= 0 ? seconds : 60;
}

function killEdgeNow(): void {
  const child = edge?.process;
  if (!child?.pid || child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(-child.pid, "SIGKILL");
  } catch {}
}

async function main(): Promise<void> {
  for (const [signal, code] of [
    ["SIGINT", 130],
    ["SIGTERM", 143],
    ["SIGHUP", 129],
  ] as const) {
    process.on(signal, () => void shutdown(code, `${signal === "SIGINT" ? "Ctrl-C" : signal}: stopping (again to stop at once) …`));
  }
  // Whatever happens, never leave wrangler running behind us (it runs in its own process group).
  process.on("exit", killEdgeNow);

  const adminToken = adminTokenFromDevVars();
  const port = portFromEnv();
  const demo = process.env.EDGEMESH_DEMO !== "0";
  const intervalMs = Number(process.env.EDGEMESH_INTERVAL_MS ?? 5000);
  if (!Number.isFinite(intervalMs) || intervalMs < 100)
    throw new UserError("EDGEMESH_INTERVAL_MS must be a number of milliseconds, at least 100");
  await checkPortFree(port);

  info("building the dashboard (web/ → web/dist/) …");
  try {
    await buildWeb();
  } catch (error) {
    throw new UserError(`building the dashboard failed: ${(error as Error).message}`);
  }

  info(`applying D1 migrations to ${rel(STATE_DIR)}/ …`);
  try {
    applyMigrations(STATE_DIR);
  } catch (error) {
    await new Promise((r) => setTimeout(r, 100)); // an interrupted run: let the signal handler speak
    if (stopping) return;
    throw new UserError(`${(error as Error).message.trim()}\n${sortOfFailure((error as Error).message)}`);
  }
  if (stopping) return;

  const url = `http://127.0.0.1:${port}`;
  info(`starting the local edge (wrangler dev) on ${url} …`);
  edgeStarting = startLocalEdge({
    port,
    persistDir: STATE_DIR,
    adminToken,
    envFile: DEV_VARS,
    verbose: process.env.EDGEMESH_VERBOSE === "1",
    migrate: false,
    // A registry of its own: another local edge on this machine (a test, a bench) cannot reach this one's queues.
    registryPath: join(dirname(STATE_DIR), "registry"),
  });
  try {
    edge = await edgeStarting;
  } catch (error) {
    if (stopping) return;
    const message = (error as Error).message;
    const [first = "", ...rest] = message.split("\n");
    throw new UserError(`${first}\n${tail(rest.join("\n"))}\n${sortOfFailure(message)}`);
  }
  if (stopping) return;
  edge.process.once("exit", (code, signal) => {
    if (stopping) return;
    console.error(
      `\nedgemesh dev: the local edge stopped unexpectedly (${signal ?? `exit code ${code}`}). Its last output:\n${tail(edge?.log() ?? "")}`,
    );
    void shutdown(1);
  });
  await checkHealth(edge.url);

  let devices: ProvisionedDevice[] | undefined;
  if (demo) {
    info(`provisioning the demo fleet (${DEMO_DEVICES.map((d) => d.id).join(", ")}) …`);
    devices = await provisionDevices(edge.url, adminToken);
    saveDevicesFile({ edge: edge.url, provisioned_at: new Date().toISOString(), devices: devices.map(({ status: _, ...d }) => d) });
  }

  say();
  say(banner(edge.url, adminToken, devices, intervalMs));
  say();
  if (process.env.EDGEMESH_VERBOSE !== "1") info("the edge's own log is off; EDGEMESH_VERBOSE=1 bash scripts/dev.sh shows it");

  if (devices && !stopping) {
    simulator = new Simulator({ url: edge.url, devices, intervalMs });
    void simulator.start();
  }
}

try {
  await main();
} catch (error) {
  if (!stopping) {
    if (error instanceof UserError || error instanceof EdgeError) console.error(`\nedgemesh dev: ${error.message}`);
    else console.error("\nedgemesh dev: unexpected failure:", error);
    await shutdown(1);
  }
}
