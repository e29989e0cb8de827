/**
 * Seed 003's dashboard flow in Chromium against the local edge: GET /api/dashboard answers the
 * saved layout, the device status and the active alerts in one answer and the home screen draws
 * them (rooms with their aggregates, devices needing attention, alerts); a person saves their
 * layout with the keyboard; the dashboard's store fails for real (the edge's local-only fault
 * switch makes its D1 reads fail), the API answers 503 after 3 attempts, the page shows the
 * friendly error, and its retry button works once the store is back; an expired token goes to
 * the login screen. Screenshots (desktop and phone) go to docs/screenshots/.
 */
import { readFileSync, rmSync } from "node:fs";
import type { Browser, BrowserContext, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect } from "vitest";
import { issueToken } from "../../functions/auth/tokens.ts";
import type { LocalEdge } from "../../scripts/lib/local-edge.ts";
import { REFRESH_KEY } from "../../web/src/session.ts";
import { call, DESKTOP, docShot, mustCall, newPage, PHONE, randomSecret, startEdgeAndChromium, steps } from "./harness.ts";

const adminToken = randomSecret();
const jwtSecret = randomSecret();

let edge: LocalEdge;
let persistDir: string;
let browser: Browser;
let context: BrowserContext;
let page: Page;
let logs: string[] = [];
const tokens = new Map<string, string>();

async function post(device: string, payload: Record<string, unknown>): Promise<void> {
  await mustCall(edge.url, tokens.get(device) ?? "", "POST", "/v1/telemetry", { payload }, [202]);
}

async function signIn(target: Page): Promise<void> {
  await target.goto(edge.url);
  await target.locator("#login-token").fill(adminToken);
  await target.getByRole("button", { name: "Sign in" }).click();
  await target.locator("#device-grid").waitFor({ timeout: 20_000 });
}

const faults = (store: "down" | "up") => mustCall(edge.url, adminToken, "PUT", "/api/dashboard/faults", { store });

const { step, failed } = steps(60_000);

