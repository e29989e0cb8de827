/**
 * The series query API (seed 002's aggregation and time-series queries): one metric over time,
 * per device or aggregated over a room, bucketed with avg, min, max, sum, count or last; and the
 * newest reading of each device. A database failure is retried and then answered 503 with
 * Retry-After, within a time bound (seed 003), never a hang.
 */
import { Hono } from "hono";
import { readWithRetries, SeriesUnavailable } from "../../platform/series/resilience";
import { readConfig } from "../../shared/config";
import { unitOrNull } from "../../shared/display";
import { log } from "../../shared/log";
import { LatestQuery, SeriesQuery } from "../../shared/schemas/series";
import { resolveSeriesQuery, runSeriesQuery } from "../../shared/series/query";
import type { SeriesStore } from "../../shared/series/store";
import { ApiError } from "../errors";
import { type AppEnv, requireRole } from "../middleware/auth";
import { validate } from "../validate";

/** A read of the series store, with its failures as the HTTP layer's 503. */
export async function readSeries<T>(env: Env, op: (store: SeriesStore) => Promise<T>): Promise<T> {
  try {
    return await readWithRetries(env, op);
  } catch (error) {
    if (!(error instanceof SeriesUnavailable)) throw error;
    log("error", "series read failed", { error: error.message });
    throw new ApiError("unavailable", `${error.message}; retry after ${error.retryAfterSeconds} s`, {
      headers: { "retry-after": String(error.retryAfterSeconds) },
    });
  }
}

const iso = (ms: number) => new Date(ms).toISOString();

export const seriesRoutes = new Hono<AppEnv>()
  .use(requireRole("viewer"))
  .get("/", validate("query", SeriesQuery), async (c) => {
    const config = readConfig(c.env);
    const resolved = resolveSeriesQuery(c.req.valid("query"), Date.now(), {
      maxPoints: config.SERIES_MAX_POINTS,
      maxRangeDays: config.SERIES_MAX_RANGE_DAYS,
      rawRetentionDays: config.SERIES_RAW_RETENTION_DAYS,
    });
    if (!resolved.ok) throw ApiError.field("invalid_query", resolved.path, resolved.message);
    const answer = await readSeries(c.env, (store) => runSeriesQuery(store, resolved.query));
    // "No unit" is null in every answer, as the twin and live updates have it (the store keeps '').
    return c.json({ ...answer, series: answer.series.map((s) => ({ ...s, unit: unitOrNull(s.unit) })) });
  })
  .get("/latest", validate("query", LatestQuery), async (c) => {
    const q = c.req.valid("query");
    const rows = await readSeries(c.env, (store) => store.latest({ metrics: q.metric, device: q.device, room: q.room }));
    return c.json({
      readings: rows.map((r) => ({
        device: r.device,
        metric: r.metric,
        time: iso(r.time),
        value: r.value,
        unit: unitOrNull(r.unit),
        room: r.room,
      })),
    });
  });
