/**
 * bench/history — what a message-history lookup (GET /v1/messages, queues/history-lookup.ts)
 * reads and how long it takes on local D1 (Miniflare's, the same SQLite the edge runs locally),
 * with `--days` of seed 004's 1× load in the store, beside the reference: the per-message table it
 * replaced (message_log as migration 0015 made it, one row per message and a received_at index,
 * 2 D1 rows written a message) answering the same lookups by its key and index.
 *
 * The store is filled the way the consumers fill it at 1× (docs/cost.md: 177,120 messages a day,
 * 97 % of them two meters at 1 msg/s): every message is alone in its consumer batch on its live
 * queue (one message_batches row each, delivered and stored), and the archive consumer stores a
 * minute's messages in one row; then the hourly cron's digests of the finished hours are made (its
 * rows written and read per hour are printed). Rows read are D1's `meta.rows_read` summed over the lookup's
 * statements; the time is the median of `--rounds`. "other CPU" is the cores anything else on the
 * machine kept busy meanwhile (above about 0.25 the times are high by an unknown amount).
 *
 *   node bench/history.ts [--days 7] [--rounds 5] [--markdown]    (--quick: 1 day, 3 rounds)
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { Miniflare } from "miniflare";
import { machineBusySeconds, treeCpuSeconds } from "./lib/proc.ts";
import { fixed } from "./lib/stats.ts";
import { type Column, markdownTable, textTable } from "./lib/table.ts";
import "./lib/worker-modules.ts";

const { lookupMessages } = await import("../queues/history-lookup.ts");
const { digestHours } = await import("../queues/history-hours.ts");

const { values: flags } = parseArgs({
  options: {
    days: { type: "string", default: "7" },
    rounds: { type: "string", default: "5" },
    quick: { type: "boolean", default: false },
    markdown: { type: "boolean", default: false },
  },
});
const DAYS = flags.quick ? 1 : Number(flags.days);
const ROUNDS = flags.quick ? 3 : Number(flags.rounds);
if (!(DAYS > 0 && DAYS <= 30) || !(ROUNDS > 0))
  throw new Error("usage: node bench/history.ts [--days 1-30] [--rounds N] [--quick] [--markdown]");

const PER_DAY = 177_120;
const METER_SHARE = 0.97;
const DAY_MS = 86_400_000;

const dir = mkdtempSync(join(tmpdir(), "bench-history-"));
process.once("exit", () => rmSync(dir, { recursive: true, force: true }));
const mf = new Miniflare({
  resourcePersistencePath: dir,
  workers: [
    {
      config: {
        name: "bench-history",
        compatibilityDate: "2025-09-01",
        manifest: {
          mainModule: "index.js",
          modules: { "index.js": { type: "esm", contents: "export default { fetch() { return new Response('') } }" } },
        },
        env: { DB: { type: "d1", id: "bench-history" } },
      },
    },
  ],
});
const db = (await mf.getD1Database("DB")) as unknown as D1Database;

function statements(file: string, keep: (sql: string) => boolean): string[] {
  const text = readFileSync(new URL(`../infra/migrations/d1/${file}`, import.meta.url), "utf8")
    .split("\n")
    .filter((l) => !l.trim().startsWith("--"))
    .join("\n");
  return text
    .split(";")
    .map((s) => s.trim())
    .filter((s) => s.length > 0 && keep(s));
}
// The tables as the migrations make them (0015's data moves are for older stores).
for (const sql of statements("0015_message_log.sql", (s) => s.startsWith("CREATE"))) await db.prepare(sql).run();
for (const file of ["0017_message_batches.sql", "0019_message_hours.sql"])
  for (const sql of statements(file, () => true)) await db.prepare(sql).run();
for (const sql of statements("0015_message_log.sql", (s) => s.startsWith("CREATE")))
  await db.prepare(sql.replaceAll("message_log", "message_log_v1")).run();

// ---- fill: DAYS of 1× load ending now -------------------------------------------------------
const now = Date.now();
const start = now - DAYS * DAY_MS;
const total = DAYS * PER_DAY;
const gap = DAY_MS / PER_DAY;
/** Message i: a meter's (even/odd) or another sensor's, received at start + i * gap. */
const messageSql = `json_array('m-' || i, CASE WHEN i % 100 < ${METER_SHARE * 100} THEN 'meter' || (i % 2) ELSE 'sensor' || (i % 6) END,
  'm-' || i, 'metric', 'sensors', 'sensors.energy.meter', strftime('%Y-%m-%dT%H:%M:%fZ', (?1 + i * ${gap}) / 1000.0, 'unixepoch'),
  strftime('%Y-%m-%dT%H:%M:%fZ', (?1 + i * ${gap}) / 1000.0, 'unixepoch'))`;
