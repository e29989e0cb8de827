/** GET /v1/auth/tokens and DELETE /v1/auth/tokens/:id: admins list and revoke issued login tokens (docs/auth.md). */
import { Hono } from "hono";
import { z } from "zod";
import { ApiError } from "../errors";
import { listIssued, revoke } from "../login-tokens";
import { type AppEnv, requireRole } from "../middleware/auth";
import { validate } from "../validate";

const TOKEN_ID = /^[0-9a-f-]{36}$/;

export const loginTokenRoutes = new Hono<AppEnv>()
  .use(requireRole("admin"))
  .get("/", validate("query", z.strictObject({ limit: z.coerce.number().int().min(1).max(1000).default(100) })), async (c) =>
    c.json({ tokens: await listIssued(c.env, c.req.valid("query").limit) }),
  )
  .delete("/:id", async (c) => {
    const id = c.req.param("id");
    if (!TOKEN_ID.test(id)) throw ApiError.field("not_found", "id", `"${id.slice(0, 80)}" is not a login token id`);
    const token = await revoke(c.env, id);
    if (!token) throw new ApiError("not_found", `no login token "${id}"`);
    return c.json({ token });
  });
