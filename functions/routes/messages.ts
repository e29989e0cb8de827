/**
 * Seed 002's message repository: recent messages with what happened to each — which queues it
 * was delivered to, retried on, dead-lettered from, replayed to — by device, type, time, or
 * correlation id, so one can follow a message through the mesh.
 */
import { Hono } from "hono";
import { z } from "zod";
import { type AppEnv, requireRole } from "../middleware/auth";
import { validate } from "../validate";

const MessagesQuery = z.strictObject({
  device: z.string().max(64).optional(),
  type: z.string().max(32).optional(),
  correlation_id: z.string().max(128).optional(),
  id: z.string().max(128).optional(),
  since: z.iso.datetime({ offset: true }).optional(),
  limit: z.coerce.number().int().min(1).max(500).default(100),
});

interface MessageRow {
  id: string;
  correlation_id: string;
  source: string;
  type: string;
  exchange: string;
  routing_key: string;
  timestamp: string;
  received_at: string;
  /** JSON: [queue, status, at, detail][] (queues/history.ts). */
  steps: string;
}

type StoredStep = [queue: string, status: string, at: string, detail: string | null];

function stepsOf(json: string): { queue: string; status: string; at: string; detail: string | null }[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(json);
  } catch {
    return [];
  }
  if (!Array.isArray(parsed)) return [];
  return (parsed as StoredStep[])
    .map(([queue, status, at, detail]) => ({ queue, status, at, detail: detail ?? null }))
    .sort((a, b) => (a.at < b.at ? -1 : a.at > b.at ? 1 : 0));
}

export const messageRoutes = new Hono<AppEnv>().get("/", requireRole("viewer"), validate("query", MessagesQuery), async (c) => {
  const q = c.req.valid("query");
  const where: string[] = [];
  const params: unknown[] = [];
  if (q.device) where.push("source = ?") && params.push(q.device);
  if (q.type) where.push("type = ?") && params.push(q.type);
  // A message whose correlation id is its own is found by its key; the partial index holds the rest.
  if (q.correlation_id)
    where.push("(id = ? AND correlation_id = id OR correlation_id = ? AND correlation_id <> id)") &&
      params.push(q.correlation_id, q.correlation_id);
  if (q.id) where.push("id = ?") && params.push(q.id);
  if (q.since) where.push("received_at >= ?") && params.push(new Date(q.since).toISOString());
  const clause = where.length ? `WHERE ${where.join(" AND ")}` : "";
  const { results: messages } = await c.env.DB.prepare(
    `SELECT id, correlation_id, source, type, exchange, routing_key, timestamp, received_at, steps
       FROM message_log ${clause} ORDER BY received_at DESC, id DESC LIMIT ?`,
  )
    .bind(...params, q.limit)
    .all<MessageRow>();
  return c.json({ messages: messages.map(({ steps, ...m }) => ({ ...m, steps: stepsOf(steps) })) });
});
