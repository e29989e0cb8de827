#!/usr/bin/env node
/**
 * npm run deploy: puts edgemesh on a Cloudflare account, creating what is missing first —
 * every queue of the topology and the dead-letter queue, the R2 bucket, the D1 database and its
 * migrations, the Hyperdrive configuration when a Timescale URL is given, the secrets — then
 * `wrangler deploy`. Running it again creates nothing twice. docs/deploy.md walks through it.
 *
 *   npm run deploy -- --env production|staging [--timescale-url URL] [--yes]
 *   npm run deploy -- --dry-run [--env E] [--paid]   the plan and the bundle, no account needed
 *
 * Secrets come from the environment (ADMIN_TOKEN, JWT_SECRET, METRICS_TOKEN) or are asked for
 * on a terminal; they go to Cloudflare through `wrangler secret put` on stdin and are never
 * written to a file. Exit codes: 0 done; 1 a step failed (it says which); 2 usage.
 */
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline/promises";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { gzipSync } from "node:zlib";
import { unstable_readConfig } from "wrangler";
import { OFFLINE_ENV, PROJECT_ROOT } from "./lib/local-edge.ts";
import { ENVIRONMENTS, WRANGLER_TOML } from "./wrangler-envs.ts";

const WRANGLER = join(PROJECT_ROOT, "node_modules/wrangler/bin/wrangler.js");

/** Workers' compressed size limits (developers.cloudflare.com/workers/platform/limits). */
export const SIZE_LIMIT = { free: 3 * 1024 * 1024, paid: 10 * 1024 * 1024 } as const;

interface Config {
  name: string;
  queues: { producers?: { queue: string }[]; consumers?: { queue: string; dead_letter_queue?: string }[] };
  r2_buckets: { binding: string; bucket_name?: string }[];
  d1_databases: { binding: string; database_name?: string }[];
  hyperdrive: { binding: string; id?: string }[];
  secrets?: { required?: string[] };
}

export interface Plan {
  env: string;
  worker: string;
  queues: string[];
  buckets: string[];
  databases: { binding: string; name: string }[];
  hyperdrive: { name: string; bound: boolean } | undefined;
  secrets: string[];
}

export function readEnvConfig(env: string): Config {
  return unstable_readConfig({ config: WRANGLER_TOML, env }) as unknown as Config;
}

export function makePlan(env: string, timescaleUrl: string | undefined): Plan {
  const config = readEnvConfig(env);
  const queues = new Set<string>();
  for (const p of config.queues.producers ?? []) queues.add(p.queue);
  for (const c of config.queues.consumers ?? []) {
    queues.add(c.queue);
    if (c.dead_letter_queue) queues.add(c.dead_letter_queue);
  }
  return {
    env,
    worker: config.name,
    queues: [...queues].sort(),
    buckets: config.r2_buckets.map((b) => b.bucket_name ?? "").filter(Boolean),
    databases: config.d1_databases.map((d) => ({ binding: d.binding, name: d.database_name ?? "" })),
    hyperdrive: timescaleUrl ? { name: `${config.name}-timescale`, bound: config.hyperdrive.length > 0 } : undefined,
    secrets: config.secrets?.required ?? [],
  };
}

export function describePlan(plan: Plan): string {
  return [
    `Deploy plan for ${plan.env} (Worker "${plan.worker}"):`,
    `  queues (${plan.queues.length}), created when missing: ${plan.queues.join(", ")}`,
    `  R2 buckets, created when missing: ${plan.buckets.join(", ")}`,
    ...plan.databases.map(
      (d) => `  D1 database "${d.name}" (binding ${d.binding}): created when missing, then its migrations applied (--remote)`,
    ),
    plan.hyperdrive
      ? `  Hyperdrive "${plan.hyperdrive.name}" from --timescale-url, created when missing; PostgreSQL migrations applied${plan.hyperdrive.bound ? "" : " (add its [[env." + plan.env + ".hyperdrive]] binding: the script prints it)"}`
      : "  Hyperdrive: none (no --timescale-url / TIMESCALE_URL: the series stay in D1)",
    `  secrets, set when missing (from the environment or asked for): ${plan.secrets.join(", ")}`,
    `  then: wrangler deploy --env ${plan.env}`,
  ].join("\n");
}

interface Run {
  status: number;
  stdout: string;
  stderr: string;
}

