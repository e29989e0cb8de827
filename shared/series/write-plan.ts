/** What a write derives from its rows besides the rows themselves, the same for both stores. */
import type { SeriesRow } from "../schemas/series";
import { floorTo, HOUR_MS } from "./time";

/** The hours the rows fall in: each is marked for the next rollup run. */
export function distinctHours(rows: readonly SeriesRow[]): number[] {
  return [...new Set(rows.map((r) => floorTo(r.time, HOUR_MS)))].sort((a, b) => a - b);
}

/**
 * The newest row of each device and metric. PostgreSQL refuses to upsert one key twice in a
 * statement, and there is no point sending older values to be discarded anyway.
 */
export function newestPerKey(rows: readonly SeriesRow[]): SeriesRow[] {
  const newest = new Map<string, SeriesRow>();
  for (const row of rows) {
    const key = `${row.device}\u0000${row.metric}`;
    const seen = newest.get(key);
    if (!seen || row.time > seen.time) newest.set(key, row);
  }
  return [...newest.values()];
}

/** Rows in key order (device, metric, time, message id): concurrent writes lock keys in one order. */
export function sortedForWrite(rows: readonly SeriesRow[]): SeriesRow[] {
  const text = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
  return [...rows].sort(
    (a, b) => text(a.device, b.device) || text(a.metric, b.metric) || a.time - b.time || text(a.message_id, b.message_id),
  );
}
