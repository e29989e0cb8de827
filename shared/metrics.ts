/**
 * Pipeline metrics, counted where the work happens and kept in D1 (`metric_counters`), because
 * Worker isolates share no memory: each isolate adds to an in-memory tally and flushes it as one
 * D1 batch of upserts (`value = value + ?`) at most every METRICS_FLUSH_SECONDS, in waitUntil.
 * GET /metrics (functions/routes/metrics.ts) reads the table and renders Prometheus text.
 *
 * The cost and the trade-off are in docs/metrics.md: an isolate that is evicted before its next
 * flush loses what it counted since the last one, so counters are lower bounds.
 */
import { readConfig } from "./config";
import { log } from "./log";

/** Every family the edge counts: name → type and help, for the # HELP / # TYPE lines. */
export const FAMILIES = {
  edgemesh_http_requests_total: { type: "counter", help: "HTTP requests answered, by route, status and error code" },
  edgemesh_ingest_messages_total: {
    type: "counter",
    help: "Messages posted by devices and services, by outcome (accepted, duplicate, rejected)",
  },
  edgemesh_ingest_rejections_total: { type: "counter", help: "Rejected messages by error code" },
  edgemesh_ingest_duration_seconds: { type: "histogram", help: "Ingest request latency (the whole HTTP request)" },
  edgemesh_twin_duration_seconds: { type: "histogram", help: "Time the device twin took to check, store and route a batch" },
  edgemesh_routed_messages_total: { type: "counter", help: "Messages routed to each queue at ingest (HTTPS)" },
  edgemesh_routing_lag_seconds: { type: "histogram", help: "From the edge receiving a message to its consumer starting on it, by queue" },
  edgemesh_sink_duration_seconds: { type: "histogram", help: "Consumer (sink) time per batch, by queue" },
  edgemesh_stored_lag_seconds: {
    type: "histogram",
    help: "From the edge accepting a message (its received_at) to the series store's write of its readings committing, by queue",
    // Fine around the goal (issue 13: stored within 1 s at p99), so a bench can read p99 from it.
    buckets: [0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1, 1.5, 2, 2.5, 5, 10, 30, 60],
  },
  edgemesh_sink_messages_total: {
    type: "counter",
    help: "Messages handled by consumers, by queue and outcome (delivered, retried, dead_lettered)",
  },
  edgemesh_billable_ops_total: {
    type: "counter",
    help: "Operations Cloudflare bills, counted at the bindings (shared/billing.ts), by kind and source (app, metering)",
  },
} as const satisfies Record<string, { type: "counter" | "histogram"; help: string; buckets?: readonly number[] }>;

export type Family = keyof typeof FAMILIES;
export type Histogram = { [K in Family]: (typeof FAMILIES)[K]["type"] extends "histogram" ? K : never }[Family];
export type Counter = Exclude<Family, Histogram>;

/** Seconds: from a fast D1 write to a slow consumer batch. */
export const BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60] as const;

/** A histogram's bucket bounds: its own where FAMILIES gives them, else BUCKETS. */
export function bucketsOf(name: string): readonly number[] {
  const def = (FAMILIES as Record<string, { buckets?: readonly number[] }>)[name];
  return def?.buckets ?? BUCKETS;
}

export type Labels = Record<string, string | number>;

/** The labels of a label text (the inverse of labelText). */
export function parseLabelText(text: string): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const [, key, value] of text.matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g))
    labels[key as string] = (value as string).replace(/\\(.)/g, (_, c: string) => (c === "n" ? "\n" : c));
  return labels;
}

function escapeLabel(value: string): string {
  return value.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/"/g, '\\"');
}

/** Labels in Prometheus text form, sorted by name (so one series is one row). */
export function labelText(labels: Labels): string {
  return Object.keys(labels)
    .sort()
    .map((k) => `${k}="${escapeLabel(String(labels[k]))}"`)
    .join(",");
}

/**
 * labelText through a bounded cache: the hot path observes a few label sets per message (a
 * queue name, a transport), and building the text (sort, three escapes per value) was ~2 % of the
 * local isolate's CPU under load (bench/latency, docs/benchmarks.md). `le` is the bucket bound.
 */
const labelCache = new Map<string, string>();
function cachedLabelText(labels: Labels, le?: string): string {
  let key = le === undefined ? "-" : `le=${le}`;
  for (const k in labels) key += `\u0000${k}\u0001${labels[k]}`;
  let text = labelCache.get(key);
  if (text === undefined) {
    text = labelText(le === undefined ? labels : { ...labels, le });
    if (labelCache.size >= 4096) labelCache.clear();
    labelCache.set(key, text);
  }
  return text;
}

