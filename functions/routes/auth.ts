/** POST /v1/auth/token: exchange the admin token or a login token for access tokens; admins issue login tokens. */
import { Hono } from "hono";
import { z } from "zod";
import { readConfig } from "../../shared/config";
import type { AccessAnswer } from "../../shared/schemas/api/auth";
import { issueToken, Role, TokenError, verifyToken } from "../auth/tokens";
import { ApiError } from "../errors";
import { isRevoked, recordIssued } from "../login-tokens";
import { type AppEnv, authenticate, authFailed, isAdminToken } from "../middleware/auth";
import { jsonBody, parseWith } from "../validate";

const TokenRequest = z.discriminatedUnion("grant_type", [
  z.strictObject({ grant_type: z.literal("admin_token"), admin_token: z.string().min(1).max(512) }),
  z.strictObject({ grant_type: z.literal("refresh_token"), refresh_token: z.string().min(1).max(4096) }),
  z.strictObject({
    grant_type: z.literal("issue"),
    sub: z.string().regex(/^[A-Za-z0-9@._-]{1,128}$/, { message: "sub is 1-128 of letters, digits and @ . _ -" }),
    role: Role,
    ttl_s: z
      .int()
      .min(60)
      .max(365 * 86_400)
      .optional(),
  }),
]);

export const authRoutes = new Hono<AppEnv>().post("/token", async (c) => {
  const request = parseWith(TokenRequest, await jsonBody(c));
  const config = readConfig(c.env);
  const secret = c.env.JWT_SECRET;
  const access = async (sub: string, role: Role): Promise<AccessAnswer> => {
    const { token, exp } = await issueToken(secret, { sub, role, typ: "access" }, config.ACCESS_TOKEN_TTL_SECONDS);
    return { access_token: token, token_type: "Bearer", expires_in: config.ACCESS_TOKEN_TTL_SECONDS, expires_at: exp, sub, role };
  };
  try {
    switch (request.grant_type) {
      case "admin_token": {
        if (!(await isAdminToken(c.env, request.admin_token))) return authFailed(c, "the admin token is not valid");
        const refresh = await issueToken(secret, { sub: "admin", role: "admin", typ: "refresh" }, config.REFRESH_TOKEN_TTL_SECONDS);
        return c.json({ ...(await access("admin", "admin")), refresh_token: refresh.token });
      }
      case "refresh_token": {
        const claims = await verifyToken(secret, request.refresh_token, "refresh");
        if (await isRevoked(c.env, request.refresh_token)) return authFailed(c, "the login token was revoked");
        return c.json(await access(claims.sub, claims.role));
      }
      case "issue": {
        const caller = await authenticate(c);
        if (caller.role !== "admin") throw new ApiError("forbidden", "only admins issue login tokens");
        const ttl = Math.min(request.ttl_s ?? config.REFRESH_TOKEN_TTL_SECONDS, config.REFRESH_TOKEN_TTL_SECONDS);
        const { token, exp } = await issueToken(secret, { sub: request.sub, role: request.role, typ: "refresh" }, ttl);
        const expires_at = new Date(exp * 1000).toISOString();
        const id = await recordIssued(c.env, token, {
          sub: request.sub,
          role: request.role,
          issued_by: caller.sub,
          issued_at: new Date().toISOString(),
          expires_at,
        });
        return c.json({ refresh_token: token, id, sub: request.sub, role: request.role, expires_at }, 201);
      }
    }
  } catch (error) {
    if (error instanceof TokenError) {
      if (error.message.startsWith("JWT_SECRET")) throw new ApiError("unavailable", error.message);
      return authFailed(c, error.message);
    }
    throw error;
  }
});
