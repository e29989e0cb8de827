/**
 * A metric's history for the charts: from the series store (GET /v1/series, raw readings), and
 * from the twin's recent readings (GET /v1/devices/:id/readings) when the store has none for it —
 * readings that do not ride the metrics path (motion, custom types) are kept only by the twin.
 */
import { unitOrNull } from "../../shared/display.ts";
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

interface SeriesAnswer {
  series: { device?: string; unit?: string | null; points: { time: string; value: number }[] }[];
}

/** The series store marks booleans "bool"; the twin gives them no unit. Neither is a unit. */
const pointUnit = (unit: string | null | undefined) => (unit === "bool" ? null : unitOrNull(unit));

const clean = (points: Point[]) => points.filter((p) => Number.isFinite(p.t) && Number.isFinite(p.v)).sort((a, b) => a.t - b.t);

async function fromSeries(api: Api, device: string, metric: string, minutes: number): Promise<Point[]> {
  const end = new Date();
  const start = new Date(end.getTime() - minutes * 60_000);
  const query = new URLSearchParams({ metric, device, start: start.toISOString(), end: end.toISOString(), bucket: "raw" });
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

export async function loadHistory(api: Api, device: string, metric: string, minutes = 60): Promise<Point[]> {
  try {
    const points = await fromSeries(api, device, metric, minutes);
    if (points.length > 0) return points;
  } catch {
    // The store is down or slow: the twin's recent readings still draw the last hour.
  }
  return fromTwin(api, device, metric, minutes);
}
