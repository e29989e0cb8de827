/**
 * Dead letters: list what failed (with the original exchange, routing key, queue, error and
 * attempts) and replay it. A replay sends a message back to the queue it failed on — or, for an
 * unroutable one, through its exchange again — and marks it replayed. Consumers are idempotent
 * on the message id, so replaying twice is harmless.
 */
import { Hono } from "hono";
import { z } from "zod";
import { bindingsFor, publish, sendToQueue } from "../../queues/exchange";
import { recordSteps } from "../../queues/history";
import { findQueue } from "../../queues/topology";
import { Envelope, UNROUTABLE } from "../../shared/schemas/message";
import { ApiError } from "../errors";
import { type AppEnv, requireRole } from "../middleware/auth";
import { jsonBody, validate } from "../validate";

interface DeadLetterRow {
  id: number;
  message_id: string;
  queue: string;
  exchange: string;
  routing_key: string;
  error_code: string;
  error_message: string;
  attempts: number;
  failed_at: string;
  status: "pending" | "replayed";
  replayed_at: string | null;
  correlation_id: string | null;
  source: string | null;
  envelope: string;
}

const ListQuery = z.strictObject({
  status: z.enum(["pending", "replayed", "all"]).default("pending"),
  queue: z.string().max(128).optional(),
  source: z.string().max(128).optional(),
  limit: z.coerce.number().int().min(1).max(1000).default(100),
  before: z.coerce.number().int().positive().optional(),
});

const ReplayBody = z.union([
  z.strictObject({ ids: z.array(z.int().positive()).min(1).max(1000) }),
  z.strictObject({ all: z.literal(true), queue: z.string().max(128).optional() }),
]);

const REPLAY_PAGE = 1000;

function view(row: DeadLetterRow) {
  return {
    id: row.id,
    message_id: row.message_id,
    queue: row.queue,
    exchange: row.exchange,
    routing_key: row.routing_key,
    error: { code: row.error_code, message: row.error_message },
    attempts: row.attempts,
    failed_at: row.failed_at,
    status: row.status,
    replayed_at: row.replayed_at,
    message: JSON.parse(row.envelope) as unknown,
  };
}

export const deadLetterRoutes = new Hono<AppEnv>()
  .get("/", requireRole("viewer"), validate("query", ListQuery), async (c) => {
    const q = c.req.valid("query");
    const where: string[] = [];
    const params: unknown[] = [];
    if (q.status !== "all") where.push("status = ?") && params.push(q.status);
    if (q.queue) where.push("queue = ?") && params.push(q.queue);
    if (q.source) where.push("source = ?") && params.push(q.source);
    if (q.before) where.push("id < ?") && params.push(q.before);
    const clause = where.length ? `WHERE ${where.join(" AND ")}` : "";
    const { results } = await c.env.DB.prepare(`SELECT * FROM dead_letters ${clause} ORDER BY id DESC LIMIT ?`)
      .bind(...params, q.limit)
      .all<DeadLetterRow>();
    const total = await c.env.DB.prepare(`SELECT COUNT(*) AS n FROM dead_letters ${clause.replace("id < ?", "1 = 1")}`)
      .bind(...(q.before ? params.slice(0, -1) : params))
      .first<{ n: number }>();
    return c.json({
      dead_letters: results.map(view),
      total: total?.n ?? 0,
      next_before: results.length === q.limit ? (results.at(-1)?.id ?? null) : null,
    });
  })
  .post("/replay", requireRole("admin"), async (c) => {
    const parsed = ReplayBody.safeParse(await jsonBody(c.req.raw));
    if (!parsed.success) throw ApiError.field("invalid_payload", "body", 'send {"ids": [1, 2]} or {"all": true, "queue"?: "…"}');
    const body = parsed.data;
    const rows =
      "ids" in body
        ? (
            await c.env.DB.prepare(
              `SELECT * FROM dead_letters WHERE status = 'pending' AND id IN (SELECT value FROM json_each(?)) ORDER BY id`,
            )
              .bind(JSON.stringify(body.ids))
              .all<DeadLetterRow>()
          ).results
        : (
            await c.env.DB.prepare(
              `SELECT * FROM dead_letters WHERE status = 'pending' ${body.queue ? "AND queue = ?" : ""} ORDER BY id LIMIT ${REPLAY_PAGE}`,
            )
              .bind(...(body.queue ? [body.queue] : []))
              .all<DeadLetterRow>()
          ).results;

    const replayed: number[] = [];
    const stillUnroutable: number[] = [];
    const perQueue = new Map<string, { ids: number[]; messages: Envelope[] }>();
    const reroute: { id: number; message: Envelope }[] = [];
    for (const row of rows) {
      const message = Envelope.parse(JSON.parse(row.envelope));
      if (row.queue === UNROUTABLE || !findQueue(row.queue)) {
        // Unroutable, or dead-lettered by the platform without a queue: route through the exchange again.
        if (bindingsFor(message.exchange, message.routing_key).length === 0) stillUnroutable.push(row.id);
        else reroute.push({ id: row.id, message });
        continue;
      }
      const entry = perQueue.get(row.queue) ?? { ids: [], messages: [] };
      entry.ids.push(row.id);
      entry.messages.push(message);
      perQueue.set(row.queue, entry);
    }
    for (const [queue, entry] of perQueue) {
      await sendToQueue(c.env, queue, entry.messages);
      replayed.push(...entry.ids);
    }
    if (reroute.length > 0) {
      await publish(
        c.env,
        reroute.map((r) => r.message),
      );
      replayed.push(...reroute.map((r) => r.id));
    }
    if (replayed.length > 0) {
      const replayedRows = rows.filter((r) => replayed.includes(r.id));
      await recordSteps(
        c.env,
        replayedRows.map((r) => ({ message: Envelope.parse(JSON.parse(r.envelope)), queue: r.queue, step: "replayed" as const })),
      );
      await c.env.DB.prepare("UPDATE dead_letters SET status = 'replayed', replayed_at = ? WHERE id IN (SELECT value FROM json_each(?))")
        .bind(new Date().toISOString(), JSON.stringify(replayed))
        .run();
    }
    const remaining = await c.env.DB.prepare("SELECT COUNT(*) AS n FROM dead_letters WHERE status = 'pending'").first<{ n: number }>();
    return c.json({ replayed: replayed.length, replayed_ids: replayed, still_unroutable: stillUnroutable, pending: remaining?.n ?? 0 });
  });
