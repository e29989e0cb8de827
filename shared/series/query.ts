/**
 * Series queries above the stores, shared by both: resolving the query API's parameters against
 * the limits, planning which parts of a range come from the rollups and which from raw readings,
 * merging their partial aggregates, and computing the aggregate asked for.
 *
 * Rollups cover whole hours (and days) before the last rollup run; a bucket that is a multiple
 * of an hour (or a day) reads them for the whole hours (days) of the range they cover, and raw
 * readings for the rest and for the hours written since that run (late readings) — so an answer
 * is the same whichever parts it was read from, as long as raw readings exist, and old ranges
 * stay answerable after raw retention pruned them.
 */
import type { SeriesAnswer } from "../schemas/api/series";
import type { Aggregate, Bucket, SeriesQuery } from "../schemas/series";
import type { PartialAggregate, RollupState, SeriesFilter, SeriesStore, Source, TimeRange } from "./store";
import { ceilTo, DAY_MS, floorTo, HOUR_MS, SECOND_MS } from "./time";

export interface SeriesLimits {
  /** Most points in one series. */
  maxPoints: number;
  /** Longest range one query may cover. */
  maxRangeDays: number;
  /** SERIES_RAW_RETENTION_DAYS: before this, raw readings may be pruned and rollups are the truth. */
  rawRetentionDays: number;
}

export interface ResolvedQuery {
  filter: SeriesFilter;
  range: TimeRange;
  /** 0 for raw readings. */
  bucketMs: number;
  bucketText: string;
  agg: Aggregate;
  limit: number;
  /** Raw readings before this may be pruned already (see planParts). */
  rawHorizon: number;
}

export type Resolution = { ok: true; query: ResolvedQuery } | { ok: false; path: string; message: string };

const AUTO_BUCKETS = ["1m", "5m", "15m", "1h", "6h", "1d", "7d"] as const;
const AUTO_TARGET_POINTS = 500;
const DEFAULT_RANGE_MS = DAY_MS;
const AUTO_SECONDS: Record<(typeof AUTO_BUCKETS)[number], number> = {
  "1m": 60,
  "5m": 300,
  "15m": 900,
  "1h": 3600,
  "6h": 21_600,
  "1d": 86_400,
  "7d": 604_800,
};

function autoBucket(rangeMs: number): Bucket {
  for (const text of AUTO_BUCKETS) {
    const seconds = AUTO_SECONDS[text];
    if (Math.ceil(rangeMs / (seconds * SECOND_MS)) <= AUTO_TARGET_POINTS) return { text, seconds };
  }
  return { text: "7d", seconds: AUTO_SECONDS["7d"] };
}

/** Defaults and limits: the last 24 hours, at most `maxPoints` per series; problems name the parameter. */
export function resolveSeriesQuery(q: SeriesQuery, now: number, limits: SeriesLimits): Resolution {
  const end = q.end ? Date.parse(q.end) : now;
  const start = q.start ? Date.parse(q.start) : end - DEFAULT_RANGE_MS;
  if (start >= end) return { ok: false, path: q.end ? "end" : "start", message: "start must be before end" };
  if (end - start > limits.maxRangeDays * DAY_MS) {
    return { ok: false, path: "start", message: `the range is over ${limits.maxRangeDays} days (SERIES_MAX_RANGE_DAYS)` };
  }
  if (q.limit !== undefined && q.limit > limits.maxPoints) {
    return { ok: false, path: "limit", message: `must be at most ${limits.maxPoints} (SERIES_MAX_POINTS)` };
  }
  const limit = q.limit ?? limits.maxPoints;
  const bucket = q.bucket ?? autoBucket(end - start);
  const bucketMs = bucket.seconds * SECOND_MS;
  if (bucketMs > 0) {
    // Buckets start at multiples of their size; a range that cuts one still counts it.
    const buckets = (ceilTo(end, bucketMs) - floorTo(start, bucketMs)) / bucketMs;
    if (buckets > limit) {
      return {
        ok: false,
        path: "bucket",
        message: `${bucket.text} buckets over this range are ${buckets} points; the limit is ${limit}: use a larger bucket or a shorter range`,
      };
    }
  }
  const group = q.room !== undefined && q.device === undefined ? "room" : "device";
  return {
    ok: true,
    query: {
      filter: { metric: q.metric, device: q.device, room: q.room, group },
      range: { start, end },
      bucketMs,
      bucketText: bucket.text,
      agg: q.agg,
      limit,
      rawHorizon: floorTo(now - limits.rawRetentionDays * DAY_MS, HOUR_MS),
    },
  };
}

export interface PlannedPart {
  source: Source;
  range: TimeRange;
}

const LEVEL_MS = { day: DAY_MS, hour: HOUR_MS } as const;
/** Past this many parts a query reads raw readings for the whole range rather than many small pieces. */
const MAX_PARTS = 16;

/**
 * Which parts of the range each source answers: rollups for the whole hours (days) rolled up,
 * except the hours (days) written since the last rollup run, and raw readings for the rest.
 * Hours written before `rawHorizon` stay with the rollups: their raw readings may be pruned, so
 * raw would hold only the late reading (the next run leaves them out as well).
 */
