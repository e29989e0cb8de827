/**
 * The dashboard's pipeline health page in Debian's chromium against the local edge: after real
 * telemetry (accepted and rejected) has gone through the queues, an admin sees the numbers of
 * GET /metrics — tiles, latency per stage, per-queue counts, rejections by code; a viewer has no
 * link to it and is told it needs the admin role. The page's parser is checked on the same text.
 */
import type { Browser, BrowserContext, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildWeb } from "../../scripts/build-web.ts";
import { type LocalEdge, startLocalEdge } from "../../scripts/lib/local-edge.ts";
import { histogram, parseMetrics, total } from "../../web/src/prometheus.ts";
import { DESKTOP, launchChromium, mustCall, newPage, screenshot } from "./harness.ts";

let edge: LocalEdge;
let browser: Browser;
let context: BrowserContext;
let page: Page;
let logs: string[];
let metricsText = "";

async function scrape(): Promise<string> {
  const res = await fetch(`${edge.url}/metrics`, { headers: { authorization: `Bearer ${edge.metricsToken}` } });
  return res.text();
}

async function signIn(target: Page, token: string): Promise<void> {
  await target.goto(edge.url);
  await target.locator("#login-token").fill(token);
  await target.getByRole("button", { name: "Sign in" }).click();
  await target.locator("#device-grid").waitFor({ timeout: 20_000 });
}

beforeAll(async () => {
  await buildWeb();
  browser = await launchChromium();
  edge = await startLocalEdge({ vars: { METRICS_FLUSH_SECONDS: "0" } });
  const created = await mustCall(
    edge.url,
    edge.adminToken,
    "POST",
    "/v1/devices",
    { id: "pipe-thermo", type: "temperature", room: "kitchen" },
    [201],
  );
  const token = String(created.token);
  await mustCall(
    edge.url,
    token,
    "POST",
    "/v1/telemetry",
    [{ payload: { temperature: 20.5 } }, { payload: { temperature: "hot" } }, { payload: { temperature: 21 } }],
    [202],
  );
  const deadline = Date.now() + 30_000;
  for (;;) {
    metricsText = await scrape();
    if (total(parseMetrics(metricsText), "edgemesh_sink_messages_total", { queue: "sensors.temperature", outcome: "delivered" }) >= 2)
      break;
    if (Date.now() > deadline) throw new Error(`the sink never counted:\n${metricsText}`);
    await new Promise((r) => setTimeout(r, 300));
  }
  ({ context, page, logs } = await newPage(browser, DESKTOP));
});

afterAll(async () => {
  if (logs?.length) console.log(`browser console (last 20 lines):\n${logs.slice(-20).join("\n")}`);
  await context?.close().catch(() => {});
  await browser?.close().catch(() => {});
  await edge?.stop();
});

describe("pipeline health page", () => {
  it("the page's parser reads /metrics: totals, and quantiles within the histogram's range", () => {
    const samples = parseMetrics(metricsText);
    expect(total(samples, "edgemesh_ingest_messages_total", { outcome: "accepted" })).toBe(2);
    expect(total(samples, "edgemesh_ingest_rejections_total", { code: "invalid_payload" })).toBe(1);
    const twin = histogram(samples, "edgemesh_twin_duration_seconds");
    expect(twin?.count).toBe(1);
    expect(twin?.p50).toBeGreaterThanOrEqual(0);
    expect(twin?.p99).toBeGreaterThanOrEqual(twin?.p50 ?? 0);
    expect(histogram(samples, "edgemesh_no_such_metric")).toBeUndefined();
  });

  it("shows an admin the tiles, the stages, the queues and the rejections from the same numbers", async () => {
    await signIn(page, edge.adminToken);
    await page.locator('a[data-nav="pipeline"]').click();
    await page.locator("#pipeline-tiles").waitFor({ timeout: 20_000 });
    expect(await page.locator('[data-metric="accepted"]').getAttribute("data-value")).toBe("2");
    expect(await page.locator('[data-metric="rejected"]').getAttribute("data-value")).toBe("1");
    expect(Number(await page.locator('[data-metric="storage"]').getAttribute("data-value"))).toBeGreaterThan(0);
    for (const stage of ["ingest", "twin", "routing", "sinks"])
      await expect.poll(() => page.locator(`#pipeline-stages tr[data-stage="${stage}"]`).count()).toBe(1);
    const queueRow = page.locator('#pipeline-queues tr[data-queue="sensors.temperature"] td');
    expect(await queueRow.nth(1).textContent()).toBe("2"); // routed
    expect(await queueRow.nth(2).textContent()).toBe("2"); // delivered
    expect(await page.locator('#pipeline-rejections tr[data-code="invalid_payload"] td').nth(1).textContent()).toBe("1");
    // The bill at the current rate: the counted lines (queues, D1 rows) and the plan apart.
    expect(Number(await page.locator('[data-metric="cost-usage"]').getAttribute("data-value"))).toBeGreaterThanOrEqual(0);
    expect(await page.locator('[data-metric="cost-base"]').getAttribute("data-value")).toBe("5");
    for (const line of ["queue_ops", "d1_rows_written"])
      expect(
        Number(
          await page
            .locator(`#pipeline-cost-lines tr[data-line="${line}"] td`)
            .nth(1)
            .textContent()
            .then((t) => t?.replace(/[^\d]/g, "")),
        ),
      ).toBeGreaterThan(0);
    await screenshot(page, "pipeline-health");
    expect(logs.filter((l) => l.startsWith("pageerror"))).toEqual([]);
  });

  it("a viewer has no link to it, and the page says it needs the admin role", async () => {
    const issued = await mustCall(
      edge.url,
      edge.adminToken,
      "POST",
      "/v1/auth/token",
      { grant_type: "issue", sub: "vera", role: "viewer" },
      [201],
    );
    const viewer = await newPage(browser, DESKTOP);
    try {
      await signIn(viewer.page, String(issued.refresh_token));
      expect(await viewer.page.locator('a[data-nav="pipeline"]').count()).toBe(0);
      await viewer.page.goto(`${edge.url}/#/pipeline`);
      await expect.poll(() => viewer.page.locator('[data-problem="403"]').textContent()).toContain("admin role");
    } finally {
      await viewer.context.close();
    }
  });
});