export class MetricsTally {
  readonly #values = new Map<string, { name: string; labels: string; value: number }>();

  /** Adds to one series, its labels already in text form. */
  add(name: string, labels: string, by: number): void {
    const key = `${name}{${labels}}`;
    const entry = this.#values.get(key);
    if (entry) entry.value += by;
    else this.#values.set(key, { name, labels, value: by });
  }

  inc(name: Counter, labels: Labels = {}, by = 1): void {
    if (by !== 0) this.add(name, cachedLabelText(labels), by);
  }

  /**
   * One row for the bucket the value falls in (not every bucket above it, as exposed: that would
   * write ~14 rows per label set), plus _sum and _count; GET /metrics makes them cumulative.
   */
  observe(name: Histogram, seconds: number, labels: Labels = {}): void {
    const le = bucketsOf(name).find((bound) => seconds <= bound);
    this.add(`${name}_bucket`, cachedLabelText(labels, le === undefined ? "+Inf" : String(le)), 1);
    const base = cachedLabelText(labels);
    this.add(`${name}_sum`, base, seconds);
    this.add(`${name}_count`, base, 1);
  }

  /** observe() for many values with one label set (a consumer batch): one add per bucket hit. */
  observeMany(name: Histogram, seconds: readonly number[], labels: Labels = {}): void {
    if (seconds.length === 0) return;
    const bounds = bucketsOf(name);
    const perBucket = new Map<string, number>();
    let sum = 0;
    for (const value of seconds) {
      const le = bounds.find((bound) => value <= bound);
      const key = le === undefined ? "+Inf" : String(le);
      perBucket.set(key, (perBucket.get(key) ?? 0) + 1);
      sum += value;
    }
    for (const [le, n] of perBucket) this.add(`${name}_bucket`, cachedLabelText(labels, le), n);
    const base = cachedLabelText(labels);
    this.add(`${name}_sum`, base, sum);
    this.add(`${name}_count`, base, seconds.length);
  }

  get size(): number {
    return this.#values.size;
  }

  /** Takes what was counted and empties the tally. */
  drain() {
    const entries = [...this.#values.values()];
    this.#values.clear();
    return entries;
  }
}

/** shared/billing.ts's key to the binding behind a metered one (a registered symbol: no import cycle). */
const UNMETERED = Symbol.for("edgemesh.unmetered");

/** This isolate's tally, shared by every request and batch it serves. */
export const metrics = new MetricsTally();
let lastFlush = 0;

/**
 * Writes the tally to D1 when the last flush is at least `everySeconds` old (0: always). Never
 * throws: metrics must not fail the work they measure; what fails to write is added back.
 */
export async function flushMetrics(metered: D1Database, everySeconds: number, now = Date.now()): Promise<void> {
  if (metrics.size === 0 || now - lastFlush < everySeconds * 1000) return;
  // Through the binding itself, not its metered wrapper (shared/billing.ts): see below.
  const db = ((metered as unknown as Record<symbol, D1Database | undefined>)[UNMETERED] ?? metered) as D1Database;
  lastFlush = now;
  const entries = metrics.drain();
  const at = new Date(now).toISOString();
  const upsert = db.prepare(
    "INSERT INTO metric_counters (name, labels, value, updated_at, created_at) VALUES (?, ?, ?, ?, ?) " +
      "ON CONFLICT (name, labels) DO UPDATE SET value = value + excluded.value, updated_at = excluded.updated_at",
  );
  try {
    const results = await db.batch(entries.map((e) => upsert.bind(e.name, e.labels, e.value, at, at)));
    // The meter's own writes are billed too; they are counted apart from the pipeline's.
    const written = results.reduce((n, r) => n + (r.meta?.rows_written ?? 0), 0);
    if (written > 0) metrics.add("edgemesh_billable_ops_total", 'kind="d1_rows_written",source="metering"', written);
  } catch (error) {
    for (const e of entries) metrics.add(e.name, e.labels, e.value);
    log("error", "metrics flush failed", { series: entries.length, error: String(error) });
  }
}

/** METRICS_FLUSH_SECONDS, or its default when the configuration is broken (health reports that). */
export function flushEvery(env: object): number {
  try {
    return readConfig(env).METRICS_FLUSH_SECONDS;
  } catch {
    return 60;
  }
}
