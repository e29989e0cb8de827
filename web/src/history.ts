/**
 * A metric's history for the charts: from the series store (GET /v1/series, raw readings), and
 * from the twin's recent readings (GET /v1/devices/:id/readings) when the store has none for it —
 * readings that do not ride the metrics path (motion, custom types) are kept only by the twin.
 */
import { unitOrNull } from "../../shared/display.ts";
import type { SeriesAnswer } from "../../shared/schemas/api/series.ts";
import { type Api, seg } from "./api.ts";

export interface Point {
  /** Milliseconds since the epoch. */
  t: number;
  v: number;
  /** null when the reading has no unit (shared/display.ts unitOrNull: one representation everywhere). */
  unit: string | null;
}

interface RecentReading {
  at: string;
  metric: string;
  value: number | boolean;
  unit: string | null;
}

/** The series store marks booleans "bool"; the twin gives them no unit. Neither is a unit. */
const pointUnit = (unit: string | null | undefined) => (unit === "bool" ? null : unitOrNull(unit));

const clean = (points: Point[]) => points.filter((p) => Number.isFinite(p.t) && Number.isFinite(p.v)).sort((a, b) => a.t - b.t);

async function fromSeries(api: Api, device: string, metric: string, minutes: number, bucket: string): Promise<Point[]> {
  const end = new Date();
  const start = new Date(end.getTime() - minutes * 60_000);
  const query = new URLSearchParams({ metric, device, start: start.toISOString(), end: end.toISOString(), bucket });
  if (bucket !== "raw") query.set("agg", "avg");
  const answer = await api.get<SeriesAnswer>(`/v1/series?${query}`);
  return clean(answer.series.flatMap((s) => s.points.map((p) => ({ t: Date.parse(p.time), v: p.value, unit: s.unit ?? null }))));
}

async function fromTwin(api: Api, device: string, metric: string, minutes: number): Promise<Point[]> {
  const query = new URLSearchParams({ metric, minutes: String(minutes), limit: "5000" });
  const { readings } = await api.get<{ readings: RecentReading[] }>(`/v1/devices/${seg(device)}/readings?${query}`);
  return clean(
    readings.map((r) => ({ t: Date.parse(r.at), v: typeof r.value === "boolean" ? Number(r.value) : r.value, unit: pointUnit(r.unit) })),
  );
}

/**
 * The chart ranges: the last hour reads raw readings; longer ranges read averages per bucket, and
 * buckets of whole hours are answered from the store's hourly and daily rollups (docs/series.md).
 */
export const RANGES = {
  "1h": { label: "1 h", minutes: 60, bucket: "raw" },
  "24h": { label: "24 h", minutes: 24 * 60, bucket: "5m" },
  "7d": { label: "7 d", minutes: 7 * 24 * 60, bucket: "1h" },
  "30d": { label: "30 d", minutes: 30 * 24 * 60, bucket: "6h" },
} as const;
export type RangeKey = keyof typeof RANGES;

export async function loadHistory(api: Api, device: string, metric: string, range: RangeKey = "1h"): Promise<Point[]> {
  const { minutes, bucket } = RANGES[range];
  try {
    const points = await fromSeries(api, device, metric, minutes, bucket);
    if (points.length > 0) return points;
  } catch {
    // The store is down or slow: the twin's recent readings still draw the last hour.
  }
  // The twin keeps a few recent readings at most (its limit is 7 days).
  return fromTwin(api, device, metric, Math.min(minutes, 7 * 24 * 60));
}
