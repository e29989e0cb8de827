/** What the series API answers (GET /v1/series, GET /v1/series/latest; docs/series.md). */
import { z } from "zod";
import { Aggregate } from "../series.ts";

export const SeriesOut = z.object({
  device: z.string().optional(),
  room: z.string().optional(),
  unit: z.string(),
  points: z.array(z.object({ time: z.string(), value: z.number(), count: z.number().optional() })),
});
export type SeriesOut = z.infer<typeof SeriesOut>;

export const SeriesAnswer = z.object({
  metric: z.string(),
  agg: z.union([Aggregate, z.literal("none")]),
  bucket: z.string(),
  start: z.string(),
  end: z.string(),
  group: z.enum(["device", "room"]),
  /** Raw readings only: more readings matched than `limit`. */
  truncated: z.boolean(),
  series: z.array(SeriesOut),
});
export type SeriesAnswer = z.infer<typeof SeriesAnswer>;

export const LatestAnswer = z.object({
  readings: z.array(
    z.object({
      device: z.string(),
      metric: z.string(),
      time: z.string(),
      value: z.number(),
      unit: z.string(),
      room: z.string().nullable(),
    }),
  ),
});
export type LatestAnswer = z.infer<typeof LatestAnswer>;
