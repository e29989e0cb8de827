/**
 * Seed 002's message repository, read (GET /v1/messages; queues/history.ts writes it). Two tables
 * hold it: `message_batches`, a row per consumer batch and queue with its messages packed (the
 * happy path), and `message_log`, a row per message that had an unhappy step. A lookup picks the
 * newest matching messages from both, then gathers each one's steps from both. The batch rows
 * have no index but their time key: a lookup reads the rows since `since` (or since the
 * retention), and unpacks only those whose text holds the id, correlation id or device asked
 * for (docs/api.md has the rows read and the time; bench/history.ts measures them).
 */
import type { BatchedMessage } from "./history";
import { HOUR_MS, hoursHolding } from "./history-hours";

export interface MessageQuery {
  device?: string;
  type?: string;
  correlation_id?: string;
  id?: string;
  /** ISO time, UTC. */
  since?: string;
  limit: number;
}
type Query = MessageQuery;

export interface Fields {
  id: string;
  correlation_id: string;
  source: string;
  type: string;
  exchange: string;
  routing_key: string;
  timestamp: string;
  received_at: string;
}

export interface Step {
  queue: string;
  status: string;
  at: string;
  detail: string | null;
}

export type FoundMessage = Fields & { steps: Step[] };

interface LogRow extends Fields {
  /** JSON: [queue, status, at, detail][] (queues/history.ts). */
  steps: string;
}

type StoredStep = [queue: string, status: string, at: string, detail: string | null];

/**
 * A batch row is written when its consumer runs, after every message in it was received; this
 * margin covers clocks of different machines, so `at >= received_at - margin` never misses one.
 */
const CLOCK_MARGIN_MS = 60_000;

function parsed<T>(json: string): T[] {
  try {
    const value = JSON.parse(json) as unknown;
    return Array.isArray(value) ? (value as T[]) : [];
  } catch {
    return [];
  }
}

const keyOf = (m: { source: string; id: string }) => `${m.source}\u001f${m.id}`;

function fieldsOf(m: BatchedMessage): Fields {
  const [id, source, correlation_id, type, exchange, routing_key, timestamp, received_at] = m;
  return { id, correlation_id, source, type, exchange, routing_key, timestamp, received_at };
}

/** The filters on a packed message (`m.value`), and the text a row must hold to be unpacked at all. */
function batchFilter(q: Query, since: string | undefined): { sql: string; params: unknown[] } {
  const where: string[] = [];
  const params: unknown[] = [];
  // The most selective of the asked values, as it appears in the row's JSON text.
  const needle = q.id ?? q.correlation_id ?? q.device;
  if (needle !== undefined) where.push("instr(b.messages, ?) > 0") && params.push(JSON.stringify(needle));
  if (q.id) where.push("m.value ->> 0 = ?") && params.push(q.id);
  if (q.device) where.push("m.value ->> 1 = ?") && params.push(q.device);
  if (q.correlation_id) where.push("m.value ->> 2 = ?") && params.push(q.correlation_id);
  if (q.type) where.push("m.value ->> 3 = ?") && params.push(q.type);
  if (since) where.push("m.value ->> 7 >= ?") && params.push(since);
  return { sql: where.length ? `AND ${where.join(" AND ")}` : "", params };
}

/** A message's entry in one batch row. */
interface BatchEntry {
  at: string;
  queue: string;
  msg: string;
}

/**
 * A lookup by id or correlation id: every batch row entry of the matching messages. The hourly
 * digests (queues/history-hours.ts) say which finished hours hold the id; those hours and the
 * ones not digested yet are read, and only their rows whose text holds the id are unpacked. All
 * the messages' steps are there: a step is never recorded before its message was received.
 */
async function batchEntries(db: D1Database, q: Query, lower: string, since: string | undefined): Promise<BatchEntry[]> {
  const f = batchFilter(q, since);
  const needle = q.id ?? q.correlation_id ?? "";
  const { hours, undigestedFrom } = await hoursHolding(db, needle, lower);
  const ranges: [string, string | null][] = [
    ...hours.map((h): [string, string] => [new Date(Math.max(h, Date.parse(lower))).toISOString(), new Date(h + HOUR_MS).toISOString()]),
    [undigestedFrom, null],
  ];
  const results = await db.batch(
    ranges.map(([from, to]) =>
      db
        .prepare(
          `SELECT b.at AS at, b.queue AS queue, m.value AS msg FROM message_batches b, json_each(b.messages) m
           WHERE b.at >= ? ${to === null ? "" : "AND b.at < ?"} ${f.sql} ORDER BY b.at`,
        )
        .bind(from, ...(to === null ? [] : [to]), ...f.params),
    ),
  );
  return results.flatMap((r) => (r.results ?? []) as BatchEntry[]).sort((a, b) => (a.at < b.at ? -1 : a.at > b.at ? 1 : 0));
}

