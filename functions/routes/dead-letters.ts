/**
 * Dead letters: list what failed (with the original exchange, routing key, queue, error and
 * attempts) and replay it. A replay sends a message back to the queue it failed on — or, for an
 * unroutable one, through its exchange again — and marks it replayed. Consumers are idempotent
 * on the message id, so replaying twice is harmless.
 */
import { Hono } from "hono";
import { z } from "zod";
import { recordSteps } from "../../queues/history";
import { bindingsFor, publish, sendToQueue } from "../../shared/bus/exchange";
import { findQueue } from "../../shared/bus/topology";
import { log } from "../../shared/log";
import type { DeadLetter } from "../../shared/schemas/api/dead-letter";
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
  status: DeadLetter["status"];
  replayed_at: string | null;
  correlation_id: string | null;
  source: string;
  envelope: string;
  replayable: number;
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

function view(row: DeadLetterRow): DeadLetter {
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
    replayable: row.replayable === 1,
    message: safeJson(row.envelope),
  };
}

function safeJson(text: string): DeadLetter["message"] {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
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
    const parsed = ReplayBody.safeParse(await jsonBody(c));
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

    // Marked replayed before the send: a replayed message that fails again at once must find
    // its row already replayed, so its new failure makes it pending again (not the other way).
    const replayable: { row: DeadLetterRow; message: Envelope }[] = [];
    const notReplayable: number[] = [];
    for (const row of rows) {
      const parsed = row.replayable ? Envelope.safeParse(JSON.parse(row.envelope)) : undefined;
      if (parsed?.success) replayable.push({ row, message: parsed.data });
      else notReplayable.push(row.id);
    }
    const stillUnroutable: number[] = [];
    const groups = new Map<string, { ids: number[]; messages: Envelope[]; viaExchange: boolean }>();
    for (const { row, message } of replayable) {
      // Unroutable, or dead-lettered by the platform without a queue: through the exchange again.
      const viaExchange = row.queue === UNROUTABLE || !findQueue(row.queue);
      if (viaExchange && bindingsFor(message.exchange, message.routing_key).length === 0) {
        stillUnroutable.push(row.id);
        continue;
      }
      const key = viaExchange ? "(exchange)" : row.queue;
      const group = groups.get(key) ?? { ids: [], messages: [], viaExchange };
      group.ids.push(row.id);
      group.messages.push(message);
      groups.set(key, group);
    }
    const mark = (ids: number[], status: "replayed" | "pending") =>
      c.env.DB.prepare("UPDATE dead_letters SET status = ?, replayed_at = ? WHERE id IN (SELECT value FROM json_each(?))")
        .bind(status, status === "replayed" ? new Date().toISOString() : null, JSON.stringify(ids))
        .run();
    const replayed: number[] = [];
    const failed: number[] = [];
    for (const [queue, group] of groups) {
      await mark(group.ids, "replayed");
      try {
        if (group.viaExchange) await publish(c.env, group.messages);
        else await sendToQueue(c.env, queue, group.messages);
        replayed.push(...group.ids);
        await recordSteps(
          c.env,
          group.messages.map((message) => ({ message, queue, step: "replayed" as const })),
        );
      } catch (error) {
        await mark(group.ids, "pending");
        failed.push(...group.ids);
        log("error", "replay failed", { queue, error: String(error) });
      }
    }
    const remaining = await c.env.DB.prepare("SELECT COUNT(*) AS n FROM dead_letters WHERE status = 'pending'").first<{ n: number }>();
    return c.json(
      {
        replayed: replayed.length,
        replayed_ids: replayed,
        still_unroutable: stillUnroutable,
        not_replayable: notReplayable,
        failed,
        pending: remaining?.n ?? 0,
      },
      failed.length > 0 ? 503 : 200,
    );
  });
