/**
 * Starts the local edge — `wrangler dev` on workerd, with embedded D1, Durable Objects, Queues —
 * as a child process, with its own storage folder and migrations applied. Used by the dev
 * script, the benchmarks and the end-to-end tests, so all of them run the real thing.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { type DrainOptions, type DrainResult, drainEdge, drainStatus } from "./drain.ts";

export const PROJECT_ROOT = resolve(import.meta.dirname, "../..");
const WRANGLER = join(PROJECT_ROOT, "node_modules/wrangler/bin/wrangler.js");

export interface LocalEdgeOptions {
  /** Port to listen on; 0 picks a free one. */
  port?: number;
  /** Folder for D1, Durable Object and Queue state; a fresh temporary one by default. */
  persistDir?: string;
  adminToken?: string;
  /** Signs the edge's JWTs; random per start unless given (tokens then outlive restarts). */
  jwtSecret?: string;
  /** The scraper's credential for GET /metrics; random per start unless given. */
  metricsToken?: string;
  /** Use this env file (for example .dev.vars) for the secrets instead of writing one. */
  envFile?: string;
  /** Extra [vars], for example smaller limits in a test. */
  vars?: Record<string, string>;
  /** Another wrangler config (the benchmark's reference Worker). */
  config?: string;
  /** Print the edge's log lines to this process's stderr. */
  verbose?: boolean;
  /** Apply D1 migrations first (the edgemesh config only). */
  migrate?: boolean;
  /**
   * wrangler's dev registry (WRANGLER_REGISTRY_PATH): where local Workers find each other's
   * service bindings and queue producers. Private to this edge by default (inside its storage
   * folder), so two local edges on one machine never deliver into each other's queues.
   */
  registryPath?: string;
}

export interface LocalEdge {
  url: string;
  port: number;
  adminToken: string;
  jwtSecret: string;
  metricsToken: string;
  persistDir: string;
  process: ChildProcess;
  /** What the edge printed, for error messages. */
  log(): string;
  /** A call with the admin token, answered as its status and JSON body (null when it has none). */
  admin<T = Record<string, unknown>>(method: string, path: string, body?: unknown): Promise<{ status: number; body: T }>;
  /**
   * Takes no more requests (503) and waits until the local queues hold no more than they did at
   * the start and the consumers are idle (scripts/lib/drain.ts); the edge keeps running.
   */
  drain(options?: Omit<DrainOptions, "baseline">): Promise<DrainResult>;
  /** Stops wrangler at once (SIGTERM to its process group, SIGKILL after 5 s): what is in the local queues is lost. */
  stop(): Promise<void>;
}

export const OFFLINE_ENV = {
  WRANGLER_SEND_METRICS: "false",
  WRANGLER_SEND_ERROR_REPORTS: "false",
  CLOUDFLARE_CF_FETCH_ENABLED: "false",
  NO_UPDATE_NOTIFIER: "1",
};

export async function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.unref();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => (typeof address === "object" && address ? resolvePort(address.port) : reject(new Error("no port"))));
    });
  });
}

export function applyMigrations(persistDir: string, config = join(PROJECT_ROOT, "wrangler.toml")): void {
  const result = spawnSync(
    process.execPath,
    [WRANGLER, "d1", "migrations", "apply", "DB", "--local", "--persist-to", persistDir, "--config", config],
    {
      cwd: PROJECT_ROOT,
      env: { ...process.env, ...OFFLINE_ENV, CI: "true" },
      encoding: "utf8",
    },
  );
  if (result.status !== 0) throw new Error(`applying D1 migrations failed:\n${result.stdout}\n${result.stderr}`);
}

