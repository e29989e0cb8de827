/**
 * A throwaway Mosquitto (Debian `mosquitto`) on a free port with a temporary config and
 * persistence folder, for the agent's tests and benchmark. `restart()` stops it (SIGTERM, which
 * saves its persistence file) and starts it again on the same port, with the sessions it kept.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "./local-edge.ts";
import { listening } from "./ports.ts";

export interface Mosquitto {
  url: string;
  port: number;
  dir: string;
  log(): string;
  restart(): Promise<void>;
  stop(): Promise<void>;
}

/** Whether the `mosquitto` binary is installed. */
export function mosquittoAvailable(): boolean {
  return spawnSync("mosquitto", ["-h"], { stdio: "ignore" }).error === undefined;
}

export async function startMosquitto(): Promise<Mosquitto> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), "edgemesh-mosquitto-"));
  const config = join(dir, "mosquitto.conf");
  // `user root`: run as whoever starts it (as root it would switch to the mosquitto user, which
  // cannot write the temporary folder). Large queues: the agent's tests hold many messages there.
  writeFileSync(
    config,
    [
      `listener ${port} 127.0.0.1`,
      "allow_anonymous true",
      "persistence true",
      `persistence_location ${dir}/`,
      "autosave_interval 1",
      "max_queued_messages 1000000",
      "max_inflight_messages 100",
      "log_dest stderr",
      "log_type error",
      "log_type warning",
      ...(process.getuid?.() === 0 ? ["user root"] : []),
    ].join("\n"),
  );
  let output = "";
  let child: ChildProcess | undefined;
  const start = async () => {
    child = spawn("mosquitto", ["-c", config], { stdio: ["ignore", "ignore", "pipe"] });
    child.stderr?.on("data", (d) => {
      output += String(d);
    });
    const deadline = Date.now() + 10_000;
    while (!(await listening(port))) {
      if (child.exitCode !== null) throw new Error(`mosquitto exited with ${child.exitCode}: ${output}`);
      if (Date.now() > deadline) throw new Error(`mosquitto did not listen on ${port}: ${output}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  const halt = async () => {
    const running = child;
    if (!running || running.exitCode !== null) return;
    const exited = new Promise((r) => running.once("exit", r));
    running.kill("SIGTERM");
    await exited;
  };
  await start();
  return {
    url: `mqtt://127.0.0.1:${port}`,
    port,
    dir,
    log: () => output,
    async restart() {
      await halt();
      await start();
    },
    async stop() {
      await halt();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
