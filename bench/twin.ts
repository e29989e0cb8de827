/**
 * bench/twin: how many updates one DeviceTwin sustains — each an authenticated ingest of one
 * message with its storage writes (dedupe, reported state, recent ring) and its queue send —
 * and the latency of each, beside a Durable Object RPC call that does nothing, in the same run.
 *
 * The loop runs inside workerd (bench/twin/worker.ts); this process starts `wrangler dev` with a
 * config generated from the real wrangler.toml, asks for the runs, and prints the figures.
 *
 *   node bench/twin.ts [--n 3000] [--concurrency 1,8] [--readings 3]
 *
 * Issue 13's goal: DeviceTwin.ingest ≥ 0.3× the no-op call; it prints whether that holds at each
 * concurrency, with the CPU columns (the edge's tree, this process, the rest of the machine).
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { unstable_readConfig } from "wrangler";
import { PROJECT_ROOT, startLocalEdge } from "../scripts/lib/local-edge.ts";
import { CPU_COLUMNS, type CpuFigures, cpuCells, cpuWindow, goalLine } from "./lib/cpu-window.ts";
import { treeUsage } from "./lib/proc.ts";
import { privateRegistry } from "./lib/registry.ts";
import { fixed, ratio, summarize } from "./lib/stats.ts";
import { type Column, markdownTable, textTable } from "./lib/table.ts";

const { values: args } = parseArgs({
  options: {
    n: { type: "string" },
    concurrency: { type: "string" },
    readings: { type: "string", default: process.env.BENCH_READINGS ?? "3" },
    markdown: { type: "boolean", default: false },
    quick: { type: "boolean", default: false },
  },
});
/** --quick (or BENCH_QUICK=1): the short run CI makes so the bench cannot rot. */
const QUICK = args.quick || process.env.BENCH_QUICK === "1";
args.n ??= process.env.BENCH_N ?? (QUICK ? "300" : "3000");
args.concurrency ??= process.env.BENCH_CONCURRENCY ?? (QUICK ? "1" : "1,8");
const n = Number(args.n);
const readings = Number(args.readings);
const concurrencies = String(args.concurrency).split(",").map(Number);

/**
 * The real config, with the bench Worker as main and a no-op Durable Object beside the twin.
 * Every Durable Object binding and migration of the real config is kept (the twin calls the
 * room, the live hub, MQTT sessions and agent links), so the bench cannot drift from it again.
 */
function benchConfig(dir: string): string {
  const real = unstable_readConfig({ config: join(PROJECT_ROOT, "wrangler.toml") });
  const config = {
    name: "edgemesh-bench-twin",
    main: join(PROJECT_ROOT, "bench/twin/worker.ts"),
    compatibility_date: real.compatibility_date,
    compatibility_flags: real.compatibility_flags,
    vars: real.vars,
    d1_databases: real.d1_databases,
    durable_objects: {
      bindings: [
        ...real.durable_objects.bindings.map((b) => ({ name: b.name, class_name: b.class_name })),
        { name: "NOOP", class_name: "NoopObject" },
      ],
    },
    migrations: [...real.migrations, { tag: "bench-noop", new_sqlite_classes: ["NoopObject"] }],
    // Producers only: the twin's sends are part of what is measured; nothing consumes them here.
    queues: { producers: real.queues.producers },
  };
  const path = join(dir, "wrangler.json");
  writeFileSync(path, JSON.stringify(config, null, 2));
  return path;
}

interface RunResult {
  elapsedMs: number;
  latencies: number[];
  failures: number;
}

async function main() {
  const dir = mkdtempSync(join(tmpdir(), "edgemesh-bench-twin-"));
  privateRegistry();
  const edge = await startLocalEdge({ config: benchConfig(dir), persistDir: join(dir, "state"), migrate: false });
  const rows: string[][] = [];
  const goals: string[] = [];
  try {
    const get = async <T>(path: string): Promise<T> => {
      const res = await fetch(`${edge.url}${path}`);
      if (!res.ok) throw new Error(`${path}: ${res.status} ${await res.text()}\n${edge.log()}`);
      return (await res.json()) as T;
    };
    for (const concurrency of concurrencies) {
      const twin = `bench-twin-c${concurrency}`;
      await get(`/setup?twin=${twin}`);
      // Warm both paths (isolate start, SQLite pages) before measuring.
      await get(`/run?target=twin&twin=${twin}&n=200&concurrency=${concurrency}&readings=${readings}`);
      await get(`/run?target=noop&n=200&concurrency=${concurrency}`);
      const results: Record<string, RunResult> = {};
      const cpu: Record<string, CpuFigures> = {};
      for (const target of ["noop", "twin"] as const) {
        const window = cpuWindow([edge.process.pid]);
        results[target] = await get<RunResult>(`/run?target=${target}&twin=${twin}&n=${n}&concurrency=${concurrency}&readings=${readings}`);
        cpu[target] = window.stop();
      }
      const rss = treeUsage(edge.process.pid ?? 0)?.rssBytes;
      for (const target of ["noop", "twin"] as const) {
        const r = results[target] as RunResult;
        const s = summarize(r.latencies);
        const rate = (n / r.elapsedMs) * 1000;
        const reference = results.noop as RunResult;
        rows.push([
          target === "noop" ? "no-op DO call" : `DeviceTwin.ingest (${readings} readings)`,
          String(concurrency),
          String(n),
          fixed(rate, 0),
          fixed(s.p50, 2),
          fixed(s.p99, 2),
          String(r.failures),
          target === "twin" ? ratio(rate, (n / reference.elapsedMs) * 1000) : "",
          rss === undefined ? "-" : fixed(rss / 1_048_576, 0),
          ...cpuCells(cpu[target]),
        ]);
        if (r.failures > 0) process.exitCode = 1;
      }
      const twinRate = (n / (results.twin as RunResult).elapsedMs) * 1000;
      const noopRate = (n / (results.noop as RunResult).elapsedMs) * 1000;
      goals.push(
        goalLine(
          `DeviceTwin.ingest ≥ 0.3× a no-op DO RPC, concurrency ${concurrency}`,
          twinRate >= 0.3 * noopRate,
          `${fixed(twinRate, 0)} vs ${fixed(noopRate, 0)} calls/s = ${ratio(twinRate, noopRate)}, other CPU ${fixed(cpu.twin?.otherCores, 2)}`,
        ),
      );
    }
  } finally {
    await edge.stop();
    rmSync(dir, { recursive: true, force: true });
  }
  const columns: Column[] = [
    { header: "path" },
    { header: "concurrency", align: "right" },
    { header: "calls", align: "right" },
    { header: "updates/s", align: "right" },
    { header: "p50 ms", align: "right" },
    { header: "p99 ms", align: "right" },
    { header: "failures", align: "right" },
    { header: "vs no-op", align: "right" },
    { header: "edge RSS MB", align: "right" },
    ...CPU_COLUMNS.map((header): Column => ({ header, align: "right" })),
  ];
  console.log(textTable(columns, rows));
  if (args.markdown) console.log(`\n${markdownTable(columns, rows)}`);
  console.log(
    "\nLatencies are measured inside workerd around each RPC call (timers there advance on I/O). edge CPU: the edge's process tree;" +
      " gen CPU: this process (it only asks for the run); other CPU: the rest of the machine, in cores.",
  );
  for (const line of goals) console.log(line);
}

await main();
