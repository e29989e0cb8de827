/**
 * Builds the dashboard (web/) into web/dist/, the Worker's static assets: app.js (the
 * TypeScript of web/src bundled with uPlot by esbuild), app.css (ours and uPlot's), index.html
 * pointing at both with a content hash (so a deploy never mixes old and new files), and the
 * `_headers` file (Content-Security-Policy and friends).
 *
 *   node scripts/build-web.ts            # minified, with source maps
 *   node scripts/build-web.ts --dev      # not minified
 *
 * wrangler runs it before `wrangler dev` and `wrangler deploy` ([build] in wrangler.toml); the
 * test and dev scripts run it too. A module as well: `buildWeb()` returns what it wrote.
 */
import { createHash } from "node:crypto";
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join, relative, resolve } from "node:path";
import { build } from "esbuild";

const ROOT = resolve(import.meta.dirname, "..");
export const WEB_DIR = join(ROOT, "web");
export const DIST_DIR = join(WEB_DIR, "dist");

export interface WebBuild {
  files: { path: string; bytes: number }[];
  ms: number;
}

export async function buildWeb(options: { minify?: boolean; outDir?: string } = {}): Promise<WebBuild> {
  const started = performance.now();
  const outDir = options.outDir ?? DIST_DIR;
  // Written in place, never emptied first: a running `wrangler dev` (or a test) may be serving it.
  mkdirSync(outDir, { recursive: true });
  await build({
    entryPoints: { app: join(WEB_DIR, "src/main.ts") },
    outdir: outDir,
    bundle: true,
    format: "esm",
    platform: "browser",
    target: ["es2022", "chrome105", "firefox110", "safari16"],
    minify: options.minify ?? true,
    sourcemap: "linked",
    legalComments: "linked",
    logLevel: "warning",
    charset: "utf8",
  });
  const hash = (file: string) =>
    createHash("sha256")
      .update(readFileSync(join(outDir, file)))
      .digest("hex")
      .slice(0, 10);
  const html = readFileSync(join(WEB_DIR, "index.html"), "utf8")
    .replace("%APP_JS%", `/app.js?v=${hash("app.js")}`)
    .replace("%APP_CSS%", `/app.css?v=${hash("app.css")}`);
  writeFileSync(join(outDir, "index.html"), html);
  copyFileSync(join(WEB_DIR, "_headers"), join(outDir, "_headers"));
  const files = ["index.html", "app.js", "app.css"].map((name) => ({
    path: join(outDir, name),
    bytes: readFileSync(join(outDir, name)).length,
  }));
  return { files, ms: performance.now() - started };
}

if (import.meta.main) {
  const dev = process.argv.includes("--dev");
  try {
    const result = await buildWeb({ minify: !dev });
    const sizes = result.files.map((f) => `${relative(ROOT, f.path)} ${(f.bytes / 1024).toFixed(1)} KB`).join(", ");
    console.log(`build-web: ${sizes} (${result.ms.toFixed(0)} ms)`);
  } catch (error) {
    console.error(`build-web: failed: ${(error as Error).message}`);
    process.exit(1);
  }
}
