/**
 * Credentials at the HTTP edge. Admin calls carry the bootstrap `ADMIN_TOKEN` (a secret);
 * device calls carry `<device-id>.<secret>`, verified by the device's own Durable Object.
 * Failed attempts count against the client address (Cloudflare's rate-limiting binding): past
 * the limit they get 429 with Retry-After instead of 401, which makes guessing impractical.
 */
import type { Context, MiddlewareHandler } from "hono";
import { bearerToken } from "../../shared/credentials";
import { sha256Hex } from "../../shared/ids";
import { ApiError } from "../errors";

export type AppEnv = { Bindings: Env; Variables: { principal: string } };

export function clientAddress(c: Context): string {
  return c.req.header("cf-connecting-ip") ?? "unknown";
}

/** Counts a failed authentication and throws the error the client gets. */
export async function authFailed(c: Context<AppEnv>, message: string): Promise<never> {
  const { success } = await c.env.AUTH_FAILURES.limit({ key: clientAddress(c) });
  if (!success) {
    throw new ApiError("too_many_failed_attempts", "too many failed authentication attempts from this address; wait a minute", {
      headers: { "retry-after": "60" },
    });
  }
  throw new ApiError("unauthorized", message, { headers: { "www-authenticate": 'Bearer realm="edgemesh"' } });
}

async function sameSecret(a: string, b: string): Promise<boolean> {
  const [x, y] = await Promise.all([sha256Hex(a), sha256Hex(b)]);
  return crypto.subtle.timingSafeEqual(new TextEncoder().encode(x), new TextEncoder().encode(y));
}

/** Admin-only routes: the bootstrap token (user roles and JWTs arrive with the dashboard). */
export function requireAdmin(): MiddlewareHandler<AppEnv> {
  return async function requireAdmin(c, next) {
    const expected = c.env.ADMIN_TOKEN;
    if (!expected) {
      throw new ApiError("unavailable", "ADMIN_TOKEN is not set: `wrangler secret put ADMIN_TOKEN` (or .dev.vars locally)");
    }
    const token = bearerToken(c.req.header("authorization"));
    if (!token) return authFailed(c, "send Authorization: Bearer <admin token>");
    if (!(await sameSecret(token, expected))) return authFailed(c, "the admin token is not valid");
    c.set("principal", "admin");
    await next();
  };
}
