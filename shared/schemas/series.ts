/**
 * The series store's contract: one stored reading, and the query API's parameters. The single
 * source of these types; the stores, the sink and the routes infer theirs from here.
 */
import { z } from "zod";
import { Slug } from "./device";
import { DeviceId, MetricName, Timestamp } from "./message";

/** One reading as the series store keeps it: the narrow table of docs/series.md. */
export const SeriesRow = z.strictObject({
  /** Device time, milliseconds since the epoch. */
  time: z.int(),
  device: z.string().min(1).max(128),
  metric: MetricName,
  value: z.number(),
  /** Canonical unit after the transformer ("°C", "kWh"), "bool" for booleans, "" when none. */
  unit: z.string().max(16),
  message_id: z.string().min(1).max(128),
  room: z.string().max(64).nullable(),
  /** Small, flat context: the routing key, the original unit, the message's metadata. */
  tags: z.record(z.string(), z.union([z.string(), z.number(), z.boolean(), z.null()])),
});
export type SeriesRow = z.infer<typeof SeriesRow>;

export const AGGREGATES = ["avg", "min", "max", "sum", "count", "last"] as const;
export const Aggregate = z.enum(AGGREGATES, { message: `must be one of ${AGGREGATES.join(", ")}` });
export type Aggregate = z.infer<typeof Aggregate>;

const UNIT_SECONDS = { s: 1, m: 60, h: 3600, d: 86_400 } as const;

/** `raw`, or a duration: `30s`, `5m`, `1h`, `1d` (at most 366 days). */
export const Bucket = z
  .string()
  .regex(/^(raw|[1-9][0-9]{0,5}[smhd])$/, { message: "must be raw or a duration like 30s, 5m, 1h, 1d" })
  .transform((text, ctx) => {
    if (text === "raw") return { text, seconds: 0 };
    const seconds = Number(text.slice(0, -1)) * UNIT_SECONDS[text.at(-1) as keyof typeof UNIT_SECONDS];
    if (seconds > 366 * 86_400) {
      ctx.addIssue({ code: "custom", message: "must be at most 366d" });
      return z.NEVER;
    }
    return { text, seconds };
  });
export type Bucket = z.infer<typeof Bucket>;

/** `GET /v1/series`: one metric over time, per device or aggregated over a room. */
export const SeriesQuery = z.strictObject({
  metric: MetricName,
  device: DeviceId.optional(),
  room: Slug.optional(),
  start: Timestamp.optional(),
  end: Timestamp.optional(),
  /** Absent: the smallest of 1m, 5m, 15m, 1h, 6h, 1d, 7d that gives at most 500 buckets. */
  bucket: Bucket.optional(),
  agg: Aggregate.default("avg"),
  /** Most points per series (raw: readings; bucketed: buckets); at most SERIES_MAX_POINTS. */
  limit: z.coerce.number().int().min(1).optional(),
});
export type SeriesQuery = z.infer<typeof SeriesQuery>;

/** `GET /v1/series/latest`: the newest reading of each device and metric. */
export const LatestQuery = z.strictObject({
  metric: z
    .string()
    .max(1100)
    .transform((text) => text.split(","))
    .pipe(z.array(MetricName).min(1).max(16))
    .optional(),
  device: DeviceId.optional(),
  room: Slug.optional(),
});
export type LatestQuery = z.infer<typeof LatestQuery>;

/** Seed 004: `GET /api/v1/energy/hourly?start=&end=`. */
export const EnergyHourlyQuery = z.strictObject({
  start: Timestamp.optional(),
  end: Timestamp.optional(),
  device: DeviceId.optional(),
});
export type EnergyHourlyQuery = z.infer<typeof EnergyHourlyQuery>;
