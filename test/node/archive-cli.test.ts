/**
 * The archive tool (tools/archive) as a user runs it — `node tools/archive/main.ts …` in a child
 * process — against a real S3-protocol server (versitygw) holding an archive written by the
 * Worker's own format code, and, for replay, against the local edge (a real `wrangler dev`).
 */
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { S3Client } from "@aws-sdk/client-s3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type LocalEdge, PROJECT_ROOT, startLocalEdge } from "../../scripts/lib/local-edge.ts";
import { type S3Server, startS3Server, versitygwPath } from "../../scripts/lib/s3-server.ts";
import { hourOf } from "../../shared/archive.ts";
import type { Envelope } from "../../shared/schemas/message.ts";
import { main } from "../../tools/archive/main.ts";
import { ArchiveWriter, createBucket, event, metric, s3Client } from "./archive-fixtures.ts";

const CLI = join(PROJECT_ROOT, "tools/archive/main.ts");

const built = versitygwPath() !== undefined;
if (!built && process.env.CI === "true") {
  throw new Error("versitygw is not built, so the archive tool cannot be tested: .ci/run must run scripts/install-versitygw.sh");
}
if (!built) {
  console.warn(
    "\n*** SKIPPING the archive tool's tests: versitygw (the S3 server they run against) is not built. " +
      "Run `bash scripts/install-versitygw.sh` (needs Go); CI fails instead of skipping. ***\n",
  );
}

const HOUR = 3_600_000;
/** Three hours ago, on the hour: recent enough for the edge to take the messages again. */
const H0 = Math.floor(Date.now() / HOUR) * HOUR - 3 * HOUR;
const at = (minutes: number) => new Date(H0 + minutes * 60_000).toISOString();

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

