/**
 * The default analysis on the stream (docs/ai.md) as an operator sees it, in Chromium against the
 * local edge: a device of a type the project has never heard of posts normal readings, then an
 * anomaly; with no rule written, #/alerts shows the alert with its evidence (the reading against
 * its baseline, the score, the window), and an operator acknowledges it there.
 */
import { rmSync } from "node:fs";
import type { Browser, BrowserContext, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect } from "vitest";
import type { LocalEdge } from "../../scripts/lib/local-edge.ts";
import { gaussian, seededRandom } from "../../shared/random.ts";
import { mustCall, newPage, randomSecret, startEdgeAndChromium, steps } from "./harness.ts";

const adminToken = randomSecret();

let edge: LocalEdge;
let persistDir: string;
let browser: Browser;
let context: BrowserContext;
let page: Page;
let logs: string[] = [];
let token = "";

const { step, failed } = steps(90_000);

describe("the default analysis on #/alerts in chromium", () => {
  beforeAll(async () => {
    try {
      ({ edge, browser, persistDir } = await startEdgeAndChromium("analysis", { adminToken }));
      const created = await mustCall(
        edge.url,
        adminToken,
        "POST",
        "/v1/devices",
        { id: "bed-1", type: "soil-probe", room: "garden" },
        [201],
      );
      token = String(created.token);
      ({ context, page, logs } = await newPage(browser));
    } catch (error) {
      failed(error);
    }
  }, 180_000);

  afterAll(async () => {
    if (logs.length) console.log(`browser console (last 30 lines):\n${logs.slice(-30).join("\n")}`);
    await context?.close().catch(() => {});
    await browser?.close().catch(() => {});
    await edge?.stop();
    if (persistDir) rmSync(persistDir, { recursive: true, force: true });
  });

  step("normal readings raise nothing; an anomaly shows on #/alerts with its evidence, and is acknowledged there", async () => {
    const random = seededRandom(6);
    for (let i = 0; i < 22; i++)
      await mustCall(edge.url, token, "POST", "/v1/telemetry", { payload: { moisture: 40 + 0.1 * gaussian(random) } }, [202]);
    await mustCall(edge.url, token, "POST", "/v1/telemetry", { payload: { moisture: 75 } }, [202]);
    await expect
      .poll(async () => ((await mustCall(edge.url, adminToken, "GET", "/api/monitoring/alerts?device=bed-1")).alerts as unknown[]).length, {
        timeout: 30_000,
      })
      .toBe(1);

    await page.goto(edge.url);
    await page.locator("#login-token").fill(adminToken);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.locator("#device-grid").waitFor({ timeout: 20_000 });
    await page.goto(`${edge.url}/#/alerts`);
    const evidence = page.locator('[data-evidence="moisture"]');
    await evidence.waitFor({ timeout: 20_000 });
    expect(await evidence.textContent()).toMatch(/^moisture 75 vs baseline (39|40)(\.\d+)? ± [\d.]+ · z [\d.]+ \(≥ 5\) over 22 readings/);
    const card = page.locator("article.alert", { has: evidence });
    expect(await card.locator("strong").textContent()).toContain("moisture anomalous on bed-1");
    await card.getByRole("button", { name: "Acknowledge" }).click();
    await expect
      .poll(
        async () =>
          ((await mustCall(edge.url, adminToken, "GET", "/api/monitoring/alerts?device=bed-1")).alerts as { status: string }[])[0]?.status,
        {
          timeout: 15_000,
        },
      )
      .toBe("acknowledged");
  });
});