export function planParts(range: TimeRange, bucketMs: number, state: RollupState, rawHorizon = 0): PlannedPart[] {
  const levels: ("day" | "hour")[] =
    bucketMs > 0 && bucketMs % DAY_MS === 0 ? ["day", "hour"] : bucketMs > 0 && bucketMs % HOUR_MS === 0 ? ["hour"] : [];
  const plan = (r: TimeRange, rest: ("day" | "hour")[]): PlannedPart[] => {
    const [level, ...lower] = rest;
    if (!level) return [{ source: "raw", range: r }];
    const size = LEVEL_MS[level];
    const from = ceilTo(r.start, size);
    const to = Math.min(floorTo(r.end, size), floorTo(state.rolledUntil, size));
    if (from >= to) return plan(r, lower);
    const parts: PlannedPart[] = r.start < from ? plan({ start: r.start, end: from }, lower) : [];
    const stale = [...new Set(state.dirtyHours.filter((h) => h >= from && h < to && h >= rawHorizon).map((h) => floorTo(h, size)))].sort(
      (a, b) => a - b,
    );
    let cursor = from;
    for (const bucket of stale) {
      if (cursor < bucket) parts.push({ source: level, range: { start: cursor, end: bucket } });
      parts.push(...plan({ start: bucket, end: bucket + size }, lower));
      cursor = bucket + size;
    }
    if (cursor < to) parts.push({ source: level, range: { start: cursor, end: to } });
    if (to < r.end) parts.push(...plan({ start: to, end: r.end }, lower));
    return parts;
  };
  const parts: PlannedPart[] = [];
  for (const part of plan(range, levels)) {
    const previous = parts.at(-1);
    if (previous && previous.source === part.source && previous.range.end === part.range.start)
      previous.range = { ...previous.range, end: part.range.end };
    else parts.push(part);
  }
  return parts.length > MAX_PARTS ? [{ source: "raw", range }] : parts;
}

/** Combines partial aggregates of the same group and bucket (from different parts of a range). */
export function mergePartials(parts: readonly PartialAggregate[]): PartialAggregate[] {
  const merged = new Map<string, PartialAggregate>();
  for (const p of parts) {
    const key = `${p.group ?? ""}\u0000${p.bucket}`;
    const seen = merged.get(key);
    if (!seen) {
      merged.set(key, { ...p });
      continue;
    }
    seen.count += p.count;
    seen.sum += p.sum;
    seen.min = Math.min(seen.min, p.min);
    seen.max = Math.max(seen.max, p.max);
    if (p.last_time > seen.last_time) {
      seen.last_time = p.last_time;
      seen.last_value = p.last_value;
    }
    if (!seen.unit) seen.unit = p.unit;
  }
  return [...merged.values()].sort((a, b) => (a.group ?? "").localeCompare(b.group ?? "") || a.bucket - b.bucket);
}

export function aggregateOf(p: PartialAggregate, agg: Aggregate): number {
  switch (agg) {
    case "avg":
      return p.sum / p.count;
    case "min":
      return p.min;
    case "max":
      return p.max;
    case "sum":
      return p.sum;
    case "count":
      return p.count;
    case "last":
      return p.last_value;
  }
}

export type { SeriesAnswer, SeriesOut } from "../schemas/api/series";

/** Bucketed partials for a resolved query, read from the parts planned against the rollups. */
export async function readPartials(store: SeriesStore, q: ResolvedQuery): Promise<PartialAggregate[]> {
  const state = q.bucketMs % HOUR_MS === 0 ? await store.rollupState(q.range) : { rolledUntil: 0, dirtyHours: [] };
  const parts = planParts(q.range, q.bucketMs, state, q.rawHorizon);
  const results = await Promise.all(parts.map((part) => store.partials(q.filter, part.range, q.bucketMs, part.source)));
  return mergePartials(results.flat());
}

const iso = (ms: number) => new Date(ms).toISOString();

export async function runSeriesQuery(store: SeriesStore, q: ResolvedQuery): Promise<SeriesAnswer> {
  const base = {
    metric: q.filter.metric,
    bucket: q.bucketText,
    start: iso(q.range.start),
    end: iso(q.range.end),
    group: q.filter.group,
  };
  if (q.bucketMs === 0) {
    const rows = await store.raw(q.filter, q.range, q.limit + 1);
    const truncated = rows.length > q.limit;
    const byDevice = Map.groupBy(rows.slice(0, q.limit), (r) => r.device);
    return {
      ...base,
      agg: "none",
      group: "device",
      truncated,
      series: [...byDevice.entries()]
        .sort(([a], [b]) => a.localeCompare(b))
        .map(([device, points]) => ({
          device,
          unit: points.at(-1)?.unit ?? "",
          points: points.map((p) => ({ time: iso(p.time), value: p.value })),
        })),
    };
  }
  const partials = await readPartials(store, q);
  const byGroup = Map.groupBy(partials, (p) => p.group ?? "");
  return {
    ...base,
    agg: q.agg,
    truncated: false,
    series: [...byGroup.entries()].map(([group, points]) => ({
      ...(q.filter.group === "room" ? { room: group } : { device: group }),
      unit: points.find((p) => p.unit)?.unit ?? "",
      points: points.map((p) => ({ time: iso(p.bucket), value: aggregateOf(p, q.agg), count: p.count })),
    })),
  };
}