const CHUNK = 20_000;
const filled = performance.now();
for (let from = 0; from < total; from += CHUNK) {
  const to = Math.min(total, from + CHUNK);
  const series = `WITH RECURSIVE n(i) AS (SELECT CAST(?2 AS INTEGER) UNION ALL SELECT i + 1 FROM n WHERE i + 1 < ?3)`;
  await db.batch([
    // The live queue's consumer: each message alone in its batch, delivered and stored.
    db
      .prepare(
        `${series} INSERT INTO message_batches (at, queue, batch, messages)
         SELECT strftime('%Y-%m-%dT%H:%M:%fZ', (?1 + i * ${gap} + 150) / 1000.0, 'unixepoch'), 'sensors.energy', 'b' || i,
           json_array(json_insert(${messageSql}, '$[#]', json('[["delivered",null],["stored","4 readings in d1 (batch: 4 new of 4)"]]')))
         FROM n`,
      )
      .bind(start, from, to),
    // The reference: the per-message row, its steps packed (0015).
    db
      .prepare(
        `${series} INSERT INTO message_log_v1 (id, source, correlation_id, type, exchange, routing_key, timestamp, received_at, steps)
         SELECT m ->> 0, m ->> 1, m ->> 2, m ->> 3, m ->> 4, m ->> 5, m ->> 6, m ->> 7,
           json_array(json_array('sensors.energy', 'delivered', m ->> 7, null), json_array('sensors.energy', 'stored', m ->> 7, '4 readings'),
                      json_array('archive.metrics', 'stored', m ->> 7, 'key'))
         FROM (SELECT ${messageSql} AS m FROM n)`,
      )
      .bind(start, from, to),
  ]);
}
// The archive consumer: a minute's messages in one row.
const perMinute = Math.round(60_000 / gap);
for (let from = 0; from < total; from += perMinute * 200) {
  const rows = Math.min(200, Math.ceil((total - from) / perMinute));
  await db
    .prepare(
      `WITH RECURSIVE r(k) AS (SELECT 0 UNION ALL SELECT k + 1 FROM r WHERE k + 1 < ?4),
         n(k, i) AS (SELECT k, CAST(?2 + k * ?3 AS INTEGER) FROM r UNION ALL SELECT k, i + 1 FROM n WHERE i + 1 < ?2 + (k + 1) * ?3 AND i + 1 < ?5)
       INSERT INTO message_batches (at, queue, batch, messages)
       SELECT strftime('%Y-%m-%dT%H:%M:%fZ', (?1 + max(i) * ${gap} + 30000) / 1000.0, 'unixepoch'), 'archive.metrics', 'a' || k || '-' || ?2,
         json_group_array(json(json_insert(${messageSql}, '$[#]', json('[["stored","archive/metrics/key.ndjson.gz"]]'))))
       FROM n GROUP BY k`,
    )
    .bind(start, from, perMinute, rows, total)
    .run();
}
const fillSeconds = (performance.now() - filled) / 1000;
const counts = await db
  .prepare(
    `SELECT (SELECT count(*) FROM message_batches) AS batches, (SELECT count(*) FROM message_log_v1) AS reference,
       (SELECT sum(length(at) + length(queue) + length(batch) + length(messages)) FROM message_batches) AS bytes`,
  )
  .first<{ batches: number; reference: number; bytes: number }>();

