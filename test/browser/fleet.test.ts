/**
 * The fleet list tells the truth (issue 19) and unitless readings chart (issue 17, item 1), in
 * Chromium, the CLI and the API against one local edge:
 * - a device posting every 5 s lists as seen under a minute ago in `GET /v1/devices`,
 *   `edgemesh devices list` and the dashboard's list, although the registry is written at most
 *   once per 50 s (a post 5 s after the first leaves the list's copy where it was, while
 *   `GET /v1/devices/:id` answers the twin's exact time);
 * - a converted reading (65 °F → 18.333… °C) shows as 18.3 °C in the dashboard, `devices show`
 *   and `tail`, while the API keeps every digit;
 * - a unitless metric (the meter's power_kw) answers `unit: null` from the series API, as the
 *   twin has it, and its chart on #/devices/meter1 draws the history.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { rmSync } from "node:fs";
import { join } from "node:path";
import type { Browser, BrowserContext, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect } from "vitest";
import { type LocalEdge, PROJECT_ROOT } from "../../scripts/lib/local-edge.ts";
import { DESKTOP, mustCall, newPage, PHONE, randomSecret, screenshot, startEdgeAndChromium, steps } from "./harness.ts";

const CLI = join(PROJECT_ROOT, "tools/cli/main.ts");
const FAHRENHEIT = 65; // 18.333… °C
const adminToken = randomSecret();

let edge: LocalEdge;
let persistDir: string;
let browser: Browser;
let context: BrowserContext;
let page: Page;
let logs: string[] = [];
const tokens = new Map<string, string>();
let firstPostAt = 0;
let poster: ReturnType<typeof setInterval> | undefined;

async function post(device: string, payload: Record<string, unknown>): Promise<void> {
  await mustCall(edge.url, tokens.get(device) ?? "", "POST", "/v1/telemetry", { payload }, [202]);
}

const porchPost = () => post("porch-thermo", { temperature: { value: FAHRENHEIT, unit: "°F" } });

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function cli(args: string[]): { child: ChildProcess; done: Promise<Run>; stderr: () => string } {
  const child = spawn(process.execPath, [CLI, ...args], {
    cwd: PROJECT_ROOT,
    env: { ...process.env, HOME: persistDir, XDG_CONFIG_HOME: undefined, EDGEMESH_URL: edge.url, EDGEMESH_TOKEN: adminToken },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout?.on("data", (c: Buffer) => (stdout += c.toString()));
  child.stderr?.on("data", (c: Buffer) => (stderr += c.toString()));
  const done = new Promise<Run>((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
  return { child, done, stderr: () => stderr };
}

async function cliOk(args: string[]): Promise<string> {
  const run = await cli(args).done;
  if (run.code !== 0) throw new Error(`edgemesh ${args.join(" ")} exited ${run.code}: ${run.stderr}`);
  return run.stdout;
}

interface DeviceAnswer {
  id: string;
  last_seen: string | null;
}

const listed = async (id: string) =>
  ((await mustCall(edge.url, adminToken, "GET", "/v1/devices?limit=1000")) as { devices: DeviceAnswer[] }).devices.find((d) => d.id === id);

const { step, failed } = steps(60_000);

describe("the fleet list and unitless charts in chromium, the CLI and the API", () => {
  beforeAll(async () => {
    try {
      ({ edge, browser, persistDir } = await startEdgeAndChromium("fleet", { adminToken }));
      for (const d of [
        { id: "porch-thermo", name: "Porch thermometer", type: "temperature", room: "porch", class: "mains" },
        { id: "meter1", name: "Energy meter", type: "energy", room: "utility", class: "mains" },
      ]) {
        const body = await mustCall(edge.url, adminToken, "POST", "/v1/devices", d, [201]);
        tokens.set(d.id, String(body.token));
      }
      firstPostAt = Date.now();
      await porchPost();
      // The device posts every 5 s for the rest of the file.
      poster = setInterval(() => void porchPost().catch((e: unknown) => logs.push(`post failed: ${e}`)), 5000);
      for (const kw of [1.25, 2.5, 3.75]) await post("meter1", { power_kw: kw, total_energy_kwh: 100 + kw });
      ({ context, page, logs } = await newPage(browser, DESKTOP));
    } catch (error) {
      failed(error);
    }
  }, 180_000);

  afterAll(async () => {
    clearInterval(poster);
    if (logs.length) console.log(`browser console (last 30 lines):\n${logs.slice(-30).join("\n")}`);
    await context?.close().catch(() => {});
    await browser?.close().catch(() => {});
    await edge?.stop();
    if (persistDir) rmSync(persistDir, { recursive: true, force: true });
  });

  step("writes the registry's last_seen at most once per 50 s, while the device's own answer is exact", async () => {
    const first = (await listed("porch-thermo"))?.last_seen;
    expect(first).toBeTruthy();
    // Two more posts (5 s apart) change nothing in the list's copy: no write per message.
    await new Promise((r) => setTimeout(r, 10_500));
    expect((await listed("porch-thermo"))?.last_seen).toBe(first);
    const one = (await mustCall(edge.url, adminToken, "GET", "/v1/devices/porch-thermo")) as { device: DeviceAnswer };
    expect(Date.parse(one.device.last_seen ?? "")).toBeGreaterThanOrEqual(Date.parse(first ?? "") + 9000);
    expect(Date.now() - Date.parse(one.device.last_seen ?? "")).toBeLessThan(6000);
  });

  step("answers unit null for a unitless metric from the series API, as the twin does, and charts its history", async () => {
    const query = new URLSearchParams({
      device: "meter1",
      metric: "power_kw",
      bucket: "raw",
      start: new Date(firstPostAt - 60_000).toISOString(),
    });
    await expect
      .poll(
        async () => {
          const answer = (await mustCall(edge.url, adminToken, "GET", `/v1/series?${query}`)) as {
            series: { unit: unknown; points: unknown[] }[];
          };
          return { unit: answer.series[0]?.unit, points: answer.series[0]?.points.length };
        },
        { timeout: 30_000, interval: 500 },
      )
      .toEqual({ unit: null, points: 3 });
    const twin = (await mustCall(edge.url, adminToken, "GET", "/v1/devices/meter1/twin")) as {
      reported: { readings: Record<string, { unit?: string | null }> };
    };
    expect(twin.reported.readings.power_kw?.unit ?? null).toBeNull();

    await page.goto(edge.url);
    await page.locator("#login-token").fill(adminToken);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.locator("#device-grid").waitFor({ timeout: 20_000 });
    await page.goto(`${edge.url}/#/devices/meter1`);
    const note = page.locator('[data-chart="power_kw"] .muted.small');
    await expect.poll(() => note.textContent(), { timeout: 15_000 }).toContain("3 readings in the last hour");
    expect(await page.locator('[data-chart="power_kw"] .big-value').textContent()).toBe("3.75");
    await screenshot(page, "fleet-meter-desktop");
  });

  step(
    "lists the device posting every 5 s as seen under a minute ago in the API, the CLI and the dashboard",
    async () => {
      // Past the registry's 50 s interval since the first post: the old registry copy (written on the
      // offline → online transition only) would now be over a minute old.
      const wait = firstPostAt + 62_000 - Date.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      const api = await listed("porch-thermo");
      const age = Date.now() - Date.parse(api?.last_seen ?? "");
      expect(age).toBeLessThan(60_000);
      expect(Date.parse(api?.last_seen ?? "")).toBeGreaterThan(firstPostAt + 45_000);

      const json = JSON.parse(await cliOk(["devices", "list", "--room", "porch", "--json"])) as { devices: DeviceAnswer[] };
      expect(Date.now() - Date.parse(json.devices[0]?.last_seen ?? "")).toBeLessThan(60_000);
      const table = await cliOk(["devices", "list", "--room", "porch"]);
      const ago = Number(/porch-thermo.*\((\d+) s ago\)/.exec(table)?.[1]);
      expect(ago).toBeLessThan(60);

      // The dashboard's list, freshly loaded: the card says when the device was last heard.
      await page.goto(`${edge.url}/#/devices?room=porch`);
      const card = page.locator('article.device-card[data-device="porch-thermo"]');
      await card.waitFor({ timeout: 15_000 });
      const seen = await card.locator(".ago").getAttribute("data-ago");
      expect(Date.now() - Date.parse(seen ?? "")).toBeLessThan(60_000);
      expect(await card.locator(".footnote").textContent()).toMatch(/Last seen (just now|\d+ s ago)/);
    },
    90_000,
  );

  step(
    "shows the converted reading at its unit's precision in the dashboard, devices show and tail; the API keeps every digit",
    async () => {
      const twin = (await mustCall(edge.url, adminToken, "GET", "/v1/devices/porch-thermo/twin")) as {
        reported: { readings: Record<string, { value: number; unit: string }> };
      };
      expect(twin.reported.readings.temperature?.value).toBeCloseTo(18.3333333333, 8);

      const card = page.locator('article.device-card[data-device="porch-thermo"]');
      expect(await card.locator('[data-metric="temperature"]').textContent()).toBe("18.3 °C");
      await screenshot(page, "fleet-devices-desktop");
      await page.goto(`${edge.url}/#/devices/porch-thermo`);
      await expect.poll(() => page.locator('[data-chart="temperature"] .big-value').textContent(), { timeout: 10_000 }).toBe("18.3 °C");
      await expect.poll(() => page.locator('tr[data-reading="temperature"] td').first().textContent()).toBe("18.3 °C");

      const show = await cliOk(["devices", "show", "porch-thermo"]);
      expect(show).toMatch(/temperature\s+18\.3\s+°C/);
      expect(show).not.toContain("18.33");

      const tail = cli(["tail", "--room", "porch", "--stream", "twin", "--count", "1", "--timeout", "30"]);
      const run = await tail.done;
      expect(run.code).toBe(0);
      expect(run.stdout).toMatch(/porch-thermo\s+sensors\.temperature\.porch\s+temperature=18\.3°C\n$/);

      const phone = await newPage(browser, PHONE);
      try {
        await phone.page.goto(edge.url);
        await phone.page.locator("#login-token").fill(adminToken);
        await phone.page.getByRole("button", { name: "Sign in" }).click();
        await phone.page.locator("#device-grid").waitFor({ timeout: 20_000 });
        await phone.page.goto(`${edge.url}/#/devices/meter1`);
        await expect
          .poll(() => phone.page.locator('[data-chart="power_kw"] .muted.small').textContent(), { timeout: 15_000 })
          .toContain("readings in the last hour");
        await screenshot(phone.page, "fleet-meter-phone");
      } finally {
        await phone.context.close();
      }
    },
  );
});