describe.skipIf(!built)("edgemesh-archive against a real S3 server", () => {
  let server: S3Server;
  let client: S3Client;
  let out: string;
  const m: Record<string, Envelope> = {};

  function cli(args: string[], env: Record<string, string> = {}): Promise<Run> {
    return new Promise((resolve, reject) => {
      const child = spawn(process.execPath, [CLI, ...args], {
        cwd: PROJECT_ROOT,
        env: {
          ...process.env,
          R2_ENDPOINT: server.endpoint,
          R2_ACCESS_KEY_ID: server.accessKeyId,
          R2_SECRET_ACCESS_KEY: server.secretAccessKey,
          AWS_REGION: "us-east-1",
          ...env,
        },
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
      child.on("error", reject);
      child.on("close", (code) => resolve({ code, stdout, stderr }));
    });
  }

  async function cliJson(args: string[], env: Record<string, string> = {}) {
    const run = await cli([...args, "--json"], env);
    let summary: Record<string, unknown>;
    try {
      summary = JSON.parse(run.stdout) as Record<string, unknown>;
    } catch {
      throw new Error(`not JSON (exit ${run.code}):\n${run.stdout}\n${run.stderr}`);
    }
    return { ...run, summary };
  }

  const range = ["--from", at(0), "--to", at(105)];

  beforeAll(async () => {
    server = await startS3Server();
    client = s3Client(server);
    await createBucket(client);
    out = mkdtempSync(join(tmpdir(), "edgemesh-export-"));
    const writer = new ArchiveWriter(client);

    m.before = event("door", at(-30));
    m.e1 = event("door", at(10));
    m.e2 = event("door", at(50), "off");
    m.e4 = event("lamp", at(55));
    m.e3 = event("door", at(65));
    m.late = event("door", at(110));
    m.m1 = metric("thermo", at(20), 21.5);
    m.m2 = metric("thermo", at(90), 22);
    // One consumer batch spanning two hours; then e2 retried in another batch with e4, which
    // stores it a second time (at least once); readers keep one copy.
    await writer.writeBatch(
      "events",
      [m.before, m.e1, m.e2, m.e3, m.late].map((x) => x as Envelope),
    );
    await writer.writeBatch(
      "events",
      [m.e2, m.e4].map((x) => x as Envelope),
    );
    await writer.writeBatch(
      "metrics",
      [m.m1, m.m2].map((x) => x as Envelope),
    );
  });

  afterAll(async () => {
    client?.destroy();
    await server?.stop();
    if (out) rmSync(out, { recursive: true, force: true });
  });

  it("lists a range per kind and hour from the manifests", async () => {
    const { code, summary } = await cliJson(["list", ...range, "--objects"]);
    expect(code).toBe(0);
    const hour0 = hourOf(H0);
    const hour1 = hourOf(H0 + HOUR);
    expect(summary.hours).toEqual([
      expect.objectContaining({ kind: "events", hour: hour0, objects: 2, messages: 4 }),
      expect.objectContaining({ kind: "metrics", hour: hour0, objects: 1, messages: 1 }),
      expect.objectContaining({ kind: "events", hour: hour1, objects: 1, messages: 2 }),
      expect.objectContaining({ kind: "metrics", hour: hour1, objects: 1, messages: 1 }),
    ]);
    expect(summary.totals).toMatchObject({ hours: 4, objects: 5, messages: 8 });
    // The hour before the range is not listed.
    expect(JSON.stringify(summary)).not.toContain(hourOf(H0 - HOUR));

    const text = await cli(["list", ...range, "--kind", "metrics"]);
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/metrics\s+\S+T\d\d\s+1\s+1/);
    expect(text.stdout).toContain("2 hours, 2 objects, 2 messages");
  });

  it("exports a range to NDJSON: in range, by timestamp, one copy per id", async () => {
    const file = join(out, "range.ndjson");
    const { code, summary } = await cliJson(["export", ...range, "--out", file]);
    expect(code).toBe(0);
    expect(summary).toMatchObject({ messages: 6, objects: 5, duplicates: 1, problems: [] });
    const lines = readFileSync(file, "utf8").trimEnd().split("\n");
    const ids = lines.map((l) => (JSON.parse(l) as Envelope).id);
    expect(ids).toEqual([m.e1, m.m1, m.e2, m.e4, m.e3, m.m2].map((x) => x?.id));
    expect(JSON.parse(lines[0] ?? "")).toEqual(m.e1);

    const events = join(out, "events.ndjson");
    expect((await cli(["export", ...range, "--kind", "events", "--out", events])).code).toBe(0);
    expect(readFileSync(events, "utf8").trimEnd().split("\n")).toHaveLength(4);
  });

  it("exports to stdout with the summary on stderr", async () => {
    const run = await cli(["export", ...range, "--kind", "metrics", "--out", "-"]);
    expect(run.code).toBe(0);
    expect(
      run.stdout
        .trimEnd()
        .split("\n")
        .map((l) => (JSON.parse(l) as Envelope).id),
    ).toEqual([m.m1?.id, m.m2?.id]);
    expect(run.stderr).toContain("exported 2 messages");
  });

  it("exits 1 with what it could not read, keeping what it could", async () => {
    const writer = new ArchiveWriter(client);
    const start = H0 - 10 * HOUR;
    const good = event("door", new Date(start + 60_000).toISOString());
    await writer.writeBatch("events", [good]);
    await writer.addEntries("events", hourOf(start), [
      {
        key: `archive/events/${hourOf(start).replaceAll("-", "/").replace("T", "/")}/${"0".repeat(64)}.ndjson.gz`,
        count: 3,
        bytes: 300,
        compressed_bytes: 100,
        first: new Date(start).toISOString(),
        last: new Date(start + 120_000).toISOString(),
      },
    ]);
    const file = join(out, "partial.ndjson");
    const span = ["--from", new Date(start).toISOString(), "--to", new Date(start + HOUR).toISOString()];
    const { code, summary } = await cliJson(["export", ...span, "--out", file]);
    expect(code).toBe(1);
    expect(summary).toMatchObject({ messages: 1, problems: [expect.objectContaining({ key: expect.stringContaining("0000000000") })] });
    const written = readFileSync(file, "utf8").trimEnd().split("\n");
    expect(written.map((l) => JSON.parse(l))).toEqual([good]);
  });

  it("exits 2 on usage errors, with help on every command", async () => {
    // As a program: a usage error and a command's help.
    const usage = await cli(["list", "--from", "yesterday"]);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toMatch(/^edgemesh-archive: --from "yesterday" is not a time/);
    const help = await cli(["replay", "--help"]);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain("Usage: node tools/archive/main.ts replay");

    // The rest in-process (main() is what the program runs), to spare a Node start each.
    const inProcess = async (args: string[]): Promise<Run> => {
      const run = { code: 0 as number | null, stdout: "", stderr: "" };
      const io = {
        stdout: (t: string) => {
          run.stdout += `${t}\n`;
        },
        stderr: (t: string) => {
          run.stderr += `${t}\n`;
        },
        env: { R2_ENDPOINT: server.endpoint },
      };
      run.code = await main(args, io);
      return run;
    };
    for (const args of [
      ["list"],
      ["list", "--from", "1h", "--kind", "logs"],
      ["list", "--from", "1h", "--bogus"],
      ["export", "--from", "1h"],
      ["list", "--from", "1h", "--out", "x"],
      ["replay", "--from", "1h"],
      ["frobnicate"],
      ["list", "--from", "1h", "--to", "2h"],
      ["list", "--from", "1h", "--endpoint", "not a url"],
      ["replay", "--from", "1h", "--url", "http://127.0.0.1:1", "--batch-size", "0"],
    ]) {
      const run = await inProcess(args);
      expect(run.code, args.join(" ")).toBe(2);
      expect(run.stderr, args.join(" ")).toMatch(/^edgemesh-archive: /);
    }
    for (const command of ["list", "export", "replay"]) {
      const run = await inProcess([command, "--help"]);
      expect(run.code).toBe(0);
      expect(run.stdout).toContain(`Usage: node tools/archive/main.ts ${command}`);
      expect(run.stdout).toContain("--endpoint");
    }
    expect((await inProcess(["--help"])).stdout).toMatch(/list.*\n.*export.*\n.*replay/);
  });

  it("exits 1 naming the problem when the store refuses the credentials or has no such bucket", async () => {
    const bad = await cliJson(["list", ...range], { R2_SECRET_ACCESS_KEY: "wrong" });
    expect(bad.code).toBe(1);
    expect(bad.summary).toMatchObject({ exit_code: 1, error: expect.stringContaining(server.endpoint) });
    const missing = await cli(["list", ...range, "--bucket", "no-such-bucket"]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('no bucket "no-such-bucket"');
  });

  describe("replay through the local edge", () => {
    let edge: LocalEdge;

    async function service(id: string, publish: string[]): Promise<string> {
      const created = await edge.admin("POST", "/v1/devices", {
        id,
        type: "archive_replay",
        kind: "service",
        publish,
        rate: { per_second: 1000, burst: 10_000 },
      });
      expect(created.status, JSON.stringify(created.body)).toBe(201);
      return created.body.token as string;
    }

    beforeAll(async () => {
      edge = await startLocalEdge();
    });

    afterAll(async () => {
      await edge?.stop();
      if (edge) rmSync(edge.persistDir, { recursive: true, force: true });
    });

    it("replays a range with ids kept; replaying again is answered as duplicates", async () => {
      const token = await service("archive-replayer", ["home.events:#", "metrics:#"]);
      const env = { EDGEMESH_TOKEN: token };
      const first = await cliJson(["replay", ...range, "--url", edge.url], env);
      expect(first.code, first.stderr).toBe(0);
      expect(first.summary).toMatchObject({
        messages: 6,
        accepted: 6,
        duplicates: 0,
        rejected: 0,
        failed: 0,
        per_exchange: { "home.events": 4, metrics: 2 },
      });

      const again = await cliJson(["replay", ...range, "--url", edge.url, "--batch-size", "2"], env);
      expect(again.code).toBe(0);
      expect(again.summary).toMatchObject({ messages: 6, accepted: 0, duplicates: 6, rejected: 0 });

      // The edge took them with their own ids, from the replaying service.
      const deadline = Date.now() + 30_000;
      let seen: { id: string; source: string; timestamp: string }[] = [];
      while (Date.now() < deadline) {
        const listed = await edge.admin("GET", "/v1/messages?device=archive-replayer&limit=100");
        // Besides the replayed messages: the service's own twin event (it came online).
        seen = (listed.body.messages as typeof seen).filter((x) => /^(ev|me)-/.test(x.id));
        if (seen.length >= 6) break;
        await new Promise((r) => setTimeout(r, 250));
      }
      expect(seen.map((s) => s.id).sort()).toEqual([m.e1, m.m1, m.e2, m.e4, m.e3, m.m2].map((x) => x?.id).sort());
      expect(seen.find((s) => s.id === m.e1?.id)).toMatchObject({ source: "archive-replayer", timestamp: m.e1?.timestamp });
    });

    it("exits 1 when the edge rejects some messages, and says which and why", async () => {
      const token = await service("events-only-replayer", ["home.events:#"]);
      const text = await cli(["replay", ...range, "--url", edge.url, "--token", token]);
      expect(text.code).toBe(1);
      expect(text.stdout).toContain("4 accepted");
      expect(text.stdout).toContain("rejected forbidden: 2");
      expect(text.stdout).toContain(m.m1?.id);
    });

    it("stops at once when the edge refuses the token", async () => {
      const run = await cliJson(["replay", ...range, "--url", edge.url], { EDGEMESH_TOKEN: "archive-replayer.wrong" });
      expect(run.code).toBe(1);
      expect(run.summary.error).toContain("refused the token");
    });
  });
});