// ---- lookups ---------------------------------------------------------------------------------
/** db with every statement's rows read summed. */
function counting(): { db: D1Database; read: () => number; written: () => number } {
  let read = 0;
  let written = 0;
  const raw = new WeakMap<object, D1PreparedStatement>();
  const add = (r: unknown) => {
    for (const one of Array.isArray(r) ? r : [r]) {
      read += (one as D1Result | undefined)?.meta?.rows_read ?? 0;
      written += (one as D1Result | undefined)?.meta?.rows_written ?? 0;
    }
    return r;
  };
  const wrap = (s: D1PreparedStatement): D1PreparedStatement => {
    const proxy = new Proxy(s, {
      get(t, p) {
        if (p === "bind") return (...args: unknown[]) => wrap(t.bind(...args));
        if (p === "all" || p === "run") return async () => add(await t[p]());
        const v = Reflect.get(t, p);
        return typeof v === "function" ? v.bind(t) : v;
      },
    });
    raw.set(proxy, s);
    return proxy;
  };
  const proxy = new Proxy(db, {
    get(t, p) {
      if (p === "prepare") return (sql: string) => wrap(t.prepare(sql));
      if (p === "batch") return async (list: D1PreparedStatement[]) => add(await t.batch(list.map((s) => raw.get(s) ?? s)));
      const v = Reflect.get(t, p);
      return typeof v === "function" ? v.bind(t) : v;
    },
  });
  return { db: proxy, read: () => read, written: () => written };
}

// The hourly cron's digests of the finished hours (a first run catches up 48 hours at a time).
const digesting = counting();
const digestStart = performance.now();
let digested = 0;
for (let n = await digestHours(digesting.db, start, now); n > 0; n = await digestHours(digesting.db, start, now)) digested += n;
const digestMs = (performance.now() - digestStart) / Math.max(1, digested);

/** The old route's statement (functions/routes/messages.ts before migration 0017). */
async function reference(c: D1Database, where: string, params: unknown[], limit: number): Promise<unknown[]> {
  const { results } = await c
    .prepare(
      `SELECT id, correlation_id, source, type, exchange, routing_key, timestamp, received_at, steps
       FROM message_log_v1 ${where} ORDER BY received_at DESC, id DESC LIMIT ?`,
    )
    .bind(...params, limit)
    .all();
  return results;
}

const middle = `m-${Math.floor(total / 2)}`;
const oldest = `m-${Math.floor(total * 0.02)}`;
const hourAgo = new Date(now - 3_600_000).toISOString();
const cases: { name: string; lean: (c: D1Database) => Promise<unknown[]>; ref: (c: D1Database) => Promise<unknown[]> }[] = [
  {
    name: `by id (middle of the ${DAYS} d)`,
    lean: (c) => lookupMessages(c, { id: middle, limit: 100 }, DAYS, now),
    ref: (c) => reference(c, "WHERE id = ?", [middle], 100),
  },
  {
    name: "by id (oldest day)",
    lean: (c) => lookupMessages(c, { id: oldest, limit: 100 }, DAYS, now),
    ref: (c) => reference(c, "WHERE id = ?", [oldest], 100),
  },
  {
    name: "by correlation id",
    lean: (c) => lookupMessages(c, { correlation_id: middle, limit: 100 }, DAYS, now),
    ref: (c) =>
      reference(c, "WHERE (id = ? AND correlation_id = id OR correlation_id = ? AND correlation_id <> id)", [middle, middle], 100),
  },
  {
    name: "by id (this hour, not digested)",
    lean: (c) => lookupMessages(c, { id: `m-${total - 100}`, limit: 100 }, DAYS, now),
    ref: (c) => reference(c, "WHERE id = ?", [`m-${total - 100}`], 100),
  },
  {
    name: "by id and since (1 h)",
    lean: (c) => lookupMessages(c, { id: `m-${total - 100}`, since: hourAgo, limit: 100 }, DAYS, now),
    ref: (c) => reference(c, "WHERE id = ? AND received_at >= ?", [`m-${total - 100}`, hourAgo], 100),
  },
  {
    name: "device, newest 100",
    lean: (c) => lookupMessages(c, { device: "sensor1", limit: 100 }, DAYS, now),
    ref: (c) => reference(c, "WHERE source = ?", ["sensor1"], 100),
  },
  {
    name: "since 1 h, newest 100",
    lean: (c) => lookupMessages(c, { since: hourAgo, limit: 100 }, DAYS, now),
    ref: (c) => reference(c, "WHERE received_at >= ?", [hourAgo], 100),
  },
];

