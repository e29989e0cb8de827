/**
 * A metric's history for the charts. Today it comes from the twin's recent readings
 * (GET /v1/devices/:id/readings); when the series API (GET /v1/series) lands, only this
 * function changes.
 */
import { type Api, seg } from "./api.ts";

export interface Point {
  /** Milliseconds since the epoch. */
  t: number;
  v: number;
  unit?: string | null;
}

interface RecentReading {
  at: string;
  metric: string;
  value: number | boolean;
  unit: string | null;
}

export async function loadHistory(api: Api, device: string, metric: string, minutes = 60): Promise<Point[]> {
  const query = new URLSearchParams({ metric, minutes: String(minutes), limit: "5000" });
  const { readings } = await api.get<{ readings: RecentReading[] }>(`/v1/devices/${seg(device)}/readings?${query}`);
  return readings
    .map((r) => ({ t: Date.parse(r.at), v: typeof r.value === "boolean" ? Number(r.value) : r.value, unit: r.unit }))
    .filter((p) => Number.isFinite(p.t) && Number.isFinite(p.v))
    .sort((a, b) => a.t - b.t);
}
