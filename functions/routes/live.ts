/**
 * GET /v1/live: the WebSocket upgrade into a room's LiveHub (docs/live.md). The Worker checks
 * the token, the role and the Origin, then hands the request to the hub with who is connecting.
 */
import { Hono } from "hono";
import { hubName, hubStub } from "../../durable-objects/stubs";
import { readConfig } from "../../shared/config";
import { Slug } from "../../shared/schemas/device";
import { ApiError } from "../errors";
import { type AppEnv, authenticate } from "../middleware/auth";

/** Browsers cannot set headers on a WebSocket: the token rides as a subprotocol `bearer.<jwt>`. */
function tokenFromProtocols(header: string | undefined): string | undefined {
  for (const protocol of (header ?? "").split(",")) {
    const value = protocol.trim();
    if (value.startsWith("bearer.")) return value.slice("bearer.".length);
  }
  return undefined;
}

export function originAllowed(origin: string | undefined, requestUrl: string, allowed: string): boolean {
  if (origin === undefined) return true; // not a browser: nothing to protect against
  if (origin === new URL(requestUrl).origin) return true;
  return allowed
    .split(",")
    .map((o) => o.trim())
    .filter(Boolean)
    .includes(origin);
}

export const liveRoutes = new Hono<AppEnv>().get("/", async (c) => {
  if (c.req.header("upgrade")?.toLowerCase() !== "websocket") {
    throw new ApiError("invalid_query", "GET /v1/live is a WebSocket endpoint: send Upgrade: websocket", { status: 426 });
  }
  const config = readConfig(c.env);
  const origin = c.req.header("origin");
  if (!originAllowed(origin, c.req.url, config.ALLOWED_ORIGINS)) {
    throw ApiError.field("forbidden", "Origin", `${origin} is not in ALLOWED_ORIGINS`);
  }
  const principal = await authenticate(c, tokenFromProtocols(c.req.header("sec-websocket-protocol")) ?? undefined);
  const hub = c.req.query("hub") ?? "unassigned";
  let name: string;
  if (hub === "system") name = "system";
  else if (hub === "unassigned" || Slug.safeParse(hub).success) name = hubName(hub === "unassigned" ? null : hub);
  else throw ApiError.field("invalid_query", "hub", "a room id, unassigned or system");

  const headers = new Headers(c.req.raw.headers);
  // Set here, never taken from the client: the hub trusts them.
  headers.set("x-edgemesh-sub", principal.sub);
  headers.set("x-edgemesh-role", principal.role);
  headers.set("x-edgemesh-exp", String(principal.exp));
  return hubStub(c.env, name).fetch(new Request(c.req.url, { headers }));
});
