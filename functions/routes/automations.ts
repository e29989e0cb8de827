/** Automations (seed 000 flow 3): create, list, get, replace, delete, and their recorded runs. docs/automations.md. */
import { type Context, Hono } from "hono";
import { z } from "zod";
import { clockStub } from "../../durable-objects/stubs";
import { newMessageId } from "../../shared/ids";
import { log } from "../../shared/log";
import { deleteAutomation, getAutomation, listAutomations, listRuns, saveAutomation } from "../../shared/repos/automations";
import { AutomationInput } from "../../shared/schemas/automations";
import { ApiError } from "../errors";
import { type AppEnv, requireRole } from "../middleware/auth";
import { jsonBody, parseWith, validate } from "../validate";

/** Tells the clock that schedules may have changed; the answer does not wait for it. */
function resync(c: Context<AppEnv>): void {
  c.executionCtx.waitUntil(
    clockStub(c.env)
      .sync()
      .catch((error: unknown) => log("warn", "automation clock sync failed", { error: String(error) })),
  );
}

function idParam(raw: string): string {
  if (!/^[0-9a-f-]{36}$/.test(raw)) throw ApiError.field("not_found", "id", `"${raw.slice(0, 80)}" is not an automation id`);
  return raw;
}

async function found(env: Env, raw: string) {
  const automation = await getAutomation(env.DB, idParam(raw));
  if (!automation) throw new ApiError("not_found", `no automation "${raw}"`);
  return automation;
}

export const automationRoutes = new Hono<AppEnv>()
  .post("/", requireRole("operator"), async (c) => {
    const input = parseWith(AutomationInput, await jsonBody(c));
    const automation = await saveAutomation(c.env.DB, newMessageId(), input, new Date().toISOString(), true);
    if (!automation) throw new ApiError("internal", "the automation was not stored");
    resync(c);
    c.header("location", `/api/automations/${automation.id}`);
    return c.json({ automation }, 201);
  })
  .get("/", requireRole("viewer"), async (c) => c.json({ automations: await listAutomations(c.env.DB) }))
  .get("/:id", requireRole("viewer"), async (c) => c.json({ automation: await found(c.env, c.req.param("id")) }))
  .put("/:id", requireRole("operator"), async (c) => {
    const id = idParam(c.req.param("id"));
    const input = parseWith(AutomationInput, await jsonBody(c));
    const automation = await saveAutomation(c.env.DB, id, input, new Date().toISOString(), false);
    if (!automation) throw new ApiError("not_found", `no automation "${id}"`);
    resync(c);
    return c.json({ automation });
  })
  .delete("/:id", requireRole("operator"), async (c) => {
    const id = idParam(c.req.param("id"));
    if (!(await deleteAutomation(c.env.DB, id))) throw new ApiError("not_found", `no automation "${id}"`);
    resync(c);
    return c.body(null, 204);
  })
  .get(
    "/:id/runs",
    requireRole("viewer"),
    validate("query", z.strictObject({ limit: z.coerce.number().int().min(1).max(1000).default(100) })),
    async (c) => {
      const automation = await found(c.env, c.req.param("id"));
      return c.json({ runs: await listRuns(c.env.DB, automation.id, c.req.valid("query").limit) });
    },
  );
