/**
 * The series store on PostgreSQL — TimescaleDB in production, through Hyperdrive; plain
 * PostgreSQL works too. postgres.js tagged templates only: every value is a bound parameter;
 * the only identifiers spliced in come from whitelists, through `sql(name)`.
 *
 * Runtime-neutral: hyperdrive.ts makes its client on workerd, the benchmark in Node.
 *
 * Rows travel as one JSON parameter (`json_to_recordset`), and a write is one statement: the
 * rows, their rollup marks and the latest values, in one round trip and one transaction.
 */
import type { Sql, TransactionSql } from "postgres";
import type { SeriesRow } from "../schemas/series";
import type {
  LatestFilter,
  LatestReading,
  PartialAggregate,
  RawPoint,
  RollupResult,
  RollupState,
  SeriesFilter,
  SeriesStore,
  Source,
  TimeRange,
} from "./store";
import { DAY_MS, floorTo, HOUR_MS } from "./time";
import { newestPerKey, sortedForWrite } from "./write-plan";

const TABLES = { raw: "readings", hour: "readings_hourly", day: "readings_daily" } as const satisfies Record<Source, string>;
const GROUP_COLUMNS = { device: "device", room: "room" } as const;

const iso = (ms: number) => new Date(ms).toISOString();

/** Whether a database has TimescaleDB, per isolate: it does not change under a running Worker. */
const timescaleByDatabase = new Map<string, Promise<boolean>>();

export class PostgresSeriesStore implements SeriesStore {
  readonly kind = "postgres";
  readonly #sql: Sql;
  readonly #key: string;

  constructor(sql: Sql, key = "default") {
    this.#sql = sql;
    this.#key = key;
  }

