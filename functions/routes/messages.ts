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
}

interface StepRow {
  source: string;
  message_id: string;
  queue: string;
  status: string;
  at: string;
  detail: string | null;
}

export const messageRoutes = new Hono<AppEnv>().get("/", requireRole("viewer"), validate("query", MessagesQuery), async (c) => {
  const q = c.req.valid("query");
  const where: string[] = [];
  const params: unknown[] = [];
  if (q.device) where.push("source = ?") && params.push(q.device);
  if (q.type) where.push("type = ?") && params.push(q.type);
  if (q.correlation_id) where.push("correlation_id = ?") && params.push(q.correlation_id);
  if (q.id) where.push("id = ?") && params.push(q.id);
  if (q.since) where.push("received_at >= ?") && params.push(new Date(q.since).toISOString());
  const clause = where.length ? `WHERE ${where.join(" AND ")}` : "";
  const { results: messages } = await c.env.DB.prepare(`SELECT * FROM messages ${clause} ORDER BY received_at DESC, id DESC LIMIT ?`)
    .bind(...params, q.limit)
    .all<MessageRow>();
  const { results: steps } = messages.length
    ? await c.env.DB.prepare(
        `SELECT e.* FROM message_events e JOIN json_each(?) k
           ON e.source = k.value ->> 0 AND e.message_id = k.value ->> 1 ORDER BY e.at`,
      )
        .bind(JSON.stringify(messages.map((m) => [m.source, m.id])))
        .all<StepRow>()
    : { results: [] as StepRow[] };
  const byMessage = Map.groupBy(steps, (s) => `${s.source}\u001f${s.message_id}`);
  return c.json({
    messages: messages.map((m) => ({
      ...m,
      steps: (byMessage.get(`${m.source}\u001f${m.id}`) ?? []).map((s) => ({
        queue: s.queue,
        status: s.status,
        at: s.at,
        detail: s.detail,
      })),
    })),
  });
});
