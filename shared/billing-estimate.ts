/**
 * "Show the bill": the estimated monthly cost at the current rate, from GET /metrics's
 * `edgemesh_billable_ops_total` counters (shared/billing.ts) and the price table
 * (shared/billing-prices.ts). The dashboard's pipeline page and `edgemesh cost` both use it.
 *
 * The rate is either the average since the counters started
 * (`edgemesh_billable_since_timestamp_seconds`) or the difference between two scrapes.
 */
import { type Bill, monthlyBill, type Ops, perMonth } from "./billing-prices.ts";

export interface MetricSample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Prometheus text (format 0.0.4) as samples; comments and malformed lines are skipped. */
export function parseSamples(text: string): MetricSample[] {
  const out: MetricSample[] = [];
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const [, key, value] of (m[2] ?? "").matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g))
      labels[key as string] = (value as string).replace(/\\(.)/g, (_, c: string) => (c === "n" ? "\n" : c));
    out.push({ name: m[1] as string, labels, value: Number(m[3]) });
  }
  return out;
}

/** The pipeline's billable operations by kind (the meter's own writes left out). */
export function billableTotals(samples: MetricSample[]): Record<string, number> {
  const ops: Record<string, number> = {};
  for (const s of samples)
    if (s.name === "edgemesh_billable_ops_total" && s.labels.source !== "metering" && s.labels.kind)
      ops[s.labels.kind] = (ops[s.labels.kind] ?? 0) + s.value;
  return ops;
}

export interface CostEstimate {
  /** Seconds the rate was measured over. */
  window_seconds: number;
  /** Operations by kind over that window. */
  ops: Record<string, number>;
  /** Messages accepted over that window, and at that rate a month. */
  messages: number;
  messages_per_month: number;
  /** The month's bill at that rate (monthly_usd: usage beyond the included quotas; base_usd apart). */
  bill: Bill;
}

function accepted(samples: MetricSample[]): number {
  return samples
    .filter((s) => s.name === "edgemesh_ingest_messages_total" && s.labels.outcome === "accepted")
    .reduce((n, s) => n + s.value, 0);
}

/** The estimate from one scrape: the totals over the time since the counters started. */
export function estimateSinceStart(samples: MetricSample[], nowMs = Date.now()): CostEstimate | undefined {
  const since = samples.find((s) => s.name === "edgemesh_billable_since_timestamp_seconds")?.value;
  if (since === undefined || !Number.isFinite(since)) return undefined;
  return estimate(billableTotals(samples), accepted(samples), Math.max(1, nowMs / 1000 - since), d1Bytes(samples));
}

/** The estimate from two scrapes `seconds` apart: the current rate. */
export function estimateBetween(before: MetricSample[], after: MetricSample[], seconds: number): CostEstimate {
  const a = billableTotals(before);
  const b = billableTotals(after);
  const ops = Object.fromEntries(Object.keys(b).map((k) => [k, Math.max(0, (b[k] ?? 0) - (a[k] ?? 0))]));
  return estimate(ops, Math.max(0, accepted(after) - accepted(before)), seconds, d1Bytes(after));
}

/** D1's size now (the storage a month is billed for, if it stays there). */
function d1Bytes(samples: MetricSample[]): number {
  return samples.find((s) => s.name === "edgemesh_d1_size_bytes")?.value ?? 0;
}

function estimate(ops: Record<string, number>, messages: number, seconds: number, storedBytes: number): CostEstimate {
  const month: Ops = perMonth(ops, seconds);
  return {
    window_seconds: seconds,
    ops,
    messages,
    messages_per_month: Math.round((messages * 30 * 86_400) / Math.max(1, seconds)),
    bill: monthlyBill(month, storedBytes / 1e9),
  };
}