export async function startLocalEdge(options: LocalEdgeOptions = {}): Promise<LocalEdge> {
  const port = options.port || (await freePort());
  const persistDir = options.persistDir ?? mkdtempSync(join(tmpdir(), "edgemesh-edge-"));
  mkdirSync(persistDir, { recursive: true });
  const config = options.config ?? join(PROJECT_ROOT, "wrangler.toml");
  const adminToken = options.adminToken ?? randomBytes(24).toString("base64url");
  if (options.migrate ?? options.config === undefined) applyMigrations(persistDir, config);

  // Secrets reach wrangler dev through an env file, never through the command line.
  const jwtSecret = options.jwtSecret ?? randomBytes(32).toString("base64url");
  const envFile = options.envFile ?? join(persistDir, "edge.env");
  const metricsToken = options.metricsToken ?? randomBytes(24).toString("base64url");
  if (!options.envFile)
    writeFileSync(envFile, `ADMIN_TOKEN="${adminToken}"\nJWT_SECRET="${jwtSecret}"\nMETRICS_TOKEN="${metricsToken}"\n`, { mode: 0o600 });
  const args = [
    WRANGLER,
    "dev",
    "--config",
    config,
    "--ip",
    "127.0.0.1",
    "--port",
    String(port),
    "--persist-to",
    persistDir,
    "--env-file",
    envFile,
    "--show-interactive-dev-session=false",
    "--inspector-port",
    String(await freePort()),
  ];
  // EDGEMESH_LOCAL=1 opens the local-only routes (the drain of functions/routes/local.ts).
  const vars = options.config === undefined ? { EDGEMESH_LOCAL: "1", ...options.vars } : (options.vars ?? {});
  for (const [key, value] of Object.entries(vars)) args.push("--var", `${key}:${value}`);

  const registryPath = options.registryPath ?? join(persistDir, "dev-registry");
  mkdirSync(registryPath, { recursive: true });
  const child = spawn(process.execPath, args, {
    cwd: PROJECT_ROOT,
    env: { ...process.env, ...OFFLINE_ENV, WRANGLER_REGISTRY_PATH: registryPath },
    stdio: ["ignore", "pipe", "pipe"],
    detached: true,
  });
  let output = "";
  const collect = (chunk: Buffer) => {
    output = (output + chunk.toString()).slice(-20_000);
    if (options.verbose) process.stderr.write(chunk);
  };
  child.stdout?.on("data", collect);
  child.stderr?.on("data", collect);

  const url = `http://127.0.0.1:${port}`;
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((done) => child.once("exit", () => done()));
    try {
      process.kill(-(child.pid ?? 0), "SIGTERM");
    } catch {
      child.kill("SIGTERM");
    }
    const timer = setTimeout(() => {
      try {
        process.kill(-(child.pid ?? 0), "SIGKILL");
      } catch {}
    }, 5000);
    await exited;
    clearTimeout(timer);
  };

  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`wrangler dev exited with ${child.exitCode}:\n${output}`);
    try {
      const res = await fetch(`${url}/v1/health`, { signal: AbortSignal.timeout(2000) });
      if (res.status < 500 || options.config) break;
    } catch {}
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`the local edge did not answer on ${url} within 60 s:\n${output}`);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  const admin = async <T>(method: string, path: string, body?: unknown) => {
    const res = await fetch(`${url}${path}`, {
      method,
      headers: { authorization: `Bearer ${adminToken}`, "content-type": "application/json" },
      ...(body !== undefined && { body: JSON.stringify(body) }),
    });
    const text = await res.text();
    return { status: res.status, body: (text ? JSON.parse(text) : null) as T };
  };
  // What the queues held at the start (an earlier hard stop's loss): the drain never waits for it.
  const baseline = options.config === undefined ? (await drainStatus(url, adminToken).catch(() => undefined))?.pending : undefined;
  const drain = (drainOptions: Omit<DrainOptions, "baseline"> = {}) => drainEdge(url, adminToken, { ...drainOptions, baseline });
  return { url, port, adminToken, jwtSecret, metricsToken, persistDir, process: child, log: () => output, admin, drain, stop };
}
