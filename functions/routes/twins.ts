/**
 * Twins and commands, from the operator's side: read a twin, change its desired state with
 * optimistic concurrency, send commands and follow them, read recent readings.
 */
import { Hono } from "hono";
import { z } from "zod";
import { CommandRequest, DesiredPatch } from "../../shared/schemas/twin";
import { ApiError } from "../errors";
import { type AppEnv, requireRole } from "../middleware/auth";
import { twin } from "../registry";
import { deviceIdParam, fail, jsonBody, parseWith, validate } from "../validate";

/** `If-Match: 3` or `If-Match: "3"` (an ETag); anything else is a 400 naming the header. */
function ifMatchVersion(header: string | undefined): number | undefined {
  if (header === undefined) return undefined;
  const match = /^\s*(?:W\/)?"?(\d{1,15})"?\s*$/.exec(header);
  if (!match) throw ApiError.field("invalid_payload", "If-Match", 'send the twin version, for example If-Match: "3"');
  return Number(match[1]);
}

const CommandsQuery = z.strictObject({
  limit: z.coerce.number().int().min(1).max(500).default(50),
  status: z.enum(["queued", "delivered", "succeeded", "failed", "expired"]).optional(),
});

const RecentQuery = z.strictObject({
  metric: z
    .string()
    .regex(/^[a-z][a-z0-9_]{0,63}$/)
    .optional(),
  minutes: z.coerce
    .number()
    .int()
    .min(1)
    .max(7 * 24 * 60)
    .default(60),
  limit: z.coerce.number().int().min(1).max(10_000).default(1000),
});

export const twinRoutes = new Hono<AppEnv>()
  .get("/:id/twin", requireRole("viewer"), async (c) => {
    const view = await twin(c.env, deviceIdParam(c.req.param("id"))).twin();
    if (!view) throw new ApiError("not_found", `no device "${c.req.param("id")}"`);
    c.header("etag", `"${view.version}"`);
    return c.json(view);
  })
  .patch("/:id/twin/desired", requireRole("operator"), async (c) => {
    const id = deviceIdParam(c.req.param("id"));
    const { desired } = parseWith(DesiredPatch, await jsonBody(c));
    const result = await twin(c.env, id).patchDesired(desired, ifMatchVersion(c.req.header("if-match")));
    if (!result.ok) fail(result);
    c.header("etag", `"${result.twin.version}"`);
    return c.json(result.twin);
  })
  .get("/:id/readings", requireRole("viewer"), validate("query", RecentQuery), async (c) => {
    const id = deviceIdParam(c.req.param("id"));
    const q = c.req.valid("query");
    const device = twin(c.env, id);
    if (!(await device.profile())) throw new ApiError("not_found", `no device "${id}"`);
    return c.json({
      device: id,
      readings: await device.recent({ metric: q.metric, sinceMs: Date.now() - q.minutes * 60_000, limit: q.limit }),
    });
  })
  .post("/:id/commands", requireRole("operator"), async (c) => {
    const id = deviceIdParam(c.req.param("id"));
    const request = parseWith(CommandRequest, await jsonBody(c));
    const device = twin(c.env, id);
    const queued = await device.enqueueCommand(request);
    if (!queued.ok) fail(queued);
    const command =
      request.wait_s > 0 ? ((await device.awaitCommand(queued.command.id, request.wait_s * 1000)) ?? queued.command) : queued.command;
    c.header("location", `/v1/devices/${id}/commands/${command.id}`);
    const finished = command.status === "succeeded" || command.status === "failed";
    return c.json({ command }, finished ? 200 : 202);
  })
  .get("/:id/commands", requireRole("viewer"), validate("query", CommandsQuery), async (c) => {
    const id = deviceIdParam(c.req.param("id"));
    const q = c.req.valid("query");
    const device = twin(c.env, id);
    if (!(await device.profile())) throw new ApiError("not_found", `no device "${id}"`);
    return c.json({ device: id, commands: await device.commands(q.limit, q.status) });
  })
  .get("/:id/commands/:command", requireRole("viewer"), async (c) => {
    const command = await twin(c.env, deviceIdParam(c.req.param("id"))).command(c.req.param("command"));
    if (!command) throw new ApiError("not_found", `no command "${c.req.param("command").slice(0, 80)}"`);
    return c.json({ command });
  });
