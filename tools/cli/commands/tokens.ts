/**
 * edgemesh tokens: login tokens for people (admins issue them, POST /v1/auth/token grant
 * `issue`), and access tokens from the admin token or a login token (the WebSocket and the
 * dashboard take those).
 */
import type { AccessAnswer } from "../../../shared/schemas/api/auth.ts";
import { type CommandSpec, int, positional, str } from "../command.ts";
import { UsageError } from "../errors.ts";
import { fields } from "../output.ts";

function accessText(a: AccessAnswer): string {
  return `${fields([
    ["sub", a.sub],
    ["role", a.role],
    ["expires", new Date(a.expires_at * 1000).toISOString()],
  ])}\n\n${a.access_token}`;
}

export const tokens: Record<string, CommandSpec> = {
  issue: {
    summary: "a login (refresh) token for a person, with a role (admin only)",
    args: ["<sub>"],
    options: {
      role: { type: "string", value: "viewer|operator|admin", help: "what they may do (required)" },
      ttl: { type: "string", value: "SECONDS", help: "how long it lasts (default REFRESH_TOKEN_TTL_SECONDS, 30 days)" },
    },
    notes:
      "Example: edgemesh tokens issue alice@example.com --role viewer\nThey exchange it for access tokens with `edgemesh tokens access --refresh-token …` or the dashboard's login.",
    async run(ctx) {
      const sub = positional(ctx, 0, "who the token is for (e.g. alice@example.com)");
      const role = str(ctx.values, "role");
      if (!role) throw new UsageError("tokens issue needs --role viewer, operator or admin");
      const ttl = int(ctx.values, "ttl", 60, 365 * 86_400);
      const answer = await ctx.client.request<{ refresh_token: string; sub: string; role: string; expires_at: string }>(
        "POST",
        "/v1/auth/token",
        {
          body: { grant_type: "issue", sub, role, ...(ttl !== undefined && { ttl_s: ttl }) },
        },
      );
      const text = `${fields([
        ["sub", answer.sub],
        ["role", answer.role],
        ["expires", answer.expires_at],
      ])}\n\nLogin token (shown once; hand it over privately):\n${answer.refresh_token}`;
      return { data: answer, text };
    },
  },
  access: {
    summary: "a short-lived access token (JWT) from the admin token or a login token",
    options: {
      "refresh-token": { type: "string", value: "TOKEN", help: "a login token (default: exchange the admin token in EDGEMESH_TOKEN)" },
    },
    async run(ctx) {
      const refresh = str(ctx.values, "refresh-token") ?? ctx.io.env.EDGEMESH_REFRESH_TOKEN;
      const body = refresh
        ? { grant_type: "refresh_token", refresh_token: refresh }
        : { grant_type: "admin_token", admin_token: ctx.client.requireToken() };
      const answer = await ctx.client.request<AccessAnswer>("POST", "/v1/auth/token", { body, token: null });
      return { data: answer, text: accessText(answer) };
    },
  },
};
