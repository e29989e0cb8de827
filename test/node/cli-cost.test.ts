/**
 * `edgemesh cost` against a real local edge: after real telemetry through the queues, the bill
 * at the current rate comes from the billable counters on GET /metrics and the price table.
 */
import { spawn } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type LocalEdge, PROJECT_ROOT, startLocalEdge } from "../../scripts/lib/local-edge.ts";
import { until } from "../../scripts/lib/wait.ts";
import { CLOUDFLARE_PRICES, PRICES_AS_OF, WORKERS_PAID_BASE_USD } from "../../shared/billing-prices.ts";

const CLI = join(PROJECT_ROOT, "tools/cli/main.ts");
const HOME = mkdtempSync(join(tmpdir(), "edgemesh-cli-cost-home-"));
let edge: LocalEdge;

beforeAll(async () => {
  edge = await startLocalEdge({ vars: { METRICS_FLUSH_SECONDS: "0" } });
});
afterAll(async () => {
  await edge?.stop();
});

function cli(args: string[], token = edge.adminToken): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [CLI, ...args], {
    cwd: PROJECT_ROOT,
    env: { ...process.env, HOME, XDG_CONFIG_HOME: undefined, EDGEMESH_URL: edge.url, EDGEMESH_TOKEN: token },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (c: Buffer) => {
    stdout += c.toString();
  });
  child.stderr.on("data", (c: Buffer) => {
    stderr += c.toString();
  });
  return new Promise((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

interface CostJson {
  window_seconds: number;
  messages: number;
  messages_per_month: number;
  ops: Record<string, number>;
  prices_as_of: string;
  bill: { monthly_usd: number; base_usd: number; lines: { key: string; quantity: number; usd: number }[] };
}

describe("edgemesh cost", () => {
  it("prices the current rate of billable operations with the dated price table", async () => {
    const created = await edge.admin<{ token: string }>("POST", "/v1/devices", { id: "cost-meter", type: "energy", room: "utility" });
    expect(created.status).toBe(201);
    const res = await fetch(`${edge.url}/v1/telemetry`, {
      method: "POST",
      headers: { authorization: `Bearer ${created.body.token}`, "content-type": "application/json" },
      body: JSON.stringify(Array.from({ length: 10 }, (_, i) => ({ payload: { power_kw: 3 + i / 10, voltage: 230 } }))),
    });
    expect(res.status).toBe(202);

    // The consumers store the readings after the answer: wait until their D1 writes are counted.
    const r = await until(
      async () => {
        const run = await cli(["cost", "--json"]);
        if (run.code !== 0) return undefined;
        const report = JSON.parse(run.stdout) as CostJson;
        const stored = (report.ops.d1_rows_written ?? 0) > 0 && (report.ops.queue_read_ops ?? 0) > 0 && report.messages >= 10;
        return stored ? report : undefined;
      },
      "the billable counters",
      30_000,
      () => edge.log().slice(-2000),
    );
    expect(r.prices_as_of).toBe(PRICES_AS_OF);
    expect(r.bill.base_usd).toBe(WORKERS_PAID_BASE_USD);
    expect(r.messages_per_month).toBeGreaterThan(r.messages);
    // Each line is its operations scaled from the window to a month, priced beyond the quota.
    const queue = r.bill.lines.find((l) => l.key === "queue_ops");
    const scale = (30 * 86_400) / r.window_seconds;
    const queueOps = (r.ops.queue_write_ops ?? 0) + (r.ops.queue_read_ops ?? 0) + (r.ops.queue_delete_ops ?? 0);
    expect(queue?.quantity).toBeGreaterThan(0);
    expect(Math.abs((queue?.quantity ?? 0) - queueOps * scale) / (queueOps * scale)).toBeLessThan(0.05);
    const price = CLOUDFLARE_PRICES.queue_ops;
    expect(queue?.usd).toBeCloseTo((Math.max(0, (queue?.quantity ?? 0) - price.included) / 1e6) * price.usdPerMillion, 6);
    expect(r.bill.monthly_usd).toBeCloseTo(
      r.bill.lines.reduce((s, l) => s + l.usd, 0),
      1,
    );

    const text = await cli(["cost"]);
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/usage:\s+\$\d+\.\d\d a month beyond Workers Paid's included quotas/);
    expect(text.stdout).toContain("D1 rows written");
    expect(text.stdout).toContain(`as of ${PRICES_AS_OF}`);
  });

  it("refuses without the admin role, as GET /metrics does", async () => {
    const run = await cli(["cost"], "not-a-token");
    expect(run.code).toBe(3);
    expect(run.stderr).toMatch(/401|unauthorized|token/i);
  });
});