/** The first window a listing reads back from now; each next one is WINDOW_GROWTH times longer. */
const FIRST_WINDOW_MS = 15 * 60_000;
const WINDOW_GROWTH = 8;

/**
 * A listing (device, type, since): the newest `limit` matching messages of the batch rows, read
 * back from now in growing windows (15 min, 2 h, 16 h, …, down to `lower`). The rows since W hold
 * every message received since W + the clock margin, so once a window finds `limit` of those, no
 * older row can hold a newer one.
 */
async function batchCandidates(db: D1Database, q: Query, lower: string, since: string | undefined, now: number): Promise<Fields[]> {
  const floor = Date.parse(lower);
  for (let span = FIRST_WINDOW_MS; ; span *= WINDOW_GROWTH) {
    const from = Math.max(floor, now - span);
    const complete = from === floor;
    const after = complete ? since : new Date(Math.max(from + CLOCK_MARGIN_MS, since ? Date.parse(since) : 0)).toISOString();
    const f = batchFilter(q, after);
    const { results } = await db
      .prepare(
        `SELECT max(m.value ->> 7) AS received_at, m.value AS msg, m.value ->> 0 AS id
         FROM message_batches b, json_each(b.messages) m
         WHERE b.at >= ? ${f.sql}
         GROUP BY m.value ->> 1, m.value ->> 0
         ORDER BY received_at DESC, id DESC LIMIT ?`,
      )
      .bind(new Date(from).toISOString(), ...f.params, q.limit)
      .all<{ msg: string }>();
    if (complete || results.length >= q.limit) return results.map((r) => fieldsOf(JSON.parse(r.msg) as BatchedMessage));
  }
}

/** The newest matching messages of the per-message rows, with their steps. */
async function logCandidates(db: D1Database, q: Query, since: string | undefined): Promise<LogRow[]> {
  const where: string[] = [];
  const params: unknown[] = [];
  if (q.device) where.push("source = ?") && params.push(q.device);
  if (q.type) where.push("type = ?") && params.push(q.type);
  // A message whose correlation id is its own is found by its key; the partial index holds the rest.
  if (q.correlation_id)
    where.push("(id = ? AND correlation_id = id OR correlation_id = ? AND correlation_id <> id)") &&
      params.push(q.correlation_id, q.correlation_id);
  if (q.id) where.push("id = ?") && params.push(q.id);
  if (since) where.push("received_at >= ?") && params.push(since);
  const clause = where.length ? `WHERE ${where.join(" AND ")}` : "";
  const { results } = await db
    .prepare(
      `SELECT id, correlation_id, source, type, exchange, routing_key, timestamp, received_at, steps
       FROM message_log ${clause} ORDER BY received_at DESC, id DESC LIMIT ?`,
    )
    .bind(...params, q.limit)
    .all<LogRow>();
  return results;
}

