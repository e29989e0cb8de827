/**
 * Running the home from the dashboard (issue 17, item 2), in Chromium against the local edge,
 * each flow end to end: an admin adds a device in the UI, copies its token, and the curl snippet
 * the page shows — run as shown — posts a reading that appears on the device's chart; edits it,
 * rotates its token (the old one stops working), deletes another after typing its id; creates a
 * room, renames it and moves a device into it; an operator creates an alert rule (with its 24 h
 * preview) and sees it fire, and an automation and sees it run; a viewer gets none of the forms.
 * Then a screenshot of every screen, desktop and phone, for docs/dashboard.md.
 */
import { execFileSync } from "node:child_process";
import { rmSync } from "node:fs";
import type { Browser, BrowserContext, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect } from "vitest";
import type { LocalEdge } from "../../scripts/lib/local-edge.ts";
import { call, DESKTOP, docShot, mustCall, newPage, PHONE, randomSecret, startEdgeAndChromium, steps } from "./harness.ts";

const adminToken = randomSecret();
let edge: LocalEdge;
let persistDir: string;
let browser: Browser;
let context: BrowserContext;
let page: Page;
let logs: string[] = [];
let deviceToken = "";
let operatorLogin = "";
let viewerLogin = "";

async function signIn(target: Page, token: string): Promise<void> {
  await target.goto(edge.url);
  await target.locator("#login-token").fill(token);
  await target.getByRole("button", { name: "Sign in" }).click();
  await target.locator("#device-grid").waitFor({ timeout: 20_000 });
}

const post = (token: string, payload: Record<string, unknown>) => call(edge.url, token, "POST", "/v1/telemetry", { payload });

const { step, failed } = steps(60_000);

