/**
 * Seed 002's message repository and the per-queue counters, written by the consumers — off the
 * ingest path, in one D1 batch per consumed batch. Two tables (docs/api.md, "Message history"):
 * - the happy path (`delivered`, `stored`, `accepted`): ONE `message_batches` row per consumer
 *   batch and queue, the batch's messages packed in it with their steps — 1 D1 row written for
 *   the whole batch, no index (infra/migrations/d1/0017_message_batches.sql);
 * - the unhappy steps (`retried`, `dead_lettered`, `replayed`): a `message_log` row per message
 *   (idempotent on its source and id, steps packed; 2 rows written when new, 1 for a later step;
 *   0015_message_log.sql), so a failure inside a pack is recorded for that message alone.
 * GET /v1/messages (functions/routes/messages.ts) merges both.
 */

import { log } from "../shared/log";
import type { Envelope } from "../shared/schemas/message";
import { digestHours, HOUR_MS } from "./history-hours";

export type Step = "accepted" | "delivered" | "retried" | "dead_lettered" | "replayed" | "stored";

export interface StepRecord {
  message: Envelope;
  queue: string;
  step: Step;
  detail?: string;
}

export interface QueueCounts {
  delivered: number;
  retried: number;
  dead_lettered: number;
}

/** A step as stored in a message_log row's JSON array: [queue, status, at, detail]. */
export type StoredStep = [queue: string, status: Step, at: string, detail: string | null];

/**
 * A message as packed in a message_batches row: its envelope fields and its steps on the row's
 * queue, [status, detail].
 */
export type BatchedMessage = [
  id: string,
  source: string,
  correlation_id: string,
  type: string,
  exchange: string,
  routing_key: string,
  timestamp: string,
  received_at: string,
  steps: [status: Step, detail: string | null][],
];

/** The steps that go to the batch rows; every other step gets a per-message row. */
const HAPPY_ORDER: readonly Step[] = ["accepted", "delivered", "stored"];
export const HAPPY_STEPS: ReadonlySet<Step> = new Set<Step>(HAPPY_ORDER);

// D1 takes statements up to 100 KB: a chunk of messages per statement keeps well under it.
const MESSAGES_PER_STATEMENT = 100;
/** Messages per batch row: ≈ 250 bytes each, so a row stays far below D1's 2 MB. */
export const MESSAGES_PER_BATCH_ROW = 1000;

/**
 * One multi-row upsert for many messages. A step already on the row for the same queue and
 * status is replaced (a redelivery records once), others are kept in order, new ones appended.
 */
const UPSERT = `INSERT INTO message_log (id, source, correlation_id, type, exchange, routing_key, timestamp, received_at, steps)
  SELECT j ->> 0, j ->> 1, j ->> 2, j ->> 3, j ->> 4, j ->> 5, j ->> 6, j ->> 7, json(j ->> 8)
  FROM (SELECT value AS j FROM json_each(?1)) WHERE true
  ON CONFLICT (id, source) DO UPDATE SET steps = (
    SELECT json_group_array(json(s.value)) FROM (
      SELECT o.value FROM json_each(message_log.steps) o
        WHERE NOT EXISTS (SELECT 1 FROM json_each(excluded.steps) n WHERE n.value ->> 0 = o.value ->> 0 AND n.value ->> 1 = o.value ->> 1)
      UNION ALL
      SELECT value FROM json_each(excluded.steps)
    ) s)`;

function countsRow(db: D1Database, queue: string, c: QueueCounts, at: string): D1PreparedStatement {
  return db
    .prepare(
      `INSERT INTO queue_stats (queue, delivered, retried, dead_lettered, updated_at) VALUES (?1, ?2, ?3, ?4, ?5)
       ON CONFLICT (queue) DO UPDATE SET delivered = delivered + ?2, retried = retried + ?3,
         dead_lettered = dead_lettered + ?4, updated_at = ?5`,
    )
    .bind(queue, c.delivered, c.retried, c.dead_lettered, at);
}

function batchId(): string {
  return crypto.randomUUID().slice(0, 13);
}

