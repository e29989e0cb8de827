/**
 * Seed 002's message repository and the per-queue counters, written by the consumers — off the
 * ingest path, in one D1 batch per consumed batch. Each message gets a row (idempotent on its
 * id) and one row per processing step: delivered to a queue, retried, dead-lettered, replayed.
 */
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

function messageRow(db: D1Database, m: Envelope): D1PreparedStatement {
  return db
    .prepare(
      `INSERT OR IGNORE INTO messages (source, id, correlation_id, type, exchange, routing_key, timestamp, received_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
    )
    .bind(m.source, m.id, m.correlation_id, m.type, m.exchange, m.routing_key, m.timestamp, m.received_at);
}

function stepRow(db: D1Database, r: StepRecord, at: string): D1PreparedStatement {
  return db
    .prepare("INSERT OR REPLACE INTO message_events (source, message_id, queue, status, at, detail) VALUES (?, ?, ?, ?, ?, ?)")
    .bind(r.message.source, r.message.id, r.queue, r.step, at, r.detail ?? null);
}

function countsRow(db: D1Database, queue: string, c: QueueCounts, at: string): D1PreparedStatement {
  return db
    .prepare(
      `INSERT INTO queue_stats (queue, delivered, retried, dead_lettered, updated_at) VALUES (?1, ?2, ?3, ?4, ?5)
       ON CONFLICT (queue) DO UPDATE SET delivered = delivered + ?2, retried = retried + ?3,
         dead_lettered = dead_lettered + ?4, updated_at = ?5`,
    )
    .bind(queue, c.delivered, c.retried, c.dead_lettered, at);
}

/**
 * Records the steps of one batch and its counters. History is for people following a message;
 * losing one write must never fail the batch, so errors are logged, not thrown.
 */
export async function recordSteps(env: Env, steps: StepRecord[], counts?: { queue: string; counts: QueueCounts }): Promise<void> {
  const at = new Date().toISOString();
  const seen = new Set<string>();
  const statements: D1PreparedStatement[] = [];
  for (const step of steps) {
    const key = `${step.message.source}\u001f${step.message.id}`;
    if (!seen.has(key)) {
      seen.add(key);
      statements.push(messageRow(env.DB, step.message));
    }
    statements.push(stepRow(env.DB, step, at));
  }
  if (counts) statements.push(countsRow(env.DB, counts.queue, counts.counts, at));
  if (statements.length === 0) return;
  try {
    await env.DB.batch(statements);
  } catch (error) {
    console.warn(JSON.stringify({ level: "warn", msg: "message history not recorded", steps: steps.length, error: String(error) }));
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
  const cutoff = olderThan.toISOString();
  await env.DB.batch([
    env.DB.prepare("DELETE FROM message_events WHERE at < ?").bind(cutoff),
    env.DB.prepare("DELETE FROM messages WHERE received_at < ?").bind(cutoff),
  ]);
}