const busyBefore = machineBusySeconds();
const treeBefore = treeCpuSeconds(process.pid);
const wallBefore = performance.now();
const rows: string[][] = [];
const report: Record<string, unknown>[] = [];
for (const c of cases) {
  const measured: Record<string, { ms: number; read: number; found: number }> = {};
  for (const [side, run] of [
    ["lean", c.lean],
    ["reference", c.ref],
  ] as const) {
    const times: number[] = [];
    let read = 0;
    let found = 0;
    for (let r = 0; r < ROUNDS; r++) {
      const counted = counting();
      const t = performance.now();
      const answer = await run(counted.db);
      times.push(performance.now() - t);
      read = counted.read();
      found = answer.length;
    }
    times.sort((a, b) => a - b);
    measured[side] = { ms: times[Math.floor(times.length / 2)] ?? 0, read, found };
  }
  const lean = measured.lean as { ms: number; read: number; found: number };
  const ref = measured.reference as { ms: number; read: number; found: number };
  if (lean.found !== ref.found) {
    console.error(`${c.name}: the lean lookup found ${lean.found} messages, the reference ${ref.found}`);
    process.exitCode = 1;
  }
  rows.push([c.name, String(lean.found), String(lean.read), fixed(lean.ms, 1), String(ref.read), fixed(ref.ms, 2)]);
  report.push({
    lookup: c.name,
    found: lean.found,
    rows_read: lean.read,
    ms: lean.ms,
    reference_rows_read: ref.read,
    reference_ms: ref.ms,
  });
}
const wall = (performance.now() - wallBefore) / 1000;
// This process and its workerd child are the bench; the rest of the machine's busy time is "other".
const own = treeBefore === undefined ? undefined : (treeCpuSeconds(process.pid) ?? treeBefore) - treeBefore;
const busy = busyBefore === undefined ? undefined : (machineBusySeconds() ?? busyBefore) - busyBefore;
const other = busy === undefined || own === undefined ? undefined : Math.max(0, (busy - own) / wall);

const columns: Column[] = [
  { header: "lookup" },
  { header: "found", align: "right" },
  { header: "rows read", align: "right" },
  { header: "ms (median)", align: "right" },
  { header: "reference rows read", align: "right" },
  { header: "reference ms", align: "right" },
];
console.log(
  `message history lookups, ${DAYS} d of 1× load: ${counts?.batches} batch rows (${total} messages), reference ${counts?.reference} rows; ${fixed((counts?.bytes ?? 0) / total, 0)} B of batch rows a message; filled in ${fixed(fillSeconds, 0)} s; ${cpus().length} cores, other CPU ${other === undefined ? "n/a" : fixed(other, 2)}`,
);
console.log(
  `hourly digest (queues/history-hours.ts): ${digested} hours, per hour ${fixed(digesting.written() / Math.max(1, digested), 1)} D1 rows written, ${fixed(digesting.read() / Math.max(1, digested), 0)} rows read, ${fixed(digestMs, 0)} ms`,
);
console.log(flags.markdown ? markdownTable(columns, rows) : textTable(columns, rows));
console.log(
  JSON.stringify({ days: DAYS, batch_rows: counts?.batches, reference_rows: counts?.reference, other_cpu: other, lookups: report }),
);
await mf.dispose();