function wrangler(args: string[], input?: string): Run {
  const result = spawnSync(process.execPath, [WRANGLER, ...args], {
    cwd: PROJECT_ROOT,
    env: { ...process.env, WRANGLER_SEND_METRICS: "false", NO_UPDATE_NOTIFIER: "1" },
    encoding: "utf8",
    input,
    maxBuffer: 64 * 1024 * 1024,
  });
  return { status: result.status ?? 1, stdout: result.stdout ?? "", stderr: result.stderr ?? "" };
}

export class DeployError extends Error {
  override name = "DeployError";
}

function must(what: string, run: Run): Run {
  if (run.status !== 0) throw new DeployError(`${what} failed:\n${run.stdout}\n${run.stderr}`.trim());
  return run;
}

/** Creates a resource; "already exists" is success (the step is idempotent). */
function ensure(what: string, args: string[]): "created" | "exists" {
  const run = wrangler(args);
  if (run.status === 0) return "created";
  if (/already (exists|taken|owned)|is taken|name.*in use/i.test(run.stdout + run.stderr)) return "exists";
  throw new DeployError(`creating ${what} failed:\n${run.stdout}\n${run.stderr}`.trim());
}

/** Gzipped size of the bundle wrangler wrote (every module, no source maps). */
export function bundleSize(outdir: string): { raw: number; gzip: number; files: string[] } {
  let raw = 0;
  let gzip = 0;
  const files: string[] = [];
  for (const file of readdirSync(outdir, { recursive: true }) as string[]) {
    const path = join(outdir, file);
    if (!statSync(path).isFile() || file.endsWith(".map") || file.endsWith(".md")) continue;
    const bytes = readFileSync(path);
    raw += bytes.length;
    gzip += gzipSync(bytes).length;
    files.push(file);
  }
  return { raw, gzip, files };
}

const kib = (n: number) => `${(n / 1024).toFixed(1)} KiB`;

/** Builds the bundle as `wrangler deploy` would, without an account, and checks its size. */
export function dryRun(
  env: string | undefined,
  limit: number,
  log: (line: string) => void,
  config = WRANGLER_TOML,
): { gzip: number; limit: number } {
  const outdir = mkdtempSync(join(tmpdir(), "edgemesh-bundle-"));
  try {
    const args = [WRANGLER, "deploy", "--dry-run", "--outdir", outdir, "--config", config, ...(env ? ["--env", env] : [])];
    const run = spawnSync(process.execPath, args, {
      cwd: PROJECT_ROOT,
      env: { ...process.env, ...OFFLINE_ENV },
      encoding: "utf8",
      maxBuffer: 64 * 1024 * 1024,
    });
    if (run.status !== 0)
      throw new DeployError(`the bundle does not build (wrangler deploy --dry-run):\n${run.stdout}\n${run.stderr}`.trim());
    const size = bundleSize(outdir);
    if (size.files.length === 0) throw new DeployError(`wrangler deploy --dry-run wrote no bundle to ${outdir}`);
    log(`bundle: ${size.files.join(", ")}: ${kib(size.raw)}, gzip ${kib(size.gzip)} of the ${kib(limit)} limit`);
    if (size.gzip > limit)
      throw new DeployError(`the bundle is ${kib(size.gzip)} compressed, over the Workers size limit of ${kib(limit)}`);
    return { gzip: size.gzip, limit };
  } finally {
    rmSync(outdir, { recursive: true, force: true });
  }
}

async function secretValue(name: string, interactive: boolean): Promise<string> {
  const fromEnv = process.env[name];
  if (fromEnv) return fromEnv;
  if (!interactive) throw new DeployError(`secret ${name} is not set on the Worker: export ${name}=… (or run on a terminal to be asked)`);
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    const answer = (await rl.question(`${name} (Enter for a random one): `)).trim();
    if (answer) return answer;
  } finally {
    rl.close();
  }
  const generated = randomBytes(32).toString("base64url");
  if (name === "ADMIN_TOKEN" || name === "METRICS_TOKEN")
    process.stderr.write(`${name} (store it now, it is not shown again): ${generated}\n`);
  return generated;
}

