/**
 * Who is calling, and may they. People and dashboards carry a JWT access token (or, behind
 * Cloudflare Access, its assertion); the bootstrap `ADMIN_TOKEN` acts as an admin; devices carry
 * their own tokens, checked by their Durable Objects (routes/ingest.ts, routes/device-self.ts).
 * Failed attempts count against the client address (Cloudflare's rate-limiting binding): past
 * the limit they get 429 with Retry-After instead of 401, which makes guessing impractical.
 */
import type { Context, MiddlewareHandler } from "hono";
import { bearerToken } from "../../shared/credentials";
import { sha256Hex } from "../../shared/ids";
import { type AccessConfig, accessConfigured, verifyAccessAssertion } from "../auth/access";
import { looksLikeJwt, type Role, roleAllows, TokenError, verifyToken } from "../auth/tokens";
import { ApiError } from "../errors";

export interface Principal {
  sub: string;
  role: Role;
  /** Seconds since the epoch when the credential stops working; 0 for the admin token. */
  exp: number;
  via: "admin_token" | "jwt" | "access";
}

export type AppEnv = { Bindings: Env; Variables: { principal: Principal } };

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

/** Compares two secrets in constant time (hashed first, so their lengths leak nothing). */
export async function sameSecret(a: string, b: string): Promise<boolean> {
  const [x, y] = await Promise.all([sha256Hex(a), sha256Hex(b)]);
  return crypto.subtle.timingSafeEqual(new TextEncoder().encode(x), new TextEncoder().encode(y));
}

export async function isAdminToken(env: Env, token: string): Promise<boolean> {
  if (!env.ADMIN_TOKEN)
    throw new ApiError("unavailable", "ADMIN_TOKEN is not set: `wrangler secret put ADMIN_TOKEN` (or .dev.vars locally)");
  return sameSecret(token, env.ADMIN_TOKEN);
}

/**
 * Authenticates a person or tool from a bearer credential (JWT or the admin token) or a
 * Cloudflare Access assertion. `bearer` lets the WebSocket route pass a token it found elsewhere.
 */
export async function authenticate(c: Context<AppEnv>, bearer = bearerToken(c.req.header("authorization"))): Promise<Principal> {
  try {
    if (bearer && looksLikeJwt(bearer)) {
      const claims = await verifyToken(c.env.JWT_SECRET, bearer, "access");
      return { sub: claims.sub, role: claims.role, exp: claims.exp, via: "jwt" };
    }
    if (bearer) {
      if (await isAdminToken(c.env, bearer)) return { sub: "admin", role: "admin", exp: 0, via: "admin_token" };
      return authFailed(c, "the token is neither a valid access token nor the admin token");
    }
    const assertion = c.req.header("cf-access-jwt-assertion");
    if (assertion && accessConfigured(c.env as AccessConfig)) {
      const person = await verifyAccessAssertion(c.env as AccessConfig, assertion);
      return { ...person, via: "access" };
    }
  } catch (error) {
    if (error instanceof TokenError) {
      // An expired token is a normal event for a dashboard: it refreshes, it is no attack.
      if (error.reason === "expired")
        throw new ApiError("unauthorized", `${error.message}: get a new one from POST /v1/auth/token`, { extra: { reason: "expired" } });
      return authFailed(c, error.message);
    }
    throw error;
  }
  return authFailed(c, "send Authorization: Bearer <access token> (POST /v1/auth/token gives one)");
}

/** Routes for people: `viewer` reads, `operator` also acts on devices, `admin` manages. */
export function requireRole(role: Role): MiddlewareHandler<AppEnv> {
  return async function requireRoleMiddleware(c, next) {
    const principal = await authenticate(c);
    if (!roleAllows(principal.role, role)) throw new ApiError("forbidden", `this needs the ${role} role; you are ${principal.role}`);
    c.set("principal", principal);
    await next();
  };
}
