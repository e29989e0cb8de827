/**
 * Stopping the local edge under load loses no accepted reading (issue 14): `scripts/dev.ts` (what
 * `scripts/dev.sh` runs) gets SIGTERM while a device posts readings, drains the local queues,
 * exits; started again on the same state, every reading it answered 202 for is stored exactly
 * once in the series store.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { freePort, OFFLINE_ENV, PROJECT_ROOT } from "../../scripts/lib/local-edge.ts";
import { until } from "../../scripts/lib/wait.ts";

const dir = mkdtempSync(join(tmpdir(), "edgemesh-dev-stop-"));
const ADMIN = "dev-stop-admin-token-0123456789";
writeFileSync(join(dir, "dev.vars"), `ADMIN_TOKEN="${ADMIN}"\nJWT_SECRET="${"j".repeat(40)}"\nMETRICS_TOKEN="${"m".repeat(30)}"\n`, {
  mode: 0o600,
});
const running: ChildProcess[] = [];

interface Dev {
  child: ChildProcess;
  url: string;
  output: () => string;
  exited: Promise<number | null>;
}

async function startDev(port: number): Promise<Dev> {
  const child = spawn(process.execPath, [join(PROJECT_ROOT, "scripts/dev.ts")], {
    cwd: PROJECT_ROOT,
    env: {
      ...process.env,
      ...OFFLINE_ENV,
      PORT: String(port),
      EDGEMESH_DEMO: "0",
      EDGEMESH_STATE_DIR: join(dir, "state"),
      EDGEMESH_DEV_VARS: join(dir, "dev.vars"),
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  running.push(child);
  let output = "";
  child.stdout?.on("data", (chunk: Buffer) => (output += chunk.toString()));
  child.stderr?.on("data", (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<number | null>((done) => child.once("exit", (code) => done(code)));
  await until(
    () =>
      output.includes("edgemesh local edge is running") ? true : child.exitCode !== null ? Promise.reject(new Error(output)) : undefined,
    "the dev script's banner",
    120_000,
    () => output,
  );
  return { child, url: `http://127.0.0.1:${port}`, output: () => output, exited };
}

const admin = (url: string, method: string, path: string, body?: unknown) =>
  fetch(`${url}${path}`, {
    method,
    headers: { authorization: `Bearer ${ADMIN}`, "content-type": "application/json" },
    ...(body !== undefined && { body: JSON.stringify(body) }),
  });

afterAll(async () => {
  for (const child of running) if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  rmSync(dir, { recursive: true, force: true });
});

describe("stopping scripts/dev.sh under load", () => {
  it("drains the local queues on SIGTERM: every reading answered 202 is stored once after the restart", async () => {
    const port = await freePort();
    const first = await startDev(port);
    const created = await admin(first.url, "POST", "/v1/devices", { id: "stop-thermo", type: "temperature", room: "lab" });
    expect(created.status).toBe(201);
    const { token } = (await created.json()) as { token: string };

    const accepted = new Set<string>();
    const refused: number[] = [];
    let n = 0;
    let stopLoad = false;
    const sender = async () => {
      while (!stopLoad) {
        const id = `r-${++n}`;
        try {
          const res = await fetch(`${first.url}/v1/telemetry`, {
            method: "POST",
            headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
            body: JSON.stringify({ id, payload: { temperature: 20 + (n % 10) } }),
            signal: AbortSignal.timeout(5000),
          });
          if (res.status === 202) accepted.add(id);
          else refused.push(res.status);
          await res.body?.cancel();
        } catch {
          refused.push(0); // the edge is gone: not accepted
        }
        await new Promise((r) => setTimeout(r, 25));
      }
    };
    const senders = [sender(), sender(), sender()];
    await until(() => (accepted.size >= 150 ? true : undefined), "150 accepted readings", 60_000);
    first.child.kill("SIGTERM");
    const code = await Promise.race([first.exited, new Promise<"hung">((r) => setTimeout(() => r("hung"), 90_000))]);
    stopLoad = true;
    await Promise.all(senders);
    expect(code, first.output()).not.toBe("hung");
    expect(first.output()).toMatch(/the local queues are drained/);
    // While draining, the edge refused new readings instead of taking them into memory.
    expect(
      refused.every((s) => s === 503 || s === 0),
      String(refused),
    ).toBe(true);

    const second = await startDev(port);
    try {
      const start = new Date(Date.now() - 3_600_000).toISOString();
      const end = new Date(Date.now() + 3_600_000).toISOString();
      const stored = await until(
        async () => {
          const res = await admin(
            second.url,
            "GET",
            `/v1/series?metric=temperature&device=stop-thermo&bucket=raw&start=${start}&end=${end}&limit=10000`,
          );
          const text = await res.text();
          const points = (text.match(/"time":/g) ?? []).length;
          return points >= accepted.size ? points : undefined;
        },
        `${accepted.size} stored readings`,
        30_000,
      );
      expect(stored).toBe(accepted.size);
      // And by id, in the consumers' message history: none missing.
      expect(accepted.size).toBeLessThanOrEqual(500);
      const res = await admin(second.url, "GET", "/v1/messages?device=stop-thermo&limit=500");
      const ids = new Set(((await res.json()) as { messages: { id: string }[] }).messages.map((m) => m.id));
      const missing = [...accepted].filter((id) => !ids.has(id));
      expect(missing, `missing from the history: ${missing.slice(0, 10).join(", ")}`).toEqual([]);
    } finally {
      second.child.kill("SIGTERM");
      await second.exited;
    }
  }, 300_000);
});
