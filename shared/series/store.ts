/**
 * The series store: one interface, two implementations — TimescaleDB/PostgreSQL through
 * Hyperdrive when the Worker has a HYPERDRIVE binding, the embedded D1 database otherwise. The
 * query planning, merging and aggregation above it (query.ts) are shared, so both answer alike;
 * one test suite runs against both (test/workers/series/). This file is the interface only: the
 * factory that picks a backend is platform/series/open.ts (it needs workerd's sockets).
 *
 * Times are milliseconds since the epoch throughout; buckets start at multiples of their size
 * from the epoch (UTC), so hours and days line up with the rollups.
 */
import type { SeriesRow } from "../schemas/series";

/** What a query is about. `group` names the column a series is per: device, or room (aggregated). */
export interface SeriesFilter {
  metric: string;
  device?: string;
  room?: string;
  group: "device" | "room";
}

/** [start, end) in milliseconds. */
export interface TimeRange {
  start: number;
  end: number;
}

/**
 * Partial aggregates of one group in one bucket. Partials from raw rows and from rollups merge
 * (mergePartials) into the same answer, which is what lets a query read rollups for old whole
 * hours and raw rows for the rest.
 */
export interface PartialAggregate {
  group: string | null;
  bucket: number;
  count: number;
  sum: number;
  min: number;
  max: number;
  last_time: number;
  last_value: number;
  unit: string;
}

/** Where partials come from: raw readings, or the hourly or daily rollup. */
export type Source = "raw" | "hour" | "day";

export interface RawPoint {
  device: string;
  time: number;
  value: number;
  unit: string;
  message_id: string;
}

export interface LatestReading {
  device: string;
  metric: string;
  time: number;
  value: number;
  unit: string;
  room: string | null;
  message_id: string;
}

export interface LatestFilter {
  metrics?: readonly string[];
  device?: string;
  room?: string;
}

export interface RollupState {
  rolledUntil: number;
  /** Hour starts in the range written to since the last rollup run. */
  dirtyHours: number[];
}

export interface RollupResult {
  /** Hours recomputed. */
  hours: number;
  /** Everything before this is in the rollups (an hour boundary). */
  rolledUntil: number;
}

export interface SeriesStore {
  readonly kind: "d1" | "postgres";
  /**
   * Stores rows, each at most once: a row whose (device, metric, time, message id) is stored
   * already is skipped, so redeliveries and replays change nothing. Marks the hours written as
   * needing a rollup. Answers how many rows were new.
   */
  write(rows: readonly SeriesRow[]): Promise<number>;
  /** Partial aggregates per group and bucket (`bucketMs` a multiple of the source's resolution). */
  partials(filter: SeriesFilter, range: TimeRange, bucketMs: number, source: Source): Promise<PartialAggregate[]>;
  /** Raw readings, oldest first, at most `limit`. */
  raw(filter: SeriesFilter, range: TimeRange, limit: number): Promise<RawPoint[]>;
  /** The newest reading of each device and metric. */
  latest(filter: LatestFilter): Promise<LatestReading[]>;
  /**
   * What the rollups hold for a range: they are complete before `rolledUntil` (0: never rolled
   * up), except for the hours written since the last run (`dirtyHours`), which queries read raw.
   */
  rollupState(range: TimeRange): Promise<RollupState>;
  /**
   * Recomputes the hourly and daily rollups of every hour written since the last run, before the
   * current hour; hours older than `rawHorizon` (whose raw rows retention may have pruned) are
   * never recomputed, so that a late reading cannot shrink a rollup to itself.
   */
  rollup(now: number, rawHorizon: number): Promise<RollupResult>;
  /** Deletes raw rows before `raw` and rollup rows before `rollup`. */
  prune(cutoffs: { raw: number; rollup: number }): Promise<{ raw: number; rollup: number }>;
  /** Releases connections (Postgres; `now` cuts them without waiting); a no-op for D1. */
  close(now?: boolean): Promise<void>;
}

/** The Hyperdrive binding is optional: absent from the default wrangler.toml (docs/series.md). */
export function hyperdriveOf(env: object): Hyperdrive | undefined {
  const binding = (env as { HYPERDRIVE?: Hyperdrive }).HYPERDRIVE;
  return binding && typeof binding.connectionString === "string" ? binding : undefined;
}

export function seriesBackend(env: object): SeriesStore["kind"] {
  return hyperdriveOf(env) ? "postgres" : "d1";
}
