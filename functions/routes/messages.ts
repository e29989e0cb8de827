/**
 * Seed 002's message repository: recent messages with what happened to each — which queues it
 * was delivered to, retried on, dead-lettered from, replayed to — by device, type, time, or
 * correlation id, so one can follow a message through the mesh (queues/history-lookup.ts reads it).
 */
import { Hono } from "hono";
import { z } from "zod";
import { lookupMessages } from "../../queues/history-lookup";
import { readConfig } from "../../shared/config";
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

export const messageRoutes = new Hono<AppEnv>().get("/", requireRole("viewer"), validate("query", MessagesQuery), async (c) => {
  const q = c.req.valid("query");
  const since = q.since ? new Date(q.since).toISOString() : undefined;
  const messages = await lookupMessages(c.env.DB, { ...q, since }, readConfig(c.env).MESSAGE_HISTORY_DAYS);
  return c.json({ messages });
});
