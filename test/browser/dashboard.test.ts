/**
 * The dashboard in a real browser (Debian's chromium through playwright-core) against the real
 * local edge (wrangler dev: the Worker serving web/dist as static assets, LiveHub, twins, D1,
 * queues). The scenarios of the issue, in order on one edge: log in; a device's value changes on
 * screen within one second of its post; filters; an operator sends a command and watches its
 * status move while a device answers; dead letters and alerts arrive live, an alert is
 * acknowledged; a phone-sized screen; 503 →
 * friendly error and retry; the edge restarts and the dashboard reconnects; a rotated JWT secret
 * (every token revoked) → the login screen. Screenshots go to test-results/screenshots/.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Browser, BrowserContext, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect } from "vitest";
import { buildWeb } from "../../scripts/build-web.ts";
import { freePort, type LocalEdge, startLocalEdge } from "../../scripts/lib/local-edge.ts";
import {
  DESKTOP,
  launchChromium,
  mustCall,
  newPage,
  PHONE,
  randomSecret,
  requireChromium,
  screenshot,
  steps,
  uniqueValue,
} from "./harness.ts";

const DEVICES = [
  { id: "kitchen-thermo", name: "Kitchen thermometer", type: "temperature", room: "kitchen", class: "mains" },
  { id: "office-meter", name: "Office energy meter", type: "energy", room: "office", class: "mains" },
  { id: "hall-motion", name: "Hall motion sensor", type: "motion", class: "mains" },
  // No binding takes sensors.pressure.*: its messages become dead letters (unroutable).
  {
    id: "garage-barometer",
    name: "Garage barometer",
    type: "pressure",
    room: "garage",
    class: "battery",
    publish: ["sensors:#", "metrics:#"],
  },
] as const;

let edge: LocalEdge;
let port: number;
let persistDir: string;
let jwtSecret: string;
const adminToken = randomSecret();
let browser: Browser;
let context: BrowserContext;
let page: Page;
let logs: string[];
let operatorLoginToken: string;
const tokens = new Map<string, string>();
const latencies: number[] = [];

async function start(): Promise<LocalEdge> {
  return startLocalEdge({ port, persistDir, adminToken, jwtSecret });
}

async function post(device: string, payload: Record<string, unknown>): Promise<void> {
  const token = tokens.get(device);
  if (!token) throw new Error(`no token for ${device}`);
  await mustCall(edge.url, token, "POST", "/v1/telemetry", { payload }, [202]);
}

const card = (id: string) => page.locator(`article.device-card[data-device="${id}"]`);

/** Posts a unique value and measures, from just before the post, until the page shows it. */
async function postAndWatch(device: string, metric: string, selector: string, unit?: string): Promise<number> {
  const value = uniqueValue();
  const began = performance.now();
  await post(device, { [metric]: unit ? { value, unit } : value });
  await page.waitForFunction(
    ([sel, expected]) => document.querySelector(sel as string)?.getAttribute("data-value") === expected,
    [selector, String(value)],
    { timeout: 10_000, polling: "raf" },
  );
  return performance.now() - began;
}

async function waitLive(timeout = 30_000): Promise<void> {
  await page.waitForFunction(() => document.documentElement.dataset.connection === "live", undefined, { timeout });
}

async function signIn(target: Page, token: string): Promise<void> {
  await target.locator("#login-token").fill(token);
  await target.getByRole("button", { name: "Sign in" }).click();
  await target.locator("#device-grid").waitFor({ timeout: 20_000 });
}

const { step, failed } = steps();

