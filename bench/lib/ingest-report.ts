/**
 * bench/ingest's report: the table of every measurement, the edgemesh/reference ratios, the
 * CPU of an edge by process, and counts of statuses and errors.
 */
import type { Row, Scenario } from "./ingest-measure.ts";
import { fixed, ratio } from "./stats.ts";
import type { Column } from "./table.ts";

export const MB = 1024 * 1024;
const rate = (count: number, ms: number) => (ms > 0 ? (count * 1000) / ms : Number.NaN);
export const acceptedPerSecond = (row: Row) => rate(row.result.messagesAccepted, row.result.elapsedMs);

export function tableOf(rows: readonly Row[], rssLabel: string): { columns: Column[]; cells: string[][] } {
  const columns: Column[] = [
    { header: "scenario" },
    { header: "target" },
    { header: "requests", align: "right" },
    { header: "req/s", align: "right" },
    { header: "messages/s", align: "right" },
    { header: "p50 ms", align: "right" },
    { header: "p99 ms", align: "right" },
    { header: "errors", align: "right" },
    { header: rssLabel, align: "right" },
    { header: "edge CPU", align: "right" },
    { header: "gen CPU", align: "right" },
    { header: "other CPU", align: "right" },
  ];
  const cells = rows.map((row) => [
    row.scenario.name,
    row.reloaded ? `${row.target.name} (reloaded!)` : row.target.name,
    String(row.result.requests),
    fixed(rate(row.result.requests, row.result.elapsedMs), 0),
    fixed(acceptedPerSecond(row), 0),
    fixed(row.latency.p50, 1),
    fixed(row.latency.p99, 1),
    String(row.result.errorCount),
    fixed(row.rssBytes / MB, 0),
    fixed(row.edgeCpuCores, 2),
    fixed(row.generatorCpuCores, 2),
    fixed(row.otherCpuCores, 2),
  ]);
  return { columns, cells };
}

export function ratioTable(rows: readonly Row[], scenarios: readonly Scenario[]): { columns: Column[]; cells: string[][] } {
  const columns: Column[] = [
    { header: "scenario" },
    { header: "messages/s", align: "right" },
    { header: "p50", align: "right" },
    { header: "p99", align: "right" },
    { header: "RSS", align: "right" },
  ];
  const cells: string[][] = [];
  for (const scenario of scenarios) {
    const ref = rows.find((r) => r.scenario === scenario && r.target.name === "reference");
    const em = rows.find((r) => r.scenario === scenario && r.target.name === "edgemesh");
    if (!ref || !em) continue;
    cells.push([
      scenario.name,
      ratio(acceptedPerSecond(em), acceptedPerSecond(ref)),
      ratio(em.latency.p50, ref.latency.p50),
      ratio(em.latency.p99, ref.latency.p99),
      ratio(em.rssBytes, ref.rssBytes),
    ]);
  }
  return { columns, cells };
}

/** What a process of a `wrangler dev` tree is, from its command line. */
function processLabel(commandLine: string, port: number): string {
  if (/\bworkerd\b/.test(commandLine)) {
    // wrangler dev runs two workerd: the dev proxy on the public port, and the runtime of the
    // Worker itself (with its Durable Objects, D1 and Queues) on a port of its own.
    return new RegExp(`entry=127\\.0\\.0\\.1:${port}(\\s|$)`).test(commandLine) ? "workerd (dev proxy)" : "workerd (Worker runtime)";
  }
  if (commandLine.includes("wrangler-dist/cli.js")) return "node (wrangler dev)";
  if (commandLine.includes("wrangler.js")) return "node (wrangler launcher)";
  if (commandLine.includes("esbuild")) return "esbuild";
  return commandLine.split(" ")[0]?.split("/").at(-1) ?? "?";
}

export function cpuBreakdown(row: Row): string {
  const parts = row.edgeCpuByProcess
    .filter((p) => p.cpuCores >= 0.005)
    .map((p) => `${processLabel(p.commandLine, row.target.edge.port)} ${fixed(p.cpuCores, 2)}`);
  return parts.join(", ") || "-";
}

export const formatCounts = (counts: Map<number | string, number>) =>
  [...counts]
    .sort((a, b) => b[1] - a[1])
    .map(([key, n]) => `${key}×${n}`)
    .join(", ") || "none";