describe("the home screen and seed 003's dashboard flow in chromium", () => {
  beforeAll(async () => {
    try {
      ({ edge, browser, persistDir } = await startEdgeAndChromium("home", { adminToken, jwtSecret, vars: { LOCAL_FAULTS: "on" } }));
      for (const d of [
        { id: "lounge-thermo", name: "Lounge thermometer", type: "temperature", room: "lounge", class: "mains" },
        { id: "lounge-meter", name: "Lounge plug", type: "energy", room: "lounge", class: "mains" },
        { id: "shed-sensor", name: "Shed sensor", type: "temperature", room: "shed", class: "battery" },
      ]) {
        const body = await mustCall(edge.url, adminToken, "POST", "/v1/devices", d, [201]);
        tokens.set(d.id, String(body.token));
      }
      await mustCall(
        edge.url,
        adminToken,
        "POST",
        "/api/monitoring/alert_rules",
        {
          name: "plug overload",
          metric: "power",
          device: "lounge-meter",
          condition: { type: "threshold", op: "gt", value: 3000 },
          severity: "critical",
        },
        [201],
      );
      await post("lounge-thermo", { temperature: { value: 21.25, unit: "°C" } });
      await post("lounge-meter", { power: 4200 });
      // A message the edge rejects: lounge-thermo is "rejecting messages".
      const rejected = await call(edge.url, tokens.get("lounge-thermo") ?? "", "POST", "/v1/telemetry", { payload: { "Not A Name": 1 } });
      if (rejected.status !== 400) throw new Error(`expected a rejection, got ${rejected.status}`);
      // shed-sensor never reports: offline, so it needs attention.
      ({ context, page, logs } = await newPage(browser, DESKTOP));
    } catch (error) {
      failed(error);
    }
  }, 180_000);

  afterAll(async () => {
    if (logs.length) console.log(`browser console (last 30 lines):\n${logs.slice(-30).join("\n")}`);
    await faults("up").catch(() => {});
    await context?.close().catch(() => {});
    await browser?.close().catch(() => {});
    await edge?.stop();
    if (persistDir) rmSync(persistDir, { recursive: true, force: true });
  });

  // On a loaded machine the alert takes its time through the pipeline: more than the default step.
  step(
    "answers config, device status and active alerts in one call, and the home screen shows them",
    async () => {
      const answer = await (async () => {
        for (let i = 0; i < 40; i++) {
          const a = (await mustCall(edge.url, adminToken, "GET", "/api/dashboard")) as {
            alerts: { count: number; active: { device: string }[] };
          } & Record<string, unknown>;
          if (a.alerts.count > 0) return a;
          await new Promise((r) => setTimeout(r, 500));
        }
        throw new Error("the alert never became active");
      })();
      expect(answer).toMatchObject({
        user: { sub: "admin", role: "admin" },
        config: { layout: { sections: ["alerts", "attention", "rooms"], pinned: [] }, saved: false },
        devices: { total: 3, online: 2, offline: 1, rejecting: 1 },
        rooms: [
          { id: "lounge", devices: 2, online: 2 },
          { id: "shed", devices: 1, online: 0 },
        ],
        alerts: { count: 1, active: [{ device: "lounge-meter" }] },
      });
      // Attention first: offline, then rejecting messages.
      expect((answer.devices as { items: { id: string; rejecting: boolean }[] }).items.slice(0, 2)).toMatchObject([
        { id: "shed-sensor", rejecting: false },
        { id: "lounge-thermo", rejecting: true },
      ]);

      await signIn(page);
      await page.getByRole("link", { name: "Home" }).click();
      const home = page.locator("#home");
      await home.locator('[data-tile="devices"] .tile-value').waitFor({ timeout: 15_000 });
      expect(await home.locator('[data-tile="offline"] .tile-value').textContent()).toBe("1");
      expect(await home.locator('[data-tile="alerts"] .tile-value').textContent()).toBe("1");
      expect(await home.locator("[data-alert]").textContent()).toContain("lounge-meter");
      expect(await home.locator('[data-attention="shed-sensor"]').textContent()).toContain("offline");
      expect(await home.locator('[data-attention="lounge-thermo"]').textContent()).toContain("rejecting messages");
      await expect
        .poll(() => home.locator('[data-room="lounge"] [data-metric="temperature"]').textContent(), { timeout: 10_000 })
        .toContain("21.3 °C");
      expect(await home.locator('[data-room="lounge"]').textContent()).toContain("2 of 2 devices online");
      expect(await home.locator("section[data-section]").evaluateAll((s) => s.map((e) => e.getAttribute("data-section")))).toEqual([
        "alerts",
        "attention",
        "rooms",
      ]);
      await docShot(page, "home-desktop");

      const phone = await newPage(browser, PHONE);
      try {
        await signIn(phone.page);
        await phone.page.goto(`${edge.url}/#/home`);
        await phone.page.locator('#home [data-tile="devices"]').waitFor({ timeout: 15_000 });
        const overflow = await phone.page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
        expect(overflow).toBeLessThanOrEqual(0);
        await docShot(phone.page, "home-phone");
      } finally {
        await phone.context.close();
      }
    },
    120_000,
  );

  step("saves a person's layout with the keyboard, and the answer carries it", async () => {
    const home = page.locator("#home");
    await home.locator("details.layout summary").focus();
    await page.keyboard.press("Enter");
    await page.locator("#layout-rooms").focus();
    await page.keyboard.press("Space");
    expect(await page.locator("#layout-rooms").isChecked()).toBe(false);
    await page.locator("#layout-pinned").selectOption(["shed-sensor"]);
    await page.getByRole("button", { name: "Save layout" }).focus();
    await page.keyboard.press("Enter");
    await expect
      .poll(() => home.locator("section[data-section]").evaluateAll((s) => s.map((e) => e.getAttribute("data-section"))), {
        timeout: 10_000,
      })
      .toEqual(["pinned", "alerts", "attention"]);
    expect(await home.locator('[data-pinned="shed-sensor"]').textContent()).toContain("Shed sensor");
    const answer = (await mustCall(edge.url, adminToken, "GET", "/api/dashboard")) as { config: { layout: unknown; saved: boolean } };
    expect(answer.config).toMatchObject({ layout: { sections: ["alerts", "attention"], pinned: ["shed-sensor"] }, saved: true });
    const refused = await call(edge.url, adminToken, "PUT", "/api/dashboard/layout", { sections: ["alerts", "alerts"], pinned: [] });
    expect(refused.status).toBe(400);
    expect(JSON.stringify(refused.body)).toContain("sections");
  });

  step("answers 503 after 3 attempts when the store fails, shows a friendly error, and its retry button works", async () => {
    await faults("down");
    const began = Date.now();
    const failed = await call(edge.url, adminToken, "GET", "/api/dashboard");
    expect(failed.status).toBe(503);
    expect(failed.body).toMatchObject({ error: { code: "unavailable" } });
    expect(JSON.stringify(failed.body)).toContain("after 3 attempts");
    expect(Date.now() - began).toBeLessThan(10_000);

    await page.getByRole("link", { name: "Devices" }).click();
    await page.getByRole("link", { name: "Home" }).click();
    const panel = page.locator("#home .problem[data-problem='503']");
    await panel.waitFor({ timeout: 15_000 });
    expect(await panel.textContent()).toContain("temporarily unavailable");
    await docShot(page, "home-error-desktop");

    // Still down: retrying shows the error again; once the store is back, the home screen.
    await panel.getByRole("button", { name: "Try again" }).click();
    await page.locator("#home .problem[data-problem='503']").waitFor({ timeout: 15_000 });
    await faults("up");
    await page.locator("#home .problem").getByRole("button", { name: "Try again" }).click();
    await page.locator('#home [data-tile="devices"]').waitFor({ timeout: 15_000 });
    expect(await page.locator("#home .problem").count()).toBe(0);
  });

  step("shows the energy screen with the energy API's numbers: now, the day's hours and totals", async () => {
    const now = Date.now();
    const at = (minutesAgo: number) => new Date(now - minutesAgo * 60_000).toISOString();
    const series: [number, number, number][] = [
      [150, 1.5, 200],
      [95, 2.25, 201.5],
      [40, 0.75, 203.25],
      [1, 1.125, 204],
    ];
    for (const [ago, kw, kwh] of series) {
      await mustCall(
        edge.url,
        tokens.get("lounge-meter") ?? "",
        "POST",
        "/v1/telemetry",
        { timestamp: at(ago), payload: { power_kw: kw, total_energy_kwh: kwh, voltage: 231.4, current: 4.875 } },
        [202],
      );
    }
    await expect
      .poll(
        async () =>
          ((await mustCall(edge.url, adminToken, "GET", "/api/v1/energy/latest")) as unknown as { power_kw: number }[])[0]?.power_kw,
        {
          timeout: 30_000,
        },
      )
      .toBe(1.125);

    await page.getByRole("link", { name: "Energy" }).click();
    const meter = page.locator('#energy-now [data-meter="lounge-meter"]');
    await meter.waitFor({ timeout: 15_000 });
    const latest = ((await mustCall(edge.url, adminToken, "GET", "/api/v1/energy/latest")) as unknown as Record<string, number>[])[0] ?? {};
    for (const field of ["power_kw", "total_energy_kwh", "voltage", "current"])
      expect(await meter.locator(`[data-field="${field}"]`).getAttribute("data-value")).toBe(String(latest[field]));
    expect(await meter.locator('[data-field="total_energy_kwh"]').textContent()).toBe("204.00 kWh");
    expect(await meter.locator('[data-field="current"]').textContent()).toBe("4.88 A");

    const hourly = page.locator("#energy-hourly");
    await hourly.locator('[data-meter="lounge-meter"] tbody tr').first().waitFor({ timeout: 15_000 });
    const query = await hourly.getAttribute("data-query");
    const rows = (await mustCall(edge.url, adminToken, "GET", `/api/v1/energy/hourly?${query}&device=lounge-meter`)) as unknown as {
      hour: string;
      energy_kwh: number | null;
      avg_power_kw: number | null;
    }[];
    expect(rows.length).toBeGreaterThan(0);
    const section = hourly.locator('[data-meter="lounge-meter"]');
    expect(await section.locator("tbody tr").count()).toBe(rows.length);
    for (const r of rows) {
      const tr = section.locator(`tr[data-hour="${r.hour}"]`);
      expect(await tr.locator('[data-field="energy_kwh"]').getAttribute("data-value")).toBe(
        r.energy_kwh === null ? "" : String(r.energy_kwh),
      );
      expect(await tr.locator('[data-field="avg_power_kw"]').getAttribute("data-value")).toBe(
        r.avg_power_kw === null ? "" : String(r.avg_power_kw),
      );
      if (r.energy_kwh !== null) expect(await tr.locator('[data-field="energy_kwh"]').textContent()).toBe(`${r.energy_kwh.toFixed(2)} kWh`);
    }
    const total = rows.reduce((sum, r) => sum + (r.energy_kwh ?? 0), 0);
    expect(Number(await section.locator('[data-field="day_energy_kwh"]').getAttribute("data-value"))).toBeCloseTo(total, 9);
    await docShot(page, "energy-desktop");
    const phone = await newPage(browser, PHONE);
    try {
      await signIn(phone.page);
      await phone.page.goto(`${edge.url}/#/energy`);
      await phone.page.locator('#energy-hourly [data-meter="lounge-meter"]').waitFor({ timeout: 15_000 });
      expect(
        await phone.page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth),
      ).toBeLessThanOrEqual(0);
      await docShot(phone.page, "energy-phone");
    } finally {
      await phone.context.close();
    }
  });

  step("draws a chart over 1 h, 24 h, 7 d and 30 d (long ranges by hourly buckets) and downloads what it shows as CSV", async () => {
    await page.goto(`${edge.url}/#/devices/lounge-meter`);
    const note = page.locator('[data-chart="power_kw"] .muted.small');
    await expect.poll(() => note.getAttribute("data-points"), { timeout: 15_000 }).toBe("2"); // the last hour's two readings
    const asked = page.waitForRequest((r) => r.url().includes("/v1/series?") && r.url().includes("metric=power_kw"));
    await page.locator("#chart-range").selectOption("7d");
    const url = new URL((await asked).url());
    expect([url.searchParams.get("bucket"), url.searchParams.get("agg")]).toEqual(["1h", "avg"]);
    await expect.poll(() => note.textContent(), { timeout: 15_000 }).toMatch(/points? averaged over the last 7 d/);
    const points = Number(await note.getAttribute("data-points"));
    expect(points).toBeGreaterThanOrEqual(2);
    const [file] = await Promise.all([
      page.waitForEvent("download"),
      page.getByRole("button", { name: "Download power_kw as CSV" }).click(),
    ]);
    expect(file.suggestedFilename()).toBe("lounge-meter-power_kw-7d.csv");
    const csv = readFileSync((await file.path()) ?? "", "utf8")
      .trim()
      .split("\r\n");
    expect(csv[0]).toBe("time,device,metric,value,unit");
    expect(csv.length - 1).toBe(points);
    expect(csv[1]).toMatch(/^\d{4}-\d\d-\d\dT\d\d:00:00\.000Z,lounge-meter,power_kw,[\d.]+,$/);
    for (const [range, says] of [
      ["24h", "averaged over the last 24 h"],
      ["30d", "averaged over the last 30 d"],
      ["1h", "2 readings in the last hour"],
    ] as const) {
      await page.locator("#chart-range").selectOption(range);
      await expect.poll(() => note.textContent(), { timeout: 15_000 }).toContain(says);
    }
    await docShot(page, "device-range-desktop");
  });

  step("sends an expired token to the login screen", async () => {
    const { token } = await issueToken(jwtSecret, { sub: "erin", role: "viewer", typ: "refresh" }, -60);
    const expired = await newPage(browser, DESKTOP);
    try {
      await expired.page.addInitScript(([key, value]) => localStorage.setItem(key as string, value as string), [REFRESH_KEY, token]);
      await expired.page.goto(`${edge.url}/#/home`);
      await expired.page.locator("#login-token").waitFor({ timeout: 15_000 });
      expect(await expired.page.locator("#home").count()).toBe(0);
      expect(await expired.page.locator("#login-message").textContent()).not.toBe("");
      expect(await expired.page.evaluate((key) => localStorage.getItem(key), REFRESH_KEY)).toBeNull();
    } finally {
      await expired.context.close();
    }
  });
});
