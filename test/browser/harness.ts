/**
 * What the dashboard's browser tests share: Debian's chromium driven by playwright-core (no
 * browser download: the machine has none to give), the local edge with the dashboard built
 * into its static assets, devices and their posts, and screenshots in test-results/screenshots.
 */
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Browser, type BrowserContext, chromium, type Page } from "playwright-core";
import { it } from "vitest";
import { buildWeb } from "../../scripts/build-web.ts";
import { freePort, type LocalEdge, PROJECT_ROOT, startLocalEdge } from "../../scripts/lib/local-edge.ts";

export const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
export const SCREENSHOTS = join(PROJECT_ROOT, "test-results", "screenshots");

/** Without the background-networking flags Chromium keeps calling Google's services, which the closed network refuses. */
export const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--disable-dev-shm-usage",
];

/** Fails loudly (never skips) when chromium is missing: a dashboard nobody looked at is not tested. */
export function requireChromium(): void {
  if (existsSync(CHROMIUM)) return;
  const where = process.env.CI === "true" ? ".ci/run should have installed it (scripts/lib/services.sh)" : "install it";
  throw new Error(
    `\n\n  ✗ The dashboard's browser tests need Debian's chromium at ${CHROMIUM}, and it is missing: ${where}:\n\n` +
      "      apt-get update && apt-get install -y chromium\n\n" +
      "    (or set CHROMIUM_PATH to another Chromium binary). scripts/test.sh installs it when it runs as root.\n",
  );
}

/**
 * A suite's own local edge (a fresh persist folder, the dashboard built into its assets) and
 * chromium, started together. The caller stops both and removes `persistDir`.
 */
export async function startEdgeAndChromium(
  name: string,
  options: { adminToken: string; jwtSecret?: string; vars?: Record<string, string> },
): Promise<{ edge: LocalEdge; browser: Browser; persistDir: string }> {
  requireChromium();
  await buildWeb();
  const persistDir = mkdtempSync(join(tmpdir(), `edgemesh-${name}-`));
  const [edge, browser] = await Promise.all([
    startLocalEdge({ port: await freePort(), persistDir, jwtSecret: randomSecret(), ...options }),
    launchChromium(),
  ]);
  return { edge, browser, persistDir };
}

export async function launchChromium(): Promise<Browser> {
  requireChromium();
  return chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, headless: true, timeout: 60_000 });
}

export const DESKTOP = { viewport: { width: 1280, height: 860 } };
export const PHONE = { viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true };

export async function newPage(browser: Browser, options = DESKTOP): Promise<{ context: BrowserContext; page: Page; logs: string[] }> {
  const context = await browser.newContext({ ...options, colorScheme: "light", locale: "en-GB", timezoneId: "UTC" });
  const page = await context.newPage();
  const logs: string[] = [];
  page.on("console", (m) => logs.push(`${m.type()}: ${m.text()}`));
  page.on("pageerror", (e) => logs.push(`pageerror: ${e.message}`));
  return { context, page, logs };
}

export async function screenshot(page: Page, name: string): Promise<string> {
  mkdirSync(SCREENSHOTS, { recursive: true });
  const path = join(SCREENSHOTS, `${name}.png`);
  // From the top: a full-page capture of a scrolled page draws the sticky header mid-page.
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.screenshot({ path, fullPage: true, animations: "disabled" });
  return path;
}

/**
 * Where the docs' screenshots go: docs/screenshots/ (committed) when EDGEMESH_DOC_SHOTS=1 asks to
 * refresh them, else test-results/doc-screenshots/, so a test run leaves the work tree clean.
 */
export const DOC_SHOTS =
  process.env.EDGEMESH_DOC_SHOTS === "1"
    ? join(PROJECT_ROOT, "docs", "screenshots")
    : join(PROJECT_ROOT, "test-results", "doc-screenshots");

/** A small screenshot for docs/dashboard.md: the viewport at CSS pixels, from the top. */
export async function docShot(page: Page, name: string): Promise<void> {
  mkdirSync(DOC_SHOTS, { recursive: true });
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.screenshot({ path: join(DOC_SHOTS, `${name}.png`), scale: "css", animations: "disabled" });
}

export interface Call {
  status: number;
  body: Record<string, unknown>;
}

export async function call(url: string, token: string, method: string, path: string, body?: unknown): Promise<Call> {
  const res = await fetch(`${url}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { "content-type": "application/json" }) },
    body: body === undefined ? null : JSON.stringify(body),
    signal: AbortSignal.timeout(15_000),
  });
  const text = await res.text();
  let parsed: Record<string, unknown> = {};
  try {
    parsed = text ? JSON.parse(text) : {};
  } catch {
    parsed = { raw: text.slice(0, 300) };
  }
  return { status: res.status, body: parsed };
}

export async function mustCall(
  url: string,
  token: string,
  method: string,
  path: string,
  body?: unknown,
  expected = [200, 201, 202],
): Promise<Record<string, unknown>> {
  const answer = await call(url, token, method, path, body);
  if (!expected.includes(answer.status))
    throw new Error(`${method} ${path} answered ${answer.status}: ${JSON.stringify(answer.body).slice(0, 500)}`);
  return answer.body;
}

export const uniqueValue = () => Math.round((10 + Math.random() * 20) * 1000) / 1000;
export const randomSecret = () => randomBytes(32).toString("base64url");

/**
 * Steps of one browser suite that share its setup: a failed setup (no chromium, no edge) fails
 * every step rather than skipping them, since a skip proves nothing. The suite's beforeAll hands
 * its error to `failed`.
 */
export function steps(defaultTimeout?: number) {
  let setupError: unknown;
  return {
    failed(error: unknown): void {
      setupError = error;
    },
    step(name: string, fn: () => Promise<void>, timeout = defaultTimeout): void {
      it(
        name,
        async () => {
          if (setupError) throw setupError;
          await fn();
        },
        timeout,
      );
    },
  };
}