/** Every step of the chosen messages: from their batch rows (read since the oldest of them) and their own rows. */
async function stepsOf(
  db: D1Database,
  chosen: Fields[],
  logged: Map<string, LogRow>,
  entries?: BatchEntry[],
): Promise<Map<string, Step[]>> {
  const steps = new Map<string, Step[]>(chosen.map((m) => [keyOf(m), []]));
  const keys = JSON.stringify(chosen.map((m) => keyOf(m)));
  const oldest = Math.min(...chosen.map((m) => Date.parse(m.received_at) || 0));
  const lower = new Date(Math.max(0, oldest - CLOCK_MARGIN_MS)).toISOString();
  const unlogged = JSON.stringify(chosen.filter((m) => !logged.has(keyOf(m))).map((m) => [m.source, m.id]));
  const ownRows = db
    .prepare(
      `SELECT id, correlation_id, source, type, exchange, routing_key, timestamp, received_at, steps FROM message_log
       WHERE (source, id) IN (SELECT value ->> 0, value ->> 1 FROM json_each(?1))`,
    )
    .bind(unlogged);
  let rows: LogRow[];
  let found: { at: string; queue: string; k: string; steps: string }[];
  if (entries) {
    rows = (await ownRows.all<LogRow>()).results;
    found = entries.map((e) => {
      const m = JSON.parse(e.msg) as BatchedMessage;
      return { at: e.at, queue: e.queue, k: keyOf({ source: m[1], id: m[0] }), steps: JSON.stringify(m[8]) };
    });
  } else {
    // The chosen messages' batch rows: since the oldest of them was received.
    const [batches, own] = await db.batch([
      db
        .prepare(
          `SELECT b.at, b.queue, m.value ->> 1 || char(31) || (m.value ->> 0) AS k, m.value ->> 8 AS steps
           FROM message_batches b, json_each(b.messages) m
           WHERE b.at >= ?1 AND m.value ->> 1 || char(31) || (m.value ->> 0) IN (SELECT value FROM json_each(?2))
           ORDER BY b.at`,
        )
        .bind(lower, keys),
      ownRows,
    ]);
    found = (batches?.results ?? []) as typeof found;
    rows = (own?.results ?? []) as LogRow[];
  }
  for (const row of found)
    for (const [status, detail] of parsed<[string, string | null]>(row.steps))
      steps.get(row.k)?.push({ queue: row.queue, status, at: row.at, detail: detail ?? null });
  for (const row of [...logged.values(), ...rows])
    for (const [queue, status, at, detail] of parsed<StoredStep>(row.steps))
      steps.get(keyOf(row))?.push({ queue, status, at, detail: detail ?? null });
  // A step is listed once per queue and status, its newest record kept; then in time order.
  for (const [key, all] of steps) {
    const newest = new Map<string, Step>();
    for (const s of all) {
      const k = `${s.queue}\u001f${s.status}`;
      const seen = newest.get(k);
      if (!seen || s.at >= seen.at) {
        newest.delete(k);
        newest.set(k, s);
      }
    }
    steps.set(
      key,
      [...newest.values()].sort((a, b) => (a.at < b.at ? -1 : a.at > b.at ? 1 : 0)),
    );
  }
  return steps;
}

const newestFirst = (a: Fields, b: Fields) =>
  a.received_at > b.received_at ? -1 : a.received_at < b.received_at ? 1 : a.id > b.id ? -1 : a.id < b.id ? 1 : 0;

/**
 * The newest `limit` messages matching the query, each with its steps in time order. The batch
 * rows are read from `max(since, now - retentionDays)` on.
 */
export async function lookupMessages(db: D1Database, q: Query, retentionDays: number, now = Date.now()): Promise<FoundMessage[]> {
  const since = q.since;
  const retention = now - retentionDays * 86_400_000;
  const lower = new Date(Math.max(retention, since ? Date.parse(since) - CLOCK_MARGIN_MS : 0)).toISOString();
  // By id or correlation id: one scan finds the messages and all their batch steps; a listing
  // reads back in windows, then gathers the chosen messages' steps.
  const single = q.id !== undefined || q.correlation_id !== undefined;
  const [entries, fromLog] = await Promise.all([single ? batchEntries(db, q, lower, since) : undefined, logCandidates(db, q, since)]);
  const fromBatches = entries
    ? entries.map((e) => fieldsOf(JSON.parse(e.msg) as BatchedMessage))
    : await batchCandidates(db, q, lower, since, now);
  const logged = new Map(fromLog.map((r) => [keyOf(r), r]));
  const byKey = new Map<string, Fields>();
  for (const m of [...fromLog, ...fromBatches]) if (!byKey.has(keyOf(m))) byKey.set(keyOf(m), m);
  const chosen = [...byKey.values()].sort(newestFirst).slice(0, q.limit);
  if (chosen.length === 0) return [];
  const steps = await stepsOf(db, chosen, logged, entries);
  return chosen.map((m) => ({
    id: m.id,
    correlation_id: m.correlation_id,
    source: m.source,
    type: m.type,
    exchange: m.exchange,
    routing_key: m.routing_key,
    timestamp: m.timestamp,
    received_at: m.received_at,
    steps: steps.get(keyOf(m)) ?? [],
  }));
}