async function deploy(plan: Plan, timescaleUrl: string | undefined, interactive: boolean, log: (line: string) => void): Promise<void> {
  const env = ["--env", plan.env];
  must("checking the Cloudflare login (wrangler whoami)", wrangler(["whoami"]));
  for (const queue of plan.queues) log(`queue ${queue}: ${ensure(`queue ${queue}`, ["queues", "create", queue])}`);
  for (const bucket of plan.buckets) log(`R2 bucket ${bucket}: ${ensure(`bucket ${bucket}`, ["r2", "bucket", "create", bucket])}`);
  const existing = JSON.parse(must("listing D1 databases", wrangler(["d1", "list", "--json"])).stdout) as { name: string }[];
  for (const db of plan.databases) {
    if (!existing.some((d) => d.name === db.name)) must(`creating D1 database ${db.name}`, wrangler(["d1", "create", db.name]));
    log(`D1 ${db.name}: ${existing.some((d) => d.name === db.name) ? "exists" : "created"}`);
    must(`applying D1 migrations to ${db.name}`, wrangler(["d1", "migrations", "apply", db.binding, "--remote", ...env], "y\n"));
    log(`D1 ${db.name}: migrations applied`);
  }
  if (plan.hyperdrive && timescaleUrl) {
    // The connection string goes to Cloudflare (encrypted there) and to the migration runner, never to a file.
    log(
      `Hyperdrive ${plan.hyperdrive.name}: ${ensure("the Hyperdrive configuration", ["hyperdrive", "create", plan.hyperdrive.name, `--connection-string=${timescaleUrl}`])}`,
    );
    const migrate = spawnSync(process.execPath, [join(PROJECT_ROOT, "infra/postgres/migrate.ts")], {
      cwd: PROJECT_ROOT,
      env: { ...process.env, DATABASE_URL: timescaleUrl },
      stdio: "inherit",
    });
    if (migrate.status !== 0) throw new DeployError("applying the PostgreSQL migrations failed (node infra/postgres/migrate.ts)");
    if (!plan.hyperdrive.bound) {
      throw new DeployError(
        `add the Hyperdrive binding, then run this again:\n  wrangler hyperdrive list   (the id of ${plan.hyperdrive.name})\n` +
          `  in wrangler.toml, at the top level: [[hyperdrive]] binding = "HYPERDRIVE", id = "<that id>", then node scripts/wrangler-envs.ts`,
      );
    }
  }
  const listed = wrangler(["secret", "list", "--format", "json", ...env]);
  const present = new Set(listed.status === 0 ? (JSON.parse(listed.stdout || "[]") as { name: string }[]).map((s) => s.name) : []);
  for (const name of plan.secrets) {
    if (present.has(name) && !process.env[name]) {
      log(`secret ${name}: set`);
      continue;
    }
    must(`setting secret ${name}`, wrangler(["secret", "put", name, ...env], await secretValue(name, interactive)));
    log(`secret ${name}: ${present.has(name) ? "updated from the environment" : "set"}`);
  }
  const deployed = must("wrangler deploy", wrangler(["deploy", ...env]));
  log(
    deployed.stdout
      .split("\n")
      .filter((l) => /https:\/\/|Current Version ID|Uploaded/.test(l))
      .join("\n"),
  );
}

export async function main(argv: string[], log: (line: string) => void = (l) => console.log(l)): Promise<number> {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        env: { type: "string", default: "production" },
        "dry-run": { type: "boolean", default: false },
        paid: { type: "boolean", default: false },
        "timescale-url": { type: "string" },
        yes: { type: "boolean", default: false },
        help: { type: "boolean", short: "h", default: false },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (error) {
    console.error(`deploy: ${(error as Error).message} (--help)`);
    return 2;
  }
  if (values.help) {
    log(
      readFileSync(fileURLToPath(import.meta.url), "utf8")
        .split("*/")[0]
        ?.replace(/^#!.*\n\/\*\*\n/, "")
        .replace(/^ \* ?/gm, "") ?? "",
    );
    return 0;
  }
  const env = String(values.env);
  if (!ENVIRONMENTS.some((e) => e.name === env)) {
    console.error(
      `deploy: --env is ${ENVIRONMENTS.map((e) => e.name).join(" or ")}, not "${env}" (the top level is for local development)`,
    );
    return 2;
  }
  const timescaleUrl = (values["timescale-url"] as string | undefined) ?? process.env.TIMESCALE_URL;
  try {
    const plan = makePlan(env, timescaleUrl);
    log(describePlan(plan));
    const { gzip } = dryRun(env, values.paid === true ? SIZE_LIMIT.paid : SIZE_LIMIT.free, log);
    if (values["dry-run"]) {
      log(`dry run: nothing was created or deployed (bundle ${kib(gzip)} compressed)`);
      return 0;
    }
    await deploy(plan, timescaleUrl, process.stdin.isTTY === true && values.yes !== true, log);
    log(`deployed ${plan.worker} (${env})`);
    return 0;
  } catch (error) {
    console.error(`deploy: ${error instanceof Error ? error.message : String(error)}`);
    return 1;
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) process.exitCode = await main(process.argv.slice(2));
