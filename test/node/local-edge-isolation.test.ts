/**
 * Issue 14's machine-level classes: local edges keep to their own wrangler dev registry, one list
 * of services feeds both `scripts/test.sh` and `.ci/run`, and the logs tests provoke are told
 * apart from results.
 */
import { execFileSync } from "node:child_process";
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { PROJECT_ROOT, startLocalEdge } from "../../scripts/lib/local-edge.ts";
import { isNoise } from "../../scripts/lib/quiet-output.ts";

describe("wrangler dev registries", () => {
  it("a local edge registers in a registry of its own, not the machine's or the caller's", async () => {
    const shared = mkdtempSync(join(tmpdir(), "edgemesh-shared-registry-"));
    const before = process.env.WRANGLER_REGISTRY_PATH;
    process.env.WRANGLER_REGISTRY_PATH = shared;
    const edge = await startLocalEdge();
    try {
      const own = join(edge.persistDir, "dev-registry");
      expect(existsSync(own)).toBe(true);
      expect(readdirSync(own).join(",")).toContain("edgemesh");
      expect(readdirSync(shared)).toEqual([]);
    } finally {
      await edge.stop();
      process.env.WRANGLER_REGISTRY_PATH = before;
      if (before === undefined) delete process.env.WRANGLER_REGISTRY_PATH;
    }
  });
});

describe("the services the tests use", () => {
  // biome-ignore lint/suspicious/noTemplateCurlyInString: a bash expansion, not a template
  const list = execFileSync("bash", ["-c", '. scripts/lib/services.sh && echo "${EDGEMESH_APT_PACKAGES[@]}"'], {
    cwd: PROJECT_ROOT,
    encoding: "utf8",
  })
    .trim()
    .split(" ");

  it("come from one list that scripts/test.sh and .ci/run both install from", () => {
    for (const script of ["scripts/test.sh", ".ci/run"]) {
      const text = readFileSync(join(PROJECT_ROOT, script), "utf8");
      expect(text, script).toMatch(/\. scripts\/lib\/services\.sh/);
      expect(text, script).toMatch(/install_services/);
      expect(text, script).not.toMatch(/APT_PACKAGES=\(/);
    }
  });

  it("name every Debian package a test needs", () => {
    for (const p of [
      "chromium",
      "postgresql",
      "mosquitto",
      "redis-server",
      "python3-paho-mqtt",
      "python3-venv",
      "maven",
      "openjdk-17-jre-headless",
    ]) {
      expect(list).toContain(p);
    }
  });
});

describe("scripts/install.sh", () => {
  it("installs with npm install --no-save and leaves package-lock.json byte for byte as it was", () => {
    const dir = mkdtempSync(join(tmpdir(), "edgemesh-install-"));
    mkdirSync(join(dir, "scripts"));
    for (const f of ["install.sh", "env.sh", "node24.sh"]) copyFileSync(join(PROJECT_ROOT, "scripts", f), join(dir, "scripts", f));
    const lock = '{\n  "name": "edgemesh",\n  "lockfileVersion": 3\n}\n';
    writeFileSync(join(dir, "package-lock.json"), lock);
    // An npm that does what npm install does here: installs, and adds other platforms' binaries to the lock.
    mkdirSync(join(dir, "bin"));
    writeFileSync(
      join(dir, "bin", "npm"),
      '#!/bin/sh\necho "$@" > npm-args\nprintf \'{"packages":{"node_modules/@biomejs/cli-darwin-arm64":{}}}\' > package-lock.json\nmkdir -p node_modules && echo {} > node_modules/.package-lock.json\n',
    );
    chmodSync(join(dir, "bin", "npm"), 0o755);
    execFileSync("bash", ["scripts/install.sh"], {
      cwd: dir,
      env: { ...process.env, PATH: `${join(dir, "bin")}:${process.env.PATH}` },
      stdio: "pipe",
    });
    expect(readFileSync(join(dir, "npm-args"), "utf8")).toMatch(/^install --no-save/);
    expect(readFileSync(join(dir, "package-lock.json"), "utf8")).toBe(lock);
  });
});

describe("test output", () => {
  it("tells the logs tests provoke from results", () => {
    expect(isNoise('{"level":"error","msg":"dead-lettered","queue":"sensors.temperature"}')).toBe(true);
    expect(isNoise('{"level":"warn","msg":"retrying"}')).toBe(true);
    expect(isNoise("\u001b[33m▲ \u001b[43;33m[\u001b[43;30mWARNING\u001b[43;33m]\u001b[0m Missing required secrets: ADMIN_TOKEN")).toBe(
      true,
    );
    expect(isNoise(" ✓ workers test/workers/ingest.test.ts (12 tests) 812ms")).toBe(false);
    expect(isNoise("AssertionError: expected 500 to be less than 500")).toBe(false);
    expect(isNoise("tests: 511 passed, 0 failed, 0 skipped")).toBe(false);
  });
});
