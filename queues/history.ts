/**
 * Seed 002's message repository and the per-queue counters, written by the consumers — off the
 * ingest path, in one D1 statement per consumed batch. Each message has ONE row (idempotent on
 * its source and id) whose `steps` column packs what happened to it: delivered to a queue,
 * stored, retried, dead-lettered, replayed. A new message costs 2 D1 rows written (the row and
 * its received_at index); a later step on another queue updates the row in place (1 row).
 * infra/migrations/d1/0015_message_log.sql has the table and the lookups it serves.
 */

import { log } from "../shared/log";
import type { Envelope } from "../shared/schemas/message";

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

/** A step as stored in the row's JSON array: [queue, status, at, detail]. */
export type StoredStep = [queue: string, status: Step, at: string, detail: string | null];

// D1 takes statements up to 100 KB: a chunk of messages per statement keeps well under it.
const MESSAGES_PER_STATEMENT = 100;

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

/** The statements that record these steps: one upsert per chunk of messages, steps grouped by message. */
export function historyStatements(db: D1Database, steps: readonly StepRecord[], at = new Date().toISOString()): D1PreparedStatement[] {
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

/** Drops history older than the retention (the archive keeps the long-term record). */
export async function pruneHistory(env: Env, olderThan: Date): Promise<void> {
  await env.DB.prepare("DELETE FROM message_log WHERE received_at < ?").bind(olderThan.toISOString()).run();
}
