/**
 * The series store on D1, the embedded default. Rows travel as one JSON parameter per statement
 * (`json_each`), so a batch of any size is a handful of statements, never hundreds, and no
 * value is ever spliced into SQL; only whitelisted column and table names are.
 *
 * Readings are stored packed (infra/migrations/d1/0016_series_packed.sql): one row per device and
 * 10-minute block, a JSON object keyed by message id merged with json_patch (idempotent on the
 * message id). Queries read the `readings` view that unpacks them, bounded by block as well as
 * by time so that only the blocks of the range are unpacked.
 */
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
import { distinctHours, newestPerKey } from "./write-plan";

/** Rows per statement: keeps the JSON parameter well under D1's 2 MB value limit. */
const ROWS_PER_STATEMENT = 1000;

/** The span of one packed row: 10 minutes (divides an hour, so rollups and retention see whole blocks). */
export const BLOCK_MS = 10 * 60_000;

/** A block row is sealed past this size and the block goes on in its next part (D1 rows hold 2 MB). */
const SEAL_BYTES = 1_000_000;

/** A block's entries: message id → [room, [[offset_ms, metric, value, unit], ...]]. */
type BlockEntries = Record<string, [room: string | null, readings: [offset: number, metric: string, value: number, unit: string][]]>;

interface Block {
  device: string;
  block: number;
  entries: BlockEntries;
  /** Readings in it, per message id (for counting what was new). */
  counts: Map<string, number>;
}

/** Groups rows into their blocks; a reading named twice (same message, metric and time) counts once. */
export function packRows(rows: readonly SeriesRow[]): Block[] {
  const blocks = new Map<string, Block>();
  const seen = new Set<string>();
  for (const r of rows) {
    const block = r.time - (((r.time % BLOCK_MS) + BLOCK_MS) % BLOCK_MS);
    const key = `${r.device}\u0000${block}`;
    const reading = `${key}\u0000${r.message_id}\u0000${r.metric}\u0000${r.time}`;
    if (seen.has(reading)) continue;
    seen.add(reading);
    let b = blocks.get(key);
    if (!b) {
      b = { device: r.device, block, entries: {}, counts: new Map() };
      blocks.set(key, b);
    }
    const entry = b.entries[r.message_id] ?? [r.room, []];
    b.entries[r.message_id] = entry;
    entry[1].push([r.time - block, r.metric, r.value, r.unit]);
    b.counts.set(r.message_id, (b.counts.get(r.message_id) ?? 0) + 1);
  }
  return [...blocks.values()];
}

const TABLES: Record<Source, string> = { raw: "readings", hour: "readings_hourly", day: "readings_daily" };
const GROUP_COLUMNS = { device: "device", room: "room" } as const;

function where(filter: SeriesFilter, timeColumn: string, range: TimeRange): { sql: string; params: unknown[] } {
  const clauses = [`metric = ?`, `${timeColumn} >= ?`, `${timeColumn} < ?`];
  const params: unknown[] = [filter.metric, range.start, range.end];
  // Raw readings: only the blocks that can hold the range are unpacked.
  if (timeColumn === "time") clauses.push("block > ?", "block < ?") && params.push(range.start - BLOCK_MS, range.end);
  if (filter.device !== undefined) clauses.push("device = ?") && params.push(filter.device);
  if (filter.room !== undefined) clauses.push("room = ?") && params.push(filter.room);
  return { sql: clauses.join(" AND "), params };
}

export class D1SeriesStore implements SeriesStore {
  readonly kind = "d1";
  readonly #db: D1Database;
  readonly #sealBytes: number;

  constructor(db: D1Database, options: { sealBytes?: number } = {}) {
    this.#db = db;
    this.#sealBytes = options.sealBytes ?? SEAL_BYTES;
  }

