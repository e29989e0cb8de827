/**
 * Starts a real S3-protocol server — Versity's S3 gateway (versitygw) over a temporary folder — on
 * a free 127.0.0.1 port, for the archive tool's tests. `scripts/install-versitygw.sh` builds it
 * into the cache; `versitygwPath()` finds it there.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { homedir, tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "./local-edge.ts";

export const VERSITYGW_VERSION = process.env.EDGEMESH_VERSITYGW_VERSION ?? "v1.8.0";

export interface S3Server {
  endpoint: string;
  accessKeyId: string;
  secretAccessKey: string;
  /** The folder behind the server: one sub-folder per bucket. */
  root: string;
  process: ChildProcess;
  log(): string;
  stop(): Promise<void>;
}

/** Where scripts/install-versitygw.sh puts the binary, or undefined when it is not built. */
export function versitygwPath(): string | undefined {
  if (process.env.EDGEMESH_VERSITYGW) return existsSync(process.env.EDGEMESH_VERSITYGW) ? process.env.EDGEMESH_VERSITYGW : undefined;
  const cache = process.env.EDGEMESH_CACHE ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), ".cache"), "edgemesh");
  const path = join(cache, `versitygw-${VERSITYGW_VERSION}`, "bin", "versitygw");
  return existsSync(path) ? path : undefined;
}

/** Starts the server on an empty folder; create buckets through the S3 API (CreateBucket). */
export async function startS3Server(): Promise<S3Server> {
  const binary = versitygwPath();
  if (!binary) throw new Error("versitygw is not built: run `bash scripts/install-versitygw.sh`");
  const root = mkdtempSync(join(tmpdir(), "edgemesh-s3-"));
  const port = await freePort();
  const accessKeyId = `test${randomBytes(6).toString("hex")}`;
  const secretAccessKey = randomBytes(24).toString("base64url");
  // Keys reach the server through its environment, never its command line.
  const child = spawn(binary, ["--port", `127.0.0.1:${port}`, "--quiet", "posix", root], {
    env: { ...process.env, ROOT_ACCESS_KEY_ID: accessKeyId, ROOT_SECRET_ACCESS_KEY: secretAccessKey },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  const collect = (chunk: Buffer) => {
    output = (output + chunk.toString()).slice(-20_000);
  };
  child.stdout?.on("data", collect);
  child.stderr?.on("data", collect);

  const endpoint = `http://127.0.0.1:${port}`;
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise<void>((done) => child.once("exit", () => done()));
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
      await exited;
      clearTimeout(timer);
    }
    rmSync(root, { recursive: true, force: true });
  };

  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`versitygw exited with ${child.exitCode}:\n${output}`);
    try {
      // Any HTTP answer (403 for an unsigned request) means it listens.
      await fetch(endpoint, { signal: AbortSignal.timeout(1000) });
      break;
    } catch {}
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`versitygw did not answer on ${endpoint} within 30 s:\n${output}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return { endpoint, accessKeyId, secretAccessKey, root, process: child, log: () => output, stop };
}
