/**
 * Every benchmark runs at HEAD in its short mode (`--quick`), one after another, so none can rot
 * again (issue 13: bench/twin and bench/mqtt had drifted). Each must exit 0 — a bench exits
 * non-zero only when its requests failed — and print its figures. The figures themselves are
 * not judged here: benchmarks are not timed tests (docs/benchmarks.md).
 */
import { spawn } from "node:child_process";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { PROJECT_ROOT } from "../../scripts/lib/local-edge.ts";

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function runBench(file: string, args: string[], timeoutMs: number): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(PROJECT_ROOT, "bench", file), "--quick", ...args], {
      cwd: PROJECT_ROOT,
      env: { ...process.env, BENCH_QUICK: "1" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c: Buffer) => {
      stdout += c.toString();
    });
    child.stderr.on("data", (c: Buffer) => {
      stderr = (stderr + c.toString()).slice(-20_000);
    });
    const timer = setTimeout(() => {
      child.kill("SIGTERM");
      reject(new Error(`bench/${file} took longer than ${timeoutMs / 1000} s:\n${stdout.slice(-3000)}\n${stderr.slice(-3000)}`));
    }, timeoutMs);
    child.on("exit", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

const BENCHES: { file: string; args?: string[]; figures: RegExp }[] = [
  { file: "ingest.ts", figures: /edgemesh \/ reference[\s\S]*single[\s\S]*×\d/ },
  { file: "twin.ts", figures: /DeviceTwin\.ingest \(3 readings\)\s+1\s+300\s+\d+/ },
  { file: "fanout.ts", figures: /fan-out, light\s+\|?\s*50/ },
  { file: "series.ts", figures: /COPY[\s\S]*\d/ },
  { file: "mqtt.ts", figures: /edgemesh \(MQTT gateway[^\n]*\d/ },
  { file: "agent.ts", figures: /agent, outbox sync=full: MQTT → outbox → edge acknowledged\s+\d+/ },
  { file: "flows.ts", figures: /trigger → command[^\n]*\d/ },
  { file: "analysis.ts", figures: /default analysis[^\n]*\n\s+alerts \d+, false \d+: precision [\d.]+, recall [\d.]+/ },
  {
    file: "latency.ts",
    figures: /goal (HOLDS|MISSED): accepted → stored p99 < 1 s, idle[\s\S]*goal (HOLDS|MISSED): accepted → stored p99 < 1 s, 1000\/s/,
  },
  { file: "history.ts", figures: /by id \(middle[^\n]*\d/ },
];

describe("benchmarks in their short mode", () => {
  for (const bench of BENCHES)
    it(`bench/${bench.file} exits 0 and prints its figures`, { timeout: 150_000 }, async () => {
      const run = await runBench(bench.file, bench.args ?? [], 140_000);
      expect(run.code, `${run.stdout.slice(-3000)}\n${run.stderr.slice(-3000)}`).toBe(0);
      expect(run.stdout).toMatch(bench.figures);
    });

  it("bench/cost.ts prints one JSON object with the ops per message it measured at a load's own rates", { timeout: 150_000 }, async () => {
    const run = await runBench("cost.ts", ["--json", "--transports", "https_single", "--kinds", "meter", "--loads", "1x"], 140_000);
    expect(run.code, run.stderr.slice(-3000)).toBe(0);
    const report = JSON.parse(run.stdout) as {
      bench: string;
      measured: Record<
        string,
        { messages: number; ops_per_message: Record<string, number>; paced: { rate_per_device: number; requests: number } }
      >;
    };
    expect(report.bench).toBe("cost");
    const meter = report.measured["https_single/meter/1x"];
    // Two meters at seed 004's 1× rate (1 message a second each) for the quick window of 8 s, one request per message.
    expect(meter?.messages).toBe(16);
    expect(meter?.paced.rate_per_device).toBe(1);
    expect(meter?.paced.requests).toBe(16);
    // A stored meter reading is written somewhere and travels through at least one queue.
    expect(meter?.ops_per_message.d1_rows_written).toBeGreaterThan(0);
    // It travels through the queues and its twin.
    expect(meter?.ops_per_message.queue_ops).toBeGreaterThan(0);
    expect(meter?.ops_per_message.do_requests).toBeGreaterThan(0);
  });
});
