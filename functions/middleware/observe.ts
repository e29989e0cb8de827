/**
 * Counts every HTTP answer (route pattern, status, error code) into the isolate's metrics tally
 * and flushes the tally to D1 after the response, in waitUntil (shared/metrics.ts).
 */
import type { MiddlewareHandler } from "hono";
import { routePath } from "hono/route";
import { flushEvery, flushMetrics, metrics } from "../../shared/metrics";
import { ApiError } from "../errors";
import type { AppEnv } from "./auth";

export const observe: MiddlewareHandler<AppEnv> = async (c, next) => {
  await next();
  const route = routePath(c, -1);
  const code = c.error instanceof ApiError ? c.error.code : c.res.status >= 500 ? "internal" : "";
  metrics.inc("edgemesh_http_requests_total", {
    method: c.req.method,
    route: route === "*" || route === "/*" ? "(unmatched)" : route,
    status: c.res.status,
    code,
  });
  // Scrapes read the table; they need not write to it each time.
  if (route === "/metrics") return;
  c.executionCtx.waitUntil(flushMetrics(c.env.DB, flushEvery(c.env)));
};
