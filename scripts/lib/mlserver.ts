/**
 * A real KServe v2 (Open Inference Protocol) model server for tests and benchmarks: Seldon's
 * MLServer with its scikit-learn runtime, installed by scripts/install-mlserver.sh into the cache,
 * serving the tiny `too-hot` model trained there, on free 127.0.0.1 ports.
 */
import { spawn, spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { freePort, PROJECT_ROOT } from "./local-edge.ts";

export const NO_MLSERVER_MESSAGE = "MLServer is not installed: run bash scripts/install-mlserver.sh (.ci/run does)";

/** The install folder, installing first when `install` is set; undefined when missing. */
export function findMlserver(install = false): string | undefined {
  if (install) {
    const done = spawnSync("bash", [join(PROJECT_ROOT, "scripts/install-mlserver.sh")], {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "inherit"],
    });
    if (done.status === 0) return done.stdout.trim();
  }
  const cache = process.env.EDGEMESH_CACHE ?? join(process.env.XDG_CACHE_HOME ?? join(process.env.HOME ?? "/root", ".cache"), "edgemesh");
  const root = join(cache, `mlserver-${process.env.EDGEMESH_MLSERVER_VERSION ?? "1.7.1"}`);
  return existsSync(join(root, ".ready")) ? root : undefined;
}

export interface ModelServer {
  url: string;
  stop(): Promise<void>;
}

export async function startMlserver(root: string): Promise<ModelServer> {
  const [http, grpc, metrics] = [await freePort(), await freePort(), await freePort()];
  const child = spawn(join(root, "bin/mlserver"), ["start", join(root, "models")], {
    env: {
      ...process.env,
      MLSERVER_HOST: "127.0.0.1",
      MLSERVER_HTTP_PORT: String(http),
      MLSERVER_GRPC_PORT: String(grpc),
      MLSERVER_METRICS_PORT: String(metrics),
      // One process: the model is tiny and the machine small.
      MLSERVER_PARALLEL_WORKERS: "0",
      MLSERVER_METRICS_ENABLED: "false",
    },
    stdio: ["ignore", "pipe", "pipe"],
    detached: true,
  });
  let log = "";
  child.stdout?.on("data", (c: Buffer) => {
    log = (log + c).slice(-5000);
  });
  child.stderr?.on("data", (c: Buffer) => {
    log = (log + c).slice(-5000);
  });
  const url = `http://127.0.0.1:${http}`;
  const deadline = Date.now() + 90_000;
  for (;;) {
    try {
      const res = await fetch(`${url}/v2/models/too-hot/ready`);
      if (res.ok) break;
    } catch {}
    if (child.exitCode !== null || Date.now() > deadline) {
      try {
        process.kill(-(child.pid ?? 0), "SIGKILL");
      } catch {}
      throw new Error(`MLServer did not become ready:\n${log}`);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  return {
    url,
    stop: async () => {
      if (child.exitCode !== null) return;
      const exited = new Promise((r) => child.once("exit", r));
      try {
        process.kill(-(child.pid ?? 0), "SIGTERM");
      } catch {
        child.kill("SIGTERM");
      }
      await exited;
    },
  };
}