  async write(rows: readonly SeriesRow[]): Promise<number> {
    if (rows.length === 0) return 0;
    const blocks = packRows(rows);
    const statements: D1PreparedStatement[] = [];
    let chunk: Block[] = [];
    let inChunk = 0;
    const flush = () => {
      if (chunk.length === 0) return;
      const present = chunk.flatMap((b) => [...b.counts].map(([id, n]) => [b.device, b.block, id, n]));
      // Read first, in the same transaction: the readings of messages a block holds already.
      statements.push(
        this.#db
          .prepare(
            `SELECT coalesce(sum(j.value ->> 3), 0) AS existing FROM json_each(?1) j
             JOIN reading_blocks b ON b.device = j.value ->> 0 AND b.block = j.value ->> 1
             WHERE json_type(b.readings, '$."' || (j.value ->> 2) || '"') IS NOT NULL`,
          )
          .bind(JSON.stringify(present)),
      );
      // Into the newest part of each block, merged (json_patch), leaving out messages an older
      // part holds: one statement, so nothing can slip between the check and the write.
      const entries = chunk.flatMap((b) => Object.entries(b.entries).map(([id, entry]) => [b.device, b.block, id, entry]));
      statements.push(
        this.#db
          .prepare(
            `INSERT INTO reading_blocks (device, block, part, readings)
             SELECT e.device, e.block, e.part, json_group_object(e.id, json(e.entry))
             FROM (SELECT j.value ->> 0 AS device, j.value ->> 1 AS block, j.value ->> 2 AS id, j.value ->> 3 AS entry,
                     coalesce((SELECT max(p.part) FROM reading_blocks p WHERE p.device = j.value ->> 0 AND p.block = j.value ->> 1), 0) AS part
                   FROM json_each(?1) j) e
             WHERE NOT EXISTS (SELECT 1 FROM reading_blocks s WHERE s.device = e.device AND s.block = e.block AND s.part < e.part
                                 AND json_type(s.readings, '$."' || e.id || '"') IS NOT NULL)
             GROUP BY e.device, e.block, e.part
             ON CONFLICT (device, block, part) DO UPDATE SET readings = json_patch(readings, excluded.readings)`,
          )
          .bind(JSON.stringify(entries)),
      );
      // A newest part past the seal size gets an empty successor, where the next writes go.
      statements.push(
        this.#db
          .prepare(
            `INSERT OR IGNORE INTO reading_blocks (device, block, part, readings)
             SELECT b.device, b.block, b.part + 1, '{}' FROM reading_blocks b
             JOIN (SELECT DISTINCT value ->> 0 AS device, value ->> 1 AS block FROM json_each(?1)) k ON b.device = k.device AND b.block = k.block
             WHERE length(b.readings) > ?2
               AND NOT EXISTS (SELECT 1 FROM reading_blocks n WHERE n.device = b.device AND n.block = b.block AND n.part > b.part)`,
          )
          .bind(JSON.stringify(chunk.map((b) => [b.device, b.block])), this.#sealBytes),
      );
      chunk = [];
      inChunk = 0;
    };
    for (const b of blocks) {
      const n = [...b.counts.values()].reduce((a, c) => a + c, 0);
      if (inChunk + n > ROWS_PER_STATEMENT) flush();
      chunk.push(b);
      inChunk += n;
    }
    flush();
    const total = blocks.reduce((a, b) => a + [...b.counts.values()].reduce((x, c) => x + c, 0), 0);
    const inserts = statements.length;
    statements.push(
      this.#db
        .prepare("INSERT OR IGNORE INTO series_dirty_hours (hour) SELECT value FROM json_each(?1)")
        .bind(JSON.stringify(distinctHours(rows))),
    );
    // The newest values, one packed row per device (0018_series_latest_packed.sql): a metric's
    // entry is replaced only by a newer one.
    const latest = new Map<string, Record<string, [number, number, string, string | null, string]>>();
    for (const r of newestPerKey(rows)) {
      const own = latest.get(r.device) ?? {};
      own[r.metric] = [r.time, r.value, r.unit, r.room, r.message_id];
      latest.set(r.device, own);
    }
    statements.push(
      this.#db
        .prepare(
          `INSERT INTO series_latest_packed (device, metrics)
           SELECT value ->> 0, value ->> 1 FROM json_each(?1) WHERE true
           ON CONFLICT (device) DO UPDATE SET metrics = (
             SELECT json_group_object(k, json(v)) FROM (
               SELECT o.key AS k, o.value AS v FROM json_each(series_latest_packed.metrics) o
                 WHERE NOT EXISTS (SELECT 1 FROM json_each(excluded.metrics) n WHERE n.key = o.key AND n.value ->> 0 > o.value ->> 0)
               UNION ALL
               SELECT n.key, n.value FROM json_each(excluded.metrics) n
                 WHERE NOT EXISTS (SELECT 1 FROM json_each(series_latest_packed.metrics) o WHERE o.key = n.key AND o.value ->> 0 >= n.value ->> 0)))
           WHERE EXISTS (SELECT 1 FROM json_each(excluded.metrics) n
             WHERE coalesce(series_latest_packed.metrics ->> ('$."' || n.key || '"[0]'), -1) < n.value ->> 0)`,
        )
        .bind(JSON.stringify([...latest].map(([device, metrics]) => [device, JSON.stringify(metrics)]))),
    );
    // One batch is one transaction: rows, rollup marks and latest values land together or not at all.
    const results = await this.#db.batch(statements);
    let existing = 0;
    for (let i = 0; i < inserts; i += 3) existing += (results[i]?.results?.[0] as { existing: number } | undefined)?.existing ?? 0;
    return total - existing;
  }

  async partials(filter: SeriesFilter, range: TimeRange, bucketMs: number, source: Source): Promise<PartialAggregate[]> {
    const group = GROUP_COLUMNS[filter.group];
    const table = TABLES[source];
    const w = where(filter, source === "raw" ? "time" : "bucket", range);
    // The last value of a bucket is the one with the newest time: the row numbered 1 from the end.
    const sql =
      source === "raw"
        ? `SELECT b AS bucket, grp AS "group", count(*) AS count, sum(value) AS sum, min(value) AS min, max(value) AS max,
             max(time) AS last_time, max(CASE WHEN rn = 1 THEN value END) AS last_value, max(unit) AS unit
           FROM (SELECT time - time % ? AS b, ${group} AS grp, time, value, unit,
                   row_number() OVER (PARTITION BY time - time % ?, ${group} ORDER BY time DESC) AS rn
                 FROM readings WHERE ${w.sql})
           GROUP BY b, grp`
        : `SELECT b AS bucket, grp AS "group", sum(count) AS count, sum(sum) AS sum, min(min) AS min, max(max) AS max,
             max(last_time) AS last_time, max(CASE WHEN rn = 1 THEN last_value END) AS last_value, max(unit) AS unit
           FROM (SELECT bucket - bucket % ? AS b, ${group} AS grp, count, sum, min, max, last_time, last_value, unit,
                   row_number() OVER (PARTITION BY bucket - bucket % ?, ${group} ORDER BY last_time DESC) AS rn
                 FROM ${table} WHERE ${w.sql})
           GROUP BY b, grp`;
    const { results } = await this.#db
      .prepare(sql)
      .bind(bucketMs, bucketMs, ...w.params)
      .all<PartialAggregate>();
    return results;
  }

  async raw(filter: SeriesFilter, range: TimeRange, limit: number): Promise<RawPoint[]> {
    const w = where(filter, "time", range);
    const { results } = await this.#db
      .prepare(`SELECT device, time, value, unit, message_id FROM readings WHERE ${w.sql} ORDER BY time, device LIMIT ?`)
      .bind(...w.params, limit)
      .all<RawPoint>();
    return results;
  }

  async latest(filter: LatestFilter): Promise<LatestReading[]> {
    const clauses: string[] = [];
    const params: unknown[] = [];
    if (filter.metrics) clauses.push("metric IN (SELECT value FROM json_each(?))") && params.push(JSON.stringify(filter.metrics));
    if (filter.device !== undefined) clauses.push("device = ?") && params.push(filter.device);
    if (filter.room !== undefined) clauses.push("room = ?") && params.push(filter.room);
    const { results } = await this.#db
      .prepare(
        `SELECT device, metric, time, value, unit, room, message_id FROM series_latest
         ${clauses.length ? `WHERE ${clauses.join(" AND ")}` : ""} ORDER BY device, metric LIMIT 10000`,
      )
      .bind(...params)
      .all<LatestReading>();
    return results;
  }

  async rollupState(range: TimeRange): Promise<RollupState> {
    const row = await this.#db
      .prepare(
        `SELECT (SELECT value FROM series_state WHERE key = 'rolled_until') AS rolled_until,
           (SELECT json_group_array(hour) FROM series_dirty_hours WHERE hour >= ?1 AND hour < ?2) AS dirty`,
      )
      .bind(floorTo(range.start, HOUR_MS), range.end)
      .first<{ rolled_until: number | null; dirty: string }>();
    return { rolledUntil: row?.rolled_until ?? 0, dirtyHours: JSON.parse(row?.dirty ?? "[]") as number[] };
  }

  async rollup(now: number, rawHorizon: number): Promise<RollupResult> {
    const nowHour = floorTo(now, HOUR_MS);
    const horizon = floorTo(rawHorizon, HOUR_MS);
    const claimed = "SELECT hour FROM series_dirty_hours WHERE hour < ?1";
    const db = this.#db;
    // One batch, one transaction: nothing the sink writes meanwhile can slip between the
    // recomputation and the removal of the marks.
    const [counted] = await db.batch([
      db.prepare(`SELECT count(*) AS n FROM series_dirty_hours WHERE hour >= ?2 AND hour < ?1`).bind(nowHour, horizon),
      db.prepare(`DELETE FROM readings_hourly WHERE bucket IN (${claimed} AND hour >= ?2)`).bind(nowHour, horizon),
      db
        .prepare(
          // The dirty hours' readings first (materialized, so the planner unpacks only their
          // blocks through the block index instead of walking every block in key order).
          `WITH hours AS MATERIALIZED (
             SELECT d.hour, r.device, r.metric, r.room, r.unit, r.time, r.value
             FROM series_dirty_hours d JOIN readings r ON r.block >= d.hour AND r.block < d.hour + ${HOUR_MS}
               AND r.time >= d.hour AND r.time < d.hour + ${HOUR_MS}
             WHERE d.hour >= ?2 AND d.hour < ?1)
           INSERT INTO readings_hourly (bucket, device, metric, room, unit, count, sum, min, max, last_time, last_value)
           SELECT hour, device, metric, room, max(unit), count(*), sum(value), min(value), max(value), max(time),
             max(CASE WHEN rn = 1 THEN value END)
           FROM (SELECT *, row_number() OVER (PARTITION BY hour, device, metric, room ORDER BY time DESC) AS rn FROM hours)
           GROUP BY hour, device, metric, room`,
        )
        .bind(nowHour, horizon),
      db.prepare(`DELETE FROM readings_daily WHERE bucket IN (SELECT DISTINCT hour - hour % ${DAY_MS} FROM (${claimed}))`).bind(nowHour),
      db
        .prepare(
          `INSERT INTO readings_daily (bucket, device, metric, room, unit, count, sum, min, max, last_time, last_value)
           SELECT day, device, metric, room, max(unit), sum(count), sum(sum), min(min), max(max), max(last_time),
             max(CASE WHEN rn = 1 THEN last_value END)
           FROM (SELECT bucket - bucket % ${DAY_MS} AS day, device, metric, room, unit, count, sum, min, max, last_time, last_value,
                   row_number() OVER (PARTITION BY bucket - bucket % ${DAY_MS}, device, metric, room ORDER BY last_time DESC) AS rn
                 FROM readings_hourly
                 WHERE bucket - bucket % ${DAY_MS} IN (SELECT DISTINCT hour - hour % ${DAY_MS} FROM (${claimed})))
           GROUP BY day, device, metric, room`,
        )
        .bind(nowHour),
      db.prepare(`DELETE FROM series_dirty_hours WHERE hour < ?1`).bind(nowHour),
      db
        .prepare("INSERT INTO series_state (key, value) VALUES ('rolled_until', ?1) ON CONFLICT (key) DO UPDATE SET value = max(value, ?1)")
        .bind(nowHour),
    ]);
    const hours = (counted?.results?.[0] as { n: number } | undefined)?.n ?? 0;
    return { hours, rolledUntil: nowHour };
  }

  async prune(cutoffs: { raw: number; rollup: number }): Promise<{ raw: number; rollup: number }> {
    // Whole blocks go, those that end by the cutoff (all of them for the whole-hour cutoffs of
    // maintenance); the readings in them are counted first.
    const lastBlock = cutoffs.raw - BLOCK_MS;
    const [counted, , hourly, daily] = await this.#db.batch([
      this.#db.prepare("SELECT count(*) AS n FROM readings WHERE block <= ?").bind(lastBlock),
      this.#db.prepare("DELETE FROM reading_blocks WHERE block <= ?").bind(lastBlock),
      this.#db.prepare("DELETE FROM readings_hourly WHERE bucket < ?").bind(cutoffs.rollup),
      this.#db.prepare("DELETE FROM readings_daily WHERE bucket < ?").bind(cutoffs.rollup),
    ]);
    const raw = (counted?.results?.[0] as { n: number } | undefined)?.n ?? 0;
    return { raw, rollup: (hourly?.meta.changes ?? 0) + (daily?.meta.changes ?? 0) };
  }

  async close(): Promise<void> {}
}