  #timescale(): Promise<boolean> {
    let known = timescaleByDatabase.get(this.#key);
    if (!known) {
      known = this.#sql<{ ts: boolean }[]>`SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb') AS ts`.then(
        (rows) => rows[0]?.ts === true,
      );
      known.catch(() => timescaleByDatabase.delete(this.#key));
      timescaleByDatabase.set(this.#key, known);
    }
    return known;
  }

  async write(rows: readonly SeriesRow[]): Promise<number> {
    if (rows.length === 0) return 0;
    const sql = this.#sql;
    // A stable order of keys, so that two batches that overlap lock rows in the same order.
    const input = sortedForWrite(rows).map((r) => ({ ...r, time: iso(r.time) }));
    const latest = newestPerKey(rows)
      .sort((a, b) => a.device.localeCompare(b.device) || a.metric.localeCompare(b.metric))
      .map((r) => ({
        device: r.device,
        metric: r.metric,
        time: iso(r.time),
        value: r.value,
        unit: r.unit,
        room: r.room,
        message_id: r.message_id,
      }));
    const [result] = await sql<{ inserted: number }[]>`
      WITH input AS (
        SELECT * FROM json_to_recordset(${sql.json(input)}::json)
          AS t(time timestamptz, device text, metric text, value float8, unit text, message_id text, room text, tags jsonb)
      ), inserted AS (
        INSERT INTO readings (time, device, metric, value, unit, message_id, room, tags)
        SELECT time, device, metric, value, unit, message_id, room, tags FROM input
        ON CONFLICT DO NOTHING
        RETURNING 1
      ), marked AS (
        INSERT INTO series_dirty_hours (hour)
        SELECT DISTINCT date_bin(INTERVAL '1 hour', time, timestamptz 'epoch') FROM input ORDER BY 1
        ON CONFLICT DO NOTHING
      ), newest AS (
        INSERT INTO series_latest (device, metric, time, value, unit, room, message_id)
        SELECT device, metric, time, value, unit, room, message_id
        FROM json_to_recordset(${sql.json(latest)}::json)
          AS l(device text, metric text, time timestamptz, value float8, unit text, room text, message_id text)
        ON CONFLICT (device, metric) DO UPDATE SET time = excluded.time, value = excluded.value, unit = excluded.unit,
          room = excluded.room, message_id = excluded.message_id
        WHERE excluded.time > series_latest.time
      )
      SELECT count(*)::int AS inserted FROM inserted`;
    return result?.inserted ?? 0;
  }

  #filters(filter: SeriesFilter) {
    const sql = this.#sql;
    return sql`${filter.device !== undefined ? sql`AND device = ${filter.device}` : sql``}
      ${filter.room !== undefined ? sql`AND room = ${filter.room}` : sql``}`;
  }

  async partials(filter: SeriesFilter, range: TimeRange, bucketMs: number, source: Source): Promise<PartialAggregate[]> {
    const sql = this.#sql;
    const group = sql(GROUP_COLUMNS[filter.group]);
    const width = sql`make_interval(secs => ${bucketMs / 1000})`;
    const epochMs = (expression: ReturnType<typeof sql>) => sql`(extract(epoch FROM ${expression}) * 1000)::float8`;
    if (source === "raw") {
      return sql<PartialAggregate[]>`
        SELECT ${epochMs(sql`date_bin(${width}, time, timestamptz 'epoch')`)} AS bucket, ${group} AS "group",
          count(*)::float8 AS count, sum(value) AS sum, min(value) AS min, max(value) AS max,
          ${epochMs(sql`max(time)`)} AS last_time, (array_agg(value ORDER BY time DESC))[1] AS last_value, max(unit) AS unit
        FROM readings
        WHERE metric = ${filter.metric} AND time >= ${iso(range.start)} AND time < ${iso(range.end)} ${this.#filters(filter)}
        GROUP BY 1, 2`;
    }
    return sql<PartialAggregate[]>`
      SELECT ${epochMs(sql`date_bin(${width}, bucket, timestamptz 'epoch')`)} AS bucket, ${group} AS "group",
        sum(count)::float8 AS count, sum(sum) AS sum, min(min) AS min, max(max) AS max,
        ${epochMs(sql`max(last_time)`)} AS last_time, (array_agg(last_value ORDER BY last_time DESC))[1] AS last_value, max(unit) AS unit
      FROM ${sql(TABLES[source])}
      WHERE metric = ${filter.metric} AND bucket >= ${iso(range.start)} AND bucket < ${iso(range.end)} ${this.#filters(filter)}
      GROUP BY 1, 2`;
  }

  async raw(filter: SeriesFilter, range: TimeRange, limit: number): Promise<RawPoint[]> {
    const sql = this.#sql;
    return sql<RawPoint[]>`
      SELECT device, (extract(epoch FROM time) * 1000)::float8 AS time, value, unit, message_id
      FROM readings
      WHERE metric = ${filter.metric} AND time >= ${iso(range.start)} AND time < ${iso(range.end)} ${this.#filters(filter)}
      ORDER BY time, device
      LIMIT ${limit}`;
  }

  async latest(filter: LatestFilter): Promise<LatestReading[]> {
    const sql = this.#sql;
    return sql<LatestReading[]>`
      SELECT device, metric, (extract(epoch FROM time) * 1000)::float8 AS time, value, unit, room, message_id
      FROM series_latest
      WHERE true
        ${filter.metrics ? sql`AND metric IN ${sql(filter.metrics)}` : sql``}
        ${filter.device !== undefined ? sql`AND device = ${filter.device}` : sql``}
        ${filter.room !== undefined ? sql`AND room = ${filter.room}` : sql``}
      ORDER BY device, metric
      LIMIT 10000`;
  }

  async rollupState(range: TimeRange): Promise<RollupState> {
    const [row] = await this.#sql<{ rolled_until: number | null; dirty: number[] | null }[]>`
      SELECT (SELECT (extract(epoch FROM value) * 1000)::float8 FROM series_state WHERE key = 'rolled_until') AS rolled_until,
        (SELECT json_agg((extract(epoch FROM hour) * 1000)::float8) FROM series_dirty_hours
         WHERE hour >= ${iso(floorTo(range.start, HOUR_MS))} AND hour < ${iso(range.end)}) AS dirty`;
    return { rolledUntil: row?.rolled_until ?? 0, dirtyHours: row?.dirty ?? [] };
  }

  async rollup(now: number, rawHorizon: number): Promise<RollupResult> {
    const nowHour = floorTo(now, HOUR_MS);
    const horizon = floorTo(rawHorizon, HOUR_MS);
    const sql = this.#sql;
    if (await this.#timescale()) return this.#refreshContinuousAggregates(nowHour, horizon);
    // Claiming the marks by deleting them, in the same transaction as the recomputation: a
    // write that marks an hour meanwhile either waits for this commit and marks it again, or
    // is seen by it.
    const hours = await sql.begin(async (tx) => {
      const claimed = (
        await tx<{ hour: number }[]>`
          DELETE FROM series_dirty_hours WHERE hour < ${iso(nowHour)}
          RETURNING (extract(epoch FROM hour) * 1000)::float8 AS hour`
      ).map((r) => r.hour);
      const recompute = claimed.filter((h) => h >= horizon).map(iso);
      const days = [...new Set(claimed.map((h) => floorTo(h, DAY_MS)))].map(iso);
      if (recompute.length > 0) {
        await tx`DELETE FROM readings_hourly WHERE bucket IN (SELECT value::timestamptz FROM json_array_elements_text(${tx.json(recompute)}::json))`;
        await tx`
          INSERT INTO readings_hourly (bucket, device, metric, room, unit, count, sum, min, max, last_time, last_value)
          SELECT d.hour, r.device, r.metric, r.room, max(r.unit), count(*), sum(r.value), min(r.value), max(r.value), max(r.time),
            (array_agg(r.value ORDER BY r.time DESC))[1]
          FROM (SELECT value::timestamptz AS hour FROM json_array_elements_text(${tx.json(recompute)}::json)) d
          JOIN readings r ON r.time >= d.hour AND r.time < d.hour + INTERVAL '1 hour'
          GROUP BY d.hour, r.device, r.metric, r.room`;
      }
      if (days.length > 0) {
        await tx`DELETE FROM readings_daily WHERE bucket IN (SELECT value::timestamptz FROM json_array_elements_text(${tx.json(days)}::json))`;
        await tx`
          INSERT INTO readings_daily (bucket, device, metric, room, unit, count, sum, min, max, last_time, last_value)
          SELECT d.day, h.device, h.metric, h.room, max(h.unit), sum(h.count), sum(h.sum), min(h.min), max(h.max), max(h.last_time),
            (array_agg(h.last_value ORDER BY h.last_time DESC))[1]
          FROM (SELECT value::timestamptz AS day FROM json_array_elements_text(${tx.json(days)}::json)) d
          JOIN readings_hourly h ON h.bucket >= d.day AND h.bucket < d.day + INTERVAL '1 day'
          GROUP BY d.day, h.device, h.metric, h.room`;
      }
      await this.#setRolledUntil(tx, nowHour);
      return recompute.length;
    });
    return { hours, rolledUntil: nowHour };
  }

  async #setRolledUntil(sql: Sql | TransactionSql, nowHour: number): Promise<void> {
    await sql`
      INSERT INTO series_state (key, value) VALUES ('rolled_until', ${iso(nowHour)})
      ON CONFLICT (key) DO UPDATE SET value = greatest(series_state.value, excluded.value)`;
  }

  /**
   * TimescaleDB: the rollups are continuous aggregates, refreshed over the window the marks
   * span (refresh_continuous_aggregate cannot run inside a transaction, so the marks are claimed
   * first and put back when a refresh fails). NOT EXERCISED BY CI (docs/series.md).
   */
  async #refreshContinuousAggregates(nowHour: number, horizon: number): Promise<RollupResult> {
    const sql = this.#sql;
    const claimed = (
      await sql<{ hour: number }[]>`
        DELETE FROM series_dirty_hours WHERE hour < ${iso(nowHour)} RETURNING (extract(epoch FROM hour) * 1000)::float8 AS hour`
    ).map((r) => r.hour);
    const hours = claimed.filter((h) => h >= horizon);
    try {
      if (hours.length > 0) {
        const from = Math.min(...hours);
        const to = Math.max(...hours) + HOUR_MS;
        await sql`CALL refresh_continuous_aggregate('readings_hourly', ${iso(from)}::timestamptz, ${iso(to)}::timestamptz)`;
        await sql`CALL refresh_continuous_aggregate('readings_daily', ${iso(floorTo(from, DAY_MS))}::timestamptz, ${iso(floorTo(to - 1, DAY_MS) + DAY_MS)}::timestamptz)`;
      }
      await this.#setRolledUntil(sql, nowHour);
    } catch (error) {
      await sql`INSERT INTO series_dirty_hours (hour) SELECT value::timestamptz FROM json_array_elements_text(${sql.json(claimed.map(iso))}::json) ON CONFLICT DO NOTHING`;
      throw error;
    }
    return { hours: hours.length, rolledUntil: nowHour };
  }

  async prune(cutoffs: { raw: number; rollup: number }): Promise<{ raw: number; rollup: number }> {
    const sql = this.#sql;
    if (await this.#timescale()) {
      // Whole chunks only: drop_chunks is how TimescaleDB removes old data (counts are chunks).
      const raw = await sql`SELECT drop_chunks('readings', older_than => ${iso(cutoffs.raw)}::timestamptz)`;
      const hourly = await sql`SELECT drop_chunks('readings_hourly', older_than => ${iso(cutoffs.rollup)}::timestamptz)`;
      const daily = await sql`SELECT drop_chunks('readings_daily', older_than => ${iso(cutoffs.rollup)}::timestamptz)`;
      return { raw: raw.length, rollup: hourly.length + daily.length };
    }
    const raw = await sql`DELETE FROM readings WHERE time < ${iso(cutoffs.raw)}`;
    const hourly = await sql`DELETE FROM readings_hourly WHERE bucket < ${iso(cutoffs.rollup)}`;
    const daily = await sql`DELETE FROM readings_daily WHERE bucket < ${iso(cutoffs.rollup)}`;
    return { raw: raw.count, rollup: hourly.count + daily.count };
  }

  /** Ends the client; `now` cuts open connections at once (after a timeout). */
  async close(now = false): Promise<void> {
    await this.#sql.end({ timeout: now ? 0 : 5 });
  }
}
