/**
 * Reads GET /metrics (Prometheus text format) for the pipeline page. Hand-written because the
 * page needs only samples and histogram quantiles, and the npm parsers either pull in Node
 * modules or fold a labelled histogram's label sets into one (docs/metrics.md).
 */
export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\d+)?$/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

function number(text: string): number {
  if (text === "+Inf") return Number.POSITIVE_INFINITY;
  if (text === "-Inf") return Number.NEGATIVE_INFINITY;
  return Number(text);
}

export function parseMetrics(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (!line || line.startsWith("#")) continue;
    const m = SAMPLE.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const [, key, value] of (m[2] ?? "").matchAll(LABEL))
      labels[key as string] = (value as string).replace(/\\(.)/g, (_, c) => (c === "n" ? "\n" : c));
    samples.push({ name: m[1] as string, labels, value: number(m[3] as string) });
  }
  return samples;
}

const matches = (s: Sample, where: Record<string, string>) => Object.entries(where).every(([k, v]) => s.labels[k] === v);

export function total(samples: Sample[], name: string, where: Record<string, string> = {}): number {
  return samples.filter((s) => s.name === name && matches(s, where)).reduce((sum, s) => sum + (Number.isFinite(s.value) ? s.value : 0), 0);
}

/** Distinct values of a label among a family's samples. */
export function labelValues(samples: Sample[], name: string, label: string): string[] {
  return [...new Set(samples.filter((s) => s.name === name && s.labels[label] !== undefined).map((s) => s.labels[label] as string))].sort();
}

export interface HistogramSummary {
  count: number;
  mean: number;
  p50: number;
  p99: number;
}

/** Count, mean and estimated quantiles (linear within a bucket, as PromQL's histogram_quantile). */
export function histogram(samples: Sample[], name: string, where: Record<string, string> = {}): HistogramSummary | undefined {
  const count = total(samples, `${name}_count`, where);
  if (count === 0) return undefined;
  const byLe = new Map<number, number>();
  for (const s of samples) {
    if (s.name !== `${name}_bucket` || !matches(s, where)) continue;
    const le = number(s.labels.le ?? "+Inf");
    byLe.set(le, (byLe.get(le) ?? 0) + s.value);
  }
  const buckets = [...byLe.entries()].sort((a, b) => a[0] - b[0]);
  const quantile = (q: number) => {
    const rank = q * count;
    let lower = 0;
    let below = 0;
    for (const [le, cumulative] of buckets) {
      if (cumulative >= rank) {
        if (!Number.isFinite(le)) return lower; // in +Inf: the highest finite bound is all we know
        const inBucket = cumulative - below;
        return inBucket === 0 ? le : lower + ((le - lower) * (rank - below)) / inBucket;
      }
      lower = Number.isFinite(le) ? le : lower;
      below = cumulative;
    }
    return lower;
  };
  return { count, mean: total(samples, `${name}_sum`, where) / count, p50: quantile(0.5), p99: quantile(0.99) };
}