/** The batch rows of the happy steps: one per queue (and per MESSAGES_PER_BATCH_ROW messages). */
function batchStatements(db: D1Database, steps: readonly StepRecord[], at: string): D1PreparedStatement[] {
  const byQueue = new Map<string, Map<string, BatchedMessage>>();
  for (const step of steps) {
    let messages = byQueue.get(step.queue);
    if (!messages) {
      messages = new Map();
      byQueue.set(step.queue, messages);
    }
    const m = step.message;
    const key = `${m.source}\u001f${m.id}`;
    let packed = messages.get(key);
    if (!packed) {
      packed = [m.id, m.source, m.correlation_id, m.type, m.exchange, m.routing_key, m.timestamp, m.received_at, []];
      messages.set(key, packed);
    }
    const own = packed[8];
    const same = own.findIndex((s) => s[0] === step.step);
    if (same >= 0) own[same] = [step.step, step.detail ?? null];
    else own.push([step.step, step.detail ?? null]);
  }
  // A message's steps on one queue in the order they happen, whichever part of the consumer noted them.
  for (const messages of byQueue.values())
    for (const m of messages.values()) m[8].sort((a, b) => HAPPY_ORDER.indexOf(a[0]) - HAPPY_ORDER.indexOf(b[0]));
  const statements: D1PreparedStatement[] = [];
  const id = batchId();
  for (const [queue, messages] of byQueue) {
    const all = [...messages.values()];
    for (let i = 0; i < all.length; i += MESSAGES_PER_BATCH_ROW) {
      statements.push(
        db
          .prepare("INSERT INTO message_batches (at, queue, batch, messages) VALUES (?1, ?2, ?3, ?4)")
          .bind(at, queue, `${id}.${i / MESSAGES_PER_BATCH_ROW}`, JSON.stringify(all.slice(i, i + MESSAGES_PER_BATCH_ROW))),
      );
    }
  }
  return statements;
}

/** The message_log upserts of the unhappy steps: one per chunk of messages, steps grouped by message. */
function messageStatements(db: D1Database, steps: readonly StepRecord[], at: string): D1PreparedStatement[] {
  const byMessage = new Map<string, { message: Envelope; steps: StoredStep[] }>();
  for (const step of steps) {
    const key = `${step.message.source}\u001f${step.message.id}`;
    let entry = byMessage.get(key);
    if (!entry) {
      entry = { message: step.message, steps: [] };
      byMessage.set(key, entry);
    }
    const stored: StoredStep = [step.queue, step.step, at, step.detail ?? null];
    const same = entry.steps.findIndex((s) => s[0] === step.queue && s[1] === step.step);
    if (same >= 0) entry.steps[same] = stored;
    else entry.steps.push(stored);
  }
  const rows = [...byMessage.values()].map(({ message: m, steps }) => [
    m.id,
    m.source,
    m.correlation_id,
    m.type,
    m.exchange,
    m.routing_key,
    m.timestamp,
    m.received_at,
    JSON.stringify(steps),
  ]);
  const statements: D1PreparedStatement[] = [];
  for (let i = 0; i < rows.length; i += MESSAGES_PER_STATEMENT) {
    statements.push(db.prepare(UPSERT).bind(JSON.stringify(rows.slice(i, i + MESSAGES_PER_STATEMENT))));
  }
  return statements;
}

/**
 * The statements that record these steps: the happy ones in one batch row per queue, the others
 * in their messages' own rows.
 */
export function historyStatements(db: D1Database, steps: readonly StepRecord[], at = new Date().toISOString()): D1PreparedStatement[] {
  return [
    ...batchStatements(
      db,
      steps.filter((s) => HAPPY_STEPS.has(s.step)),
      at,
    ),
    ...messageStatements(
      db,
      steps.filter((s) => !HAPPY_STEPS.has(s.step)),
      at,
    ),
  ];
}

/**
 * Records the steps of one batch and its counters. History is for people following a message;
 * losing one write must never fail the batch, so errors are logged, not thrown.
 */
export async function recordSteps(env: Env, steps: StepRecord[], counts?: { queue: string; counts: QueueCounts }): Promise<void> {
  const at = new Date().toISOString();
  const statements = historyStatements(env.DB, steps, at);
  if (counts) statements.push(countsRow(env.DB, counts.queue, counts.counts, at));
  if (statements.length === 0) return;
  try {
    await env.DB.batch(statements);
  } catch (error) {
    log("warn", "message history not recorded", { steps: steps.length, error: String(error) });
  }
}

export async function readQueueStats(env: Env): Promise<Map<string, QueueCounts>> {
  const { results } = await env.DB.prepare("SELECT queue, delivered, retried, dead_lettered FROM queue_stats").all<
    QueueCounts & { queue: string }
  >();
  return new Map(results.map((r) => [r.queue, { delivered: r.delivered, retried: r.retried, dead_lettered: r.dead_lettered }]));
}

/**
 * The hourly housekeeping (the Worker's cron): drops history older than the retention (the
 * archive keeps the long-term record) and digests the finished hours for lookups by id.
 */
export async function pruneHistory(env: Env, olderThan: Date): Promise<void> {
  const cutoff = olderThan.toISOString();
  await env.DB.batch([
    env.DB.prepare("DELETE FROM message_log WHERE received_at < ?").bind(cutoff),
    env.DB.prepare("DELETE FROM message_batches WHERE at < ?").bind(cutoff),
    env.DB.prepare("DELETE FROM message_hours WHERE hour < ?").bind(new Date(olderThan.getTime() - HOUR_MS).toISOString()),
  ]);
  await digestHours(env.DB, olderThan.getTime());
}