describe("dashboard in chromium against the local edge", () => {
  beforeAll(async () => {
    try {
      await setUp();
    } catch (error) {
      failed(error);
    }
  });

  async function setUp(): Promise<void> {
    requireChromium();
    await buildWeb();
    port = await freePort();
    persistDir = mkdtempSync(join(tmpdir(), "edgemesh-dashboard-"));
    jwtSecret = randomSecret();
    [edge, browser] = await Promise.all([start(), launchChromium()]);
    for (const d of DEVICES) {
      const body = await mustCall(edge.url, adminToken, "POST", "/v1/devices", d, [201]);
      tokens.set(d.id, String(body.token));
    }
    const issued = await mustCall(
      edge.url,
      adminToken,
      "POST",
      "/v1/auth/token",
      { grant_type: "issue", sub: "olivia", role: "operator" },
      [200, 201],
    );
    operatorLoginToken = String(issued.refresh_token);
    await post("kitchen-thermo", { temperature: { value: 21.5, unit: "°C" }, humidity: 41 });
    await post("office-meter", { power_kw: 1.2, total_energy_kwh: 120.5 });
    await post("hall-motion", { motion: false });
    ({ context, page, logs } = await newPage(browser, DESKTOP));
  }

  afterAll(async () => {
    if (logs?.length) console.log(`browser console (last 30 lines):\n${logs.slice(-30).join("\n")}`);
    if (latencies.length) console.log(`post → on screen, ms: ${latencies.map((l) => l.toFixed(0)).join(", ")}`);
    await context?.close().catch(() => {});
    await browser?.close().catch(() => {});
    await edge?.stop();
    if (persistDir) rmSync(persistDir, { recursive: true, force: true });
  });

  step("shows the login screen, refuses a wrong token, and signs an operator in with a login token", async () => {
    await page.goto(edge.url);
    await page.locator("#login-token").waitFor();
    expect(await page.title()).toContain("Sign in");
    await page.locator("#login-token").fill("not-the-token");
    await page.getByRole("button", { name: "Sign in" }).click();
    await expect.poll(() => page.locator("#login-message").textContent()).toContain("not accepted");
    await screenshot(page, "01-login-desktop");

    await signIn(page, operatorLoginToken);
    await waitLive();
    await expect.poll(() => card("kitchen-thermo").count()).toBe(1);
    expect(await page.locator(".who").textContent()).toContain("olivia · operator");
    // The refresh token is kept for reloads; the access token never touches storage.
    const stored = await page.evaluate(() => ({ ...localStorage }));
    expect(Object.values(stored)).toEqual([operatorLoginToken]);
    await page.reload();
    await waitLive();
    await expect.poll(() => card("office-meter").locator('[data-metric="power_kw"]').textContent()).toContain("1.2");
    await expect.poll(() => card("kitchen-thermo").locator(".badge").textContent()).toBe("online");
  });

  step("shows a device's new value within one second of the device's post", async () => {
    for (let i = 0; i < 5; i++) {
      latencies.push(
        await postAndWatch("kitchen-thermo", "temperature", 'article[data-device="kitchen-thermo"] [data-metric="temperature"]', "°C"),
      );
    }
    // A new metric appears on the card, too.
    latencies.push(await postAndWatch("office-meter", "voltage", 'article[data-device="office-meter"] [data-metric="voltage"]'));
    expect(Math.max(...latencies)).toBeLessThan(1000);
    await screenshot(page, "02-overview-desktop");
  });

  step("filters by device, room and metric, and keeps the filters in the address", async () => {
    const visible = async () =>
      page.$$eval("article.device-card", (cards) =>
        cards.filter((c) => !(c as HTMLElement).hidden).map((c) => c.getAttribute("data-device")),
      );
    await page.locator("#filter-device").fill("office");
    await expect.poll(visible).toEqual(["office-meter"]);
    expect(page.url()).toContain("q=office");
    await page.locator("#filter-device").fill("");
    await page.locator("#filter-room").selectOption("kitchen");
    await expect.poll(visible).toEqual(["kitchen-thermo"]);
    await page.locator("#filter-room").selectOption("unassigned");
    await expect.poll(visible).toEqual(["hall-motion"]);
    await page.locator("#filter-room").selectOption("");
    await page.locator("#filter-metric").selectOption("power_kw");
    await expect.poll(visible).toEqual(["office-meter"]);
    // With a metric chosen, cards show that metric only.
    expect(await card("office-meter").locator('[data-metric="total_energy_kwh"]').isHidden()).toBe(true);
    await screenshot(page, "03-filter-metric");
    await page.reload();
    await expect.poll(visible).toEqual(["office-meter"]);
    expect(await page.locator("#filter-metric").inputValue()).toBe("power_kw");
    await page.locator("#filter-metric").selectOption("");
    await expect.poll(async () => (await visible()).length).toBe(DEVICES.length);
  });

  step("lets an operator send a command and shows its status as a device takes and answers it", async () => {
    await page.locator('article[data-device="kitchen-thermo"] h3 a').click();
    await page.locator("#command-form, form.command-form").waitFor();
    await expect.poll(() => page.locator('[data-chart="temperature"] canvas').count()).toBeGreaterThan(0);
    await page.locator("#command-name").fill("set_mode");
    await page.locator("#command-params").fill('{"mode": "eco"}');
    await page.getByRole("button", { name: "Send command" }).click();
    const item = page.locator("#commands li[data-command]").first();
    await expect.poll(() => item.locator(".badge").textContent()).toBe("queued");
    const commandId = await item.getAttribute("data-command");

    // The device polls, takes it (delivered), and answers (succeeded).
    const token = tokens.get("kitchen-thermo") ?? "";
    const taken = (await mustCall(edge.url, token, "GET", "/v1/device/commands?wait_s=0")) as { commands: { id: string }[] };
    expect(taken.commands.map((c) => c.id)).toContain(commandId);
    await expect.poll(() => item.locator(".badge").textContent(), { timeout: 5000 }).toBe("delivered");
    await mustCall(edge.url, token, "POST", `/v1/device/commands/${commandId}/result`, { status: "succeeded", result: { mode: "eco" } });
    await expect.poll(() => item.locator(".badge").textContent(), { timeout: 5000 }).toBe("succeeded");
    await expect.poll(() => item.textContent()).toContain('"mode":"eco"');

    // The chart and the big value follow live posts on the device page too.
    latencies.push(await postAndWatch("kitchen-thermo", "temperature", '[data-chart="temperature"] .big-value', "°C"));
    await screenshot(page, "04-device-desktop");
  });

  step("shows a dead letter as it arrives", async () => {
    await page.goto(`${edge.url}/#/dead-letters`);
    await page.locator("#dead-letter-list").waitFor();
    await expect.poll(() => page.locator("#dead-letter-list").textContent()).toMatch(/Nothing here|dead letter/i);
    // Every sensor type is routed now (sensors.other): a metric on a key no binding takes is dead-lettered.
    const token = tokens.get("garage-barometer") ?? "";
    await mustCall(
      edge.url,
      token,
      "POST",
      "/v1/exchanges/metrics/publish",
      { routing_key: "metrics.garage.pressure", payload: { pressure_hpa: 1013.2 } },
      [202],
    );
    await expect.poll(() => page.locator("article.dead-letter").count(), { timeout: 20_000 }).toBeGreaterThan(0);
    expect(await page.locator("article.dead-letter").first().textContent()).toContain("garage-barometer");
    // Operators see dead letters; replaying them is for admins.
    expect(await page.getByRole("button", { name: "Replay" }).count()).toBe(0);
    await screenshot(page, "05-dead-letters");
  });

  step("shows an alert as it fires, and an operator acknowledges it", async () => {
    await mustCall(
      edge.url,
      adminToken,
      "POST",
      "/api/monitoring/alert_rules",
      {
        name: "office overload",
        metric: "power",
        device: "office-meter",
        condition: { type: "threshold", op: "gt", value: 3000 },
        severity: "critical",
      },
      [201],
    );
    await page.goto(`${edge.url}/#/alerts`);
    await page.locator("#alert-list").waitFor();
    await expect.poll(() => page.locator("#alert-list").textContent()).toMatch(/No alerts here/);
    await post("office-meter", { power: 4200 });
    const alert = page.locator('article.alert[data-severity="critical"]');
    await expect.poll(() => alert.count(), { timeout: 20_000 }).toBe(1);
    expect(await alert.textContent()).toContain("office-meter");
    await screenshot(page, "05b-alerts");
    await alert.getByRole("button", { name: "Acknowledge" }).click();
    await expect.poll(() => page.locator("article.alert").count(), { timeout: 10_000 }).toBe(0);
    await page.locator("#alert-status").selectOption("acknowledged");
    await expect.poll(() => page.locator("article.alert").first().textContent(), { timeout: 10_000 }).toContain("acknowledged by");
  });

  step("works on a phone-sized screen", async () => {
    const phone = await newPage(browser, PHONE);
    try {
      await phone.page.goto(edge.url);
      await signIn(phone.page, operatorLoginToken);
      await phone.page.waitForFunction(() => document.documentElement.dataset.connection === "live", undefined, { timeout: 30_000 });
      const overflow = () => phone.page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
      expect(await overflow()).toBeLessThanOrEqual(0);
      await screenshot(phone.page, "06-overview-phone");
      await phone.page.goto(`${edge.url}/#/devices/kitchen-thermo`);
      await phone.page.locator("form.command-form").waitFor();
      await expect.poll(() => phone.page.locator('[data-chart="temperature"] canvas').count()).toBeGreaterThan(0);
      expect(await overflow()).toBeLessThanOrEqual(0);
      await screenshot(phone.page, "07-device-phone");
      await phone.page.goto(`${edge.url}/#/rooms/kitchen`);
      await phone.page.locator("table.aggregates").waitFor();
      expect(await phone.page.locator('tr[data-aggregate="temperature"]').count()).toBe(1);
      await screenshot(phone.page, "08-room-phone");
    } finally {
      await phone.context.close();
    }
  });

  step("answers a 503 with a friendly error and a retry button that works", async () => {
    let failing = true;
    await page.route("**/v1/devices?limit=1000", (route) =>
      failing
        ? route.fulfill({
            status: 503,
            contentType: "application/json",
            body: JSON.stringify({ error: { code: "unavailable", message: "the registry is not answering" } }),
          })
        : route.continue(),
    );
    await page.goto(`${edge.url}/#/devices`);
    await page.reload();
    const panel = page.locator(".problem[data-problem='503']");
    await panel.waitFor({ timeout: 15_000 });
    expect(await panel.textContent()).toContain("temporarily unavailable");
    await screenshot(page, "09-error-503");
    failing = false;
    await page.getByRole("button", { name: "Try again" }).click();
    await page.locator("#device-grid").waitFor();
    await expect.poll(() => card("kitchen-thermo").count()).toBe(1);
    await page.unroute("**/v1/devices?limit=1000");
  });

  step("survives a restart of the local edge: reconnects by itself and shows live values again", async () => {
    await waitLive();
    await edge.stop();
    await page.waitForFunction(() => document.documentElement.dataset.connection !== "live", undefined, { timeout: 15_000 });
    await screenshot(page, "10-edge-down");
    edge = await start();
    await waitLive(45_000);
    const ms = await postAndWatch(
      "kitchen-thermo",
      "temperature",
      'article[data-device="kitchen-thermo"] [data-metric="temperature"]',
      "°C",
    );
    latencies.push(ms);
    expect(ms).toBeLessThan(1000);
    await screenshot(page, "11-edge-back");
  });

  step("shows the login screen on 401 (every token revoked by a new JWT secret), and an admin signs in again", async () => {
    await edge.stop();
    jwtSecret = randomSecret();
    edge = await start();
    // The sockets cannot reconnect (401 before the upgrade); the API answers 401, the refresh too.
    await page.locator("#login-token").waitFor({ timeout: 45_000 });
    expect(await page.locator("#login-message").textContent()).toMatch(/sign in again/i);
    expect(await page.evaluate(() => localStorage.length)).toBe(0);
    await screenshot(page, "12-login-after-401");
    await signIn(page, adminToken);
    await waitLive();
    expect(await page.locator(".who").textContent()).toContain("admin · admin");
    await page.goto(`${edge.url}/#/dead-letters`);
    await expect.poll(() => page.getByRole("button", { name: "Replay" }).count(), { timeout: 15_000 }).toBeGreaterThan(0);
  });
});
