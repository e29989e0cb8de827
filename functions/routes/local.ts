/**
 * The local edge's stop (scripts/dev.sh, local-edge.ts): only when the Worker runs with the var
 * EDGEMESH_LOCAL=1, which only scripts/lib/local-edge.ts sets; elsewhere these routes are 404.
 *
 * `POST /v1/local/drain` (admin) makes this isolate answer every other request with 503
 * `unavailable` (Retry-After) — senders keep what they have and retry after the restart — and both
 * it and `GET /v1/local/drain` report what is still on its way through the queues: per queue, the
 * messages routed at ingest minus those the consumers delivered or dead-lettered, and the
 * consumers' activity counter (delivered + retried + dead-lettered), which stands still when they
 * are idle. Wrangler's local queue broker keeps its messages in memory only, so the script waits
 * until the backlog is back to where it was when the edge started and the consumers are idle.
 */
import { Hono, type MiddlewareHandler } from "hono";
import { readQueueStats } from "../../queues/history";
import { flushMetrics } from "../../shared/metrics";
import { ApiError } from "../errors";
import { type AppEnv, requireRole } from "../middleware/auth";

let draining = false;

const isLocal = (env: Env) => (env as { EDGEMESH_LOCAL?: string }).EDGEMESH_LOCAL === "1";

/** While draining, nothing but the drain status and the health check is served. */
export const localGate: MiddlewareHandler<AppEnv> = async (c, next) => {
  if (draining && !c.req.path.startsWith("/v1/local/") && c.req.path !== "/v1/health") {
    throw new ApiError("unavailable", "the local edge is stopping (draining its queues); retry after it restarts", {
      headers: { "retry-after": "5" },
    });
  }
  await next();
};

export interface DrainStatus {
  draining: boolean;
  /** Per queue: routed at ingest minus delivered and dead-lettered (can be below 0 after redeliveries). */
  pending: Record<string, number>;
  /** Messages the consumers have handled so far (delivered + retried + dead-lettered), all queues. */
  activity: number;
}

async function drainStatus(env: Env): Promise<DrainStatus> {
  // This isolate's counters (the twins' routing counts among them) reach D1 first.
  await flushMetrics(env.DB, 0);
  const [routed, stats] = await Promise.all([
    env.DB.prepare("SELECT labels, value FROM metric_counters WHERE name = 'edgemesh_routed_messages_total'").all<{
      labels: string;
      value: number;
    }>(),
    readQueueStats(env),
  ]);
  const pending: Record<string, number> = {};
  for (const r of routed.results) {
    const queue = /queue="([^"]*)"/.exec(r.labels)?.[1];
    if (queue) pending[queue] = (pending[queue] ?? 0) + r.value;
  }
  let activity = 0;
  for (const [queue, c] of stats) {
    if (queue in pending) pending[queue] = (pending[queue] ?? 0) - c.delivered - c.dead_lettered;
    activity += c.delivered + c.retried + c.dead_lettered;
  }
  return { draining, pending, activity };
}

export const localRoutes = new Hono<AppEnv>()
  .use(async (c, next) => {
    if (!isLocal(c.env)) throw new ApiError("not_found", `no route ${c.req.method} ${c.req.path}`);
    await next();
  })
  .post("/drain", requireRole("admin"), async (c) => {
    draining = true;
    return c.json(await drainStatus(c.env));
  })
  .get("/drain", requireRole("admin"), async (c) => c.json(await drainStatus(c.env)));
