/** Health and the topology as the edge runs it: exchanges, bindings, queues and their counts. */
import { Hono } from "hono";
import { readQueueStats } from "../../queues/history";
import { BINDINGS, EXCHANGES, QUEUES } from "../../shared/bus/topology";
import { readConfig } from "../../shared/config";
import { log } from "../../shared/log";
import type { AppEnv } from "../middleware/auth";

export const systemRoutes = new Hono<AppEnv>()
  .get("/health", async (c) => {
    const checks: Record<string, { ok: boolean; error?: string }> = {};
    try {
      readConfig(c.env);
      checks.config = { ok: true };
    } catch (error) {
      log("error", "health: configuration", { error: String(error) });
      checks.config = { ok: false, error: "the configuration is invalid; the edge's log names the variable" };
    }
    try {
      await c.env.DB.prepare("SELECT 1 FROM devices LIMIT 1").first();
      checks.registry = { ok: true };
    } catch (error) {
      log("error", "health: registry", { error: String(error) });
      checks.registry = { ok: false, error: "the D1 registry does not answer (are the migrations applied?)" };
    }
    checks.admin_token = c.env.ADMIN_TOKEN ? { ok: true } : { ok: false, error: "ADMIN_TOKEN secret is not set" };
    checks.jwt_secret =
      (c.env.JWT_SECRET ?? "").length >= 32 ? { ok: true } : { ok: false, error: "JWT_SECRET secret is not set (32+ characters)" };
    const ok = Object.values(checks).every((check) => check.ok);
    return c.json({ status: ok ? "ok" : "degraded", checks, time: new Date().toISOString() }, ok ? 200 : 503);
  })
  .get("/topology", async (c) => {
    const stats = await readQueueStats(c.env);
    const deadLetters = await c.env.DB.prepare(
      "SELECT SUM(queue = '(unroutable)') AS unroutable, SUM(status = 'pending') AS pending FROM dead_letters",
    ).first<{ unroutable: number | null; pending: number | null }>();
    return c.json({
      exchanges: EXCHANGES.map((e) => ({ ...e, bindings: BINDINGS.filter((b) => b.exchange === e.name) })),
      queues: QUEUES.map((q) => ({ ...q, counts: stats.get(q.name) ?? { delivered: 0, retried: 0, dead_lettered: 0 } })),
      unroutable: deadLetters?.unroutable ?? 0,
      dead_letters_pending: deadLetters?.pending ?? 0,
    });
  });