describe("managing the home from the dashboard in chromium", () => {
  beforeAll(async () => {
    try {
      ({ edge, browser, persistDir } = await startEdgeAndChromium("manage", { adminToken }));
      const issue = async (sub: string, role: string) =>
        String((await mustCall(edge.url, adminToken, "POST", "/v1/auth/token", { grant_type: "issue", sub, role }, [201])).refresh_token);
      operatorLogin = await issue("olivia", "operator");
      viewerLogin = await issue("victor", "viewer");
      await mustCall(
        edge.url,
        adminToken,
        "POST",
        "/v1/devices",
        { id: "old-sensor", type: "temperature", room: "attic", class: "mains" },
        [201],
      );
      ({ context, page, logs } = await newPage(browser, DESKTOP));
      await context.grantPermissions(["clipboard-read", "clipboard-write"], { origin: edge.url });
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

  step(
    "adds a device in the UI; its token is shown once and copied; the curl snippet, run as shown, puts a reading on its chart",
    async () => {
      await signIn(page, adminToken);
      await page.getByRole("link", { name: "Add device" }).click();
      await page.getByLabel("Id", { exact: true }).fill("attic-thermo");
      await page.getByLabel("Name", { exact: true }).fill("Attic thermometer");
      await page.getByLabel("Type", { exact: true }).fill("temperature");
      await page.getByLabel("Room", { exact: true }).fill("attic");
      // A bad permission: the edge's answer names the field, nothing is created.
      await page.getByLabel("Publish permissions", { exact: true }).fill("nonsense");
      await page.getByRole("button", { name: "Add device" }).click();
      await expect.poll(() => page.locator("#add-device-message").textContent(), { timeout: 10_000 }).toMatch(/^Not added: publish/);
      expect((await call(edge.url, adminToken, "GET", "/v1/devices/attic-thermo")).status).toBe(404);
      await page.getByLabel("Publish permissions", { exact: true }).fill("");
      await page.getByRole("button", { name: "Add device" }).click();
      const panel = page.locator('[data-token-for="attic-thermo"]');
      await panel.waitFor({ timeout: 15_000 });
      deviceToken = (await panel.locator("[data-token]").textContent()) ?? "";
      expect(deviceToken).toMatch(/^attic-thermo\./);
      await panel.getByRole("button", { name: "Copy token" }).click();
      expect(await page.evaluate(() => navigator.clipboard.readText())).toBe(deviceToken);
      for (const id of ["curl", "mqttjs", "paho", "mosquitto", "agent"])
        expect(await panel.locator(`[data-snippet="${id}"]`).count()).toBe(1);
      expect(await panel.locator('[data-snippet="mqttjs"] pre').textContent()).toContain("/mqtt/attic-thermo");
      await docShot(page, "device-token-desktop");

      const curl = (await panel.locator('[data-snippet="curl"] pre').textContent()) ?? "";
      const answer = JSON.parse(execFileSync("sh", ["-c", curl], { encoding: "utf8", timeout: 15_000 })) as { accepted?: number };
      expect(answer).toMatchObject({ accepted: 1 });
      await panel.getByRole("link", { name: "Open attic-thermo" }).click();
      await expect.poll(() => page.locator('[data-chart="temperature"] .big-value').textContent(), { timeout: 15_000 }).toBe("21.5 °C");
      await expect
        .poll(() => page.locator('[data-chart="temperature"] .muted.small').getAttribute("data-points"), { timeout: 15_000 })
        .toBe("1");
    },
  );

  step("edits the device, rotates its token (the old one stops working), and deletes another after typing its id", async () => {
    await page.locator("#edit-name").fill("Loft thermometer");
    await page.getByRole("button", { name: "Save changes" }).click();
    await expect.poll(() => page.locator("#manage-message").textContent()).toBe("Saved.");
    expect(((await mustCall(edge.url, adminToken, "GET", "/v1/devices/attic-thermo")) as { device: { name: string } }).device.name).toBe(
      "Loft thermometer",
    );

    await page.getByRole("button", { name: "Rotate token…" }).click();
    await page.getByRole("button", { name: "Rotate now" }).click();
    const rotated = page.locator('[data-token-for="attic-thermo"] [data-token]');
    await rotated.waitFor({ timeout: 10_000 });
    const fresh = (await rotated.textContent()) ?? "";
    expect(fresh).not.toBe(deviceToken);
    expect((await post(deviceToken, { temperature: 20 })).status).toBe(401);
    expect((await post(fresh, { temperature: 20 })).status).toBe(202);
    deviceToken = fresh;

    await page.goto(`${edge.url}/#/devices/old-sensor`);
    const remove = page.getByRole("button", { name: "Delete device" });
    await remove.waitFor();
    expect(await remove.isDisabled()).toBe(true);
    await page.locator("#delete-confirm").fill("old-sensor");
    expect(await remove.isDisabled()).toBe(false);
    await remove.click();
    await expect.poll(() => page.evaluate(() => location.hash)).toBe("#/devices");
    expect((await call(edge.url, adminToken, "GET", "/v1/devices/old-sensor")).status).toBe(404);
  });

  step("creates a room, renames it, and moves a device into it", async () => {
    await page.getByRole("link", { name: "Rooms" }).click();
    await page.getByText("New room").click();
    await page.getByLabel("Room id", { exact: true }).fill("loft");
    await page.getByLabel("Name", { exact: true }).fill("Loft");
    await page.getByRole("button", { name: "Create room" }).click();
    await expect.poll(() => page.evaluate(() => location.hash)).toBe("#/rooms/loft");
    await page.locator("#room-rename").fill("The loft");
    await page.getByRole("button", { name: "Rename" }).click();
    await expect.poll(() => page.locator("h1").textContent()).toBe("The loft");
    await page.locator("#room-move-device").selectOption("attic-thermo");
    await page.getByRole("button", { name: "Move here" }).click();
    await page.locator('article.device-card[data-device="attic-thermo"]').waitFor({ timeout: 15_000 });
    expect(((await mustCall(edge.url, adminToken, "GET", "/v1/devices/attic-thermo")) as { device: { room: string } }).device.room).toBe(
      "loft",
    );
  });

  step("lets an operator create an alert rule, previews it on the last 24 h, and sees it fire", async () => {
    const operator = await newPage(browser, DESKTOP);
    try {
      const p = operator.page;
      await signIn(p, operatorLogin);
      await p.goto(`${edge.url}/#/alert-rules`);
      await p.locator("#rule-name").fill("loft too hot");
      // Only the fields of the chosen condition show.
      expect([await p.locator("#rule-value").isVisible(), await p.locator("#rule-seconds").isVisible()]).toEqual([true, false]);
      await p.locator("#rule-type").selectOption("absence");
      expect([await p.locator("#rule-value").isVisible(), await p.locator("#rule-seconds").isVisible()]).toEqual([false, true]);
      await p.locator("#rule-type").selectOption("threshold");
      await p.locator("#rule-metric").fill("temperature");
      await p.locator("#rule-device").selectOption("attic-thermo");
      await p.locator("#rule-op").selectOption("gt");
      await p.locator("#rule-value").fill("21");
      await p.locator("#rule-severity").selectOption("critical");
      await p.getByRole("button", { name: "Preview on the last 24 h" }).click();
      // 21.5 then 20: it would have fired once.
      await expect.poll(() => p.locator("#rule-preview").getAttribute("data-firings"), { timeout: 15_000 }).toBe("1");
      await p.locator("#rule-value").fill("30");
      await p.getByRole("button", { name: "Create rule" }).click();
      await expect.poll(() => p.locator("#rule-message").textContent()).toContain("Created");
      // Beside the edge's own system rules (migration 0030), the one just created.
      const created = p.locator("[data-rule]", { hasText: "temperature > 30" });
      await expect.poll(() => created.count(), { timeout: 10_000 }).toBe(1);
      await docShot(p, "alert-rules-desktop");

      expect((await post(deviceToken, { temperature: 35 })).status).toBe(202);
      await p.goto(`${edge.url}/#/alerts`);
      const fired = p.locator('article.alert[data-severity="critical"]');
      await expect.poll(() => fired.count(), { timeout: 20_000 }).toBe(1);
      expect(await fired.textContent()).toContain("attic-thermo");
    } finally {
      await operator.context.close();
    }
  });

  step("lets an operator create an automation and shows its run", async () => {
    const operator = await newPage(browser, DESKTOP);
    try {
      const p = operator.page;
      await signIn(p, operatorLogin);
      await p.getByRole("link", { name: "Automations" }).click();
      await p.locator("#auto-name").fill("cool the loft");
      await p.locator("#auto-trigger").selectOption("schedule");
      expect([await p.locator("#auto-every").isVisible(), await p.locator("#auto-metric").isVisible()]).toEqual([true, false]);
      await p.locator("#auto-trigger").selectOption("threshold");
      expect([await p.locator("#auto-metric").isVisible(), await p.locator("#auto-routing-key").isVisible()]).toEqual([true, false]);
      await p.locator("#auto-metric").fill("temperature");
      await p.locator("#auto-op").selectOption("gt");
      await p.locator("#auto-value").fill("40");
      await p.locator("#auto-trigger-device").selectOption("attic-thermo");
      await p.locator("#auto-action").selectOption("command");
      await p.locator("#auto-action-device").selectOption("attic-thermo");
      await p.locator("#auto-command").fill("fan_on");
      await p.locator("#auto-json").fill('{"speed": 2}');
      await p.getByRole("button", { name: "Create automation" }).click();
      await expect.poll(() => p.locator("#auto-message").textContent()).toContain("Created");
      const card = p.locator("[data-automation]");
      await expect.poll(() => card.count(), { timeout: 10_000 }).toBe(1);
      expect(await card.textContent()).toContain("When temperature gt 40 on attic-thermo: command fan_on → attic-thermo");

      expect((await post(deviceToken, { temperature: 45 })).status).toBe(202);
      await expect
        .poll(
          async () => {
            await p.evaluate(() => {
              location.hash = "#/devices";
            });
            await p.evaluate(() => {
              location.hash = "#/automations";
            });
            await card.waitFor();
            return card.locator('[data-outcome="succeeded"]').count();
          },
          { timeout: 30_000, interval: 1000 },
        )
        .toBeGreaterThan(0);
      const commands = (await mustCall(edge.url, adminToken, "GET", "/v1/devices/attic-thermo/commands")) as {
        commands: { command: string; parameters: unknown }[];
      };
      expect(commands.commands.find((c) => c.command === "fan_on")?.parameters).toEqual({ speed: 2 });
      await docShot(p, "automations-desktop");
    } finally {
      await operator.context.close();
    }
  });

  step("shows a viewer none of the forms", async () => {
    const viewer = await newPage(browser, DESKTOP);
    try {
      const p = viewer.page;
      await signIn(p, viewerLogin);
      expect(await p.getByRole("link", { name: "Add device" }).count()).toBe(0);
      await p.goto(`${edge.url}/#/add-device`);
      await p.locator("[data-denied]").waitFor();
      await p.goto(`${edge.url}/#/devices/attic-thermo`);
      await p.locator("#manage-title").waitFor({ timeout: 15_000 });
      expect(await p.locator("#edit-name").count()).toBe(0);
      await p.goto(`${edge.url}/#/alert-rules`);
      await p.locator("[data-rule]").first().waitFor({ timeout: 15_000 });
      expect(await p.locator("#rule-name").count()).toBe(0);
      await p.goto(`${edge.url}/#/automations`);
      await p.locator("[data-automation]").first().waitFor({ timeout: 15_000 });
      expect(await p.locator("#auto-name").count()).toBe(0);
      await p.goto(`${edge.url}/#/rooms/loft`);
      await p.locator("h1").waitFor();
      expect(await p.locator("#room-rename").count()).toBe(0);
    } finally {
      await viewer.context.close();
    }
  });

  step("lets an admin issue a login token with a role and revoke it; a revoked token no longer signs in", async () => {
    await page.goto(`${edge.url}/#/people`);
    await page.locator("#user-sub").fill("paula@example.org");
    await page.locator("#user-role").selectOption("viewer");
    await page.locator("#user-days").fill("7");
    await page.getByRole("button", { name: "Issue login token" }).click();
    const issued = page.locator('[data-issued-for="paula@example.org"] [data-token]');
    await issued.waitFor({ timeout: 10_000 });
    const login = (await issued.textContent()) ?? "";
    const row = page.locator("tr[data-login-token]", { hasText: "paula@example.org" });
    await expect.poll(() => row.getAttribute("data-state"), { timeout: 10_000 }).toBe("valid");
    const exchanged = await call(edge.url, "", "POST", "/v1/auth/token", { grant_type: "refresh_token", refresh_token: login });
    expect(exchanged.body).toMatchObject({ sub: "paula@example.org", role: "viewer" });
    await docShot(page, "people-desktop");

    await row.getByRole("button", { name: "Revoke paula@example.org" }).click();
    await expect.poll(() => row.getAttribute("data-state"), { timeout: 10_000 }).toBe("revoked");
    expect((await call(edge.url, "", "POST", "/v1/auth/token", { grant_type: "refresh_token", refresh_token: login })).status).toBe(401);
    const revoked = await newPage(browser, DESKTOP);
    try {
      await revoked.page.goto(edge.url);
      await revoked.page.locator("#login-token").fill(login);
      await revoked.page.getByRole("button", { name: "Sign in" }).click();
      await expect.poll(() => revoked.page.locator("#login-message").textContent(), { timeout: 10_000 }).not.toBe("");
      expect(await revoked.page.locator("#device-grid").count()).toBe(0);
    } finally {
      await revoked.context.close();
    }
    // Only admins: an operator's call is refused, and a viewer's screen says so.
    const operatorAccess = String(
      (await call(edge.url, "", "POST", "/v1/auth/token", { grant_type: "refresh_token", refresh_token: operatorLogin })).body.access_token,
    );
    expect((await call(edge.url, operatorAccess, "GET", "/v1/auth/tokens")).status).toBe(403);
  });

  step(
    "takes a screenshot of every screen, desktop and phone, with no sideways scrolling on the phone",
    async () => {
      const screens: [string, string, string][] = [
        ["home", "#/home", "#home [data-tile]"],
        ["devices", "#/devices", "#device-grid"],
        ["device", "#/devices/attic-thermo", '[data-chart="temperature"]'],
        ["rooms", "#/rooms", '[data-room="loft"]'],
        ["room", "#/rooms/loft", "table.aggregates"],
        ["energy", "#/energy", "#energy-hourly"],
        ["alerts", "#/alerts", "#alert-list"],
        ["alert-rules", "#/alert-rules", "[data-rule]"],
        ["automations", "#/automations", "[data-automation]"],
        ["dead-letters", "#/dead-letters", "#dead-letter-list"],
        ["pipeline", "#/pipeline", "main h1"],
        ["add-device", "#/add-device", "form"],
        ["people", "#/people", "#token-list table"],
      ];
      for (const [label, options] of [
        ["desktop", DESKTOP],
        ["phone", PHONE],
      ] as const) {
        const shot = await newPage(browser, options);
        try {
          await signIn(shot.page, adminToken);
          for (const [name, hash, ready] of screens) {
            await shot.page.evaluate((h) => {
              location.hash = h;
            }, hash);
            await shot.page.locator(ready).first().waitFor({ timeout: 15_000 });
            await shot.page.waitForTimeout(300);
            if (label === "phone") {
              const overflow = await shot.page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
              expect(overflow, `${name} scrolls sideways on a phone`).toBeLessThanOrEqual(0);
            }
            await docShot(shot.page, `${name}-${label}`);
          }
        } finally {
          await shot.context.close();
        }
      }
      const login = await newPage(browser, PHONE);
      await login.page.goto(edge.url);
      await login.page.locator("#login-token").waitFor();
      await docShot(login.page, "login-phone");
      await login.context.close();
    },
    120_000,
  );
});
