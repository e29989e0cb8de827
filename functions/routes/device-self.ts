/**
 * What a device does about itself with its own token: fetch its commands (long poll), answer
 * them, report state that is not a reading, and say it is going away (or a gateway reports its
 * last will).
 */

import type { Context } from "hono";
import { Hono } from "hono";
import { z } from "zod";
import type { Command } from "../../durable-objects/command-outbox";
import { bearerToken, parseDeviceToken } from "../../shared/credentials";
import { CommandResultRequest, PresenceRequest, ReportedPatch } from "../../shared/schemas/twin";
import { type AppEnv, authFailed } from "../middleware/auth";
import { twin } from "../registry";
import { deviceBody, fail, validate } from "../validate";

/** A command as a device (or the agent on its behalf) receives it. */
export function deliveredCommand({ id, command, parameters, expires_at, attempts, correlation_id }: Command) {
  return { id, command, parameters, expires_at, attempts, correlation_id };
}

async function deviceCredential(c: Context<AppEnv>) {
  const token = bearerToken(c.req.header("authorization"));
  const parsed = token ? parseDeviceToken(token) : undefined;
  if (!parsed) return authFailed(c, "send Authorization: Bearer <device token>");
  return { ...parsed, twin: twin(c.env, parsed.deviceId) };
}

export const deviceSelfRoutes = new Hono<AppEnv>()
  .get("/commands", validate("query", z.strictObject({ wait_s: z.coerce.number().int().min(0).max(30).default(0) })), async (c) => {
    const device = await deviceCredential(c);
    const result = await device.twin.pollCommands(device.secret, c.req.valid("query").wait_s * 1000);
    if (!result.ok) return result.code === "unauthorized" ? authFailed(c, result.message) : fail(result);
    return c.json({ commands: result.commands.map(deliveredCommand) });
  })
  .post("/commands/:id/result", async (c) => {
    const device = await deviceCredential(c);
    const outcome = await deviceBody(c, device, CommandResultRequest);
    const result = await device.twin.completeCommand(device.secret, c.req.param("id"), outcome);
    if (!result.ok) return result.code === "unauthorized" ? authFailed(c, result.message) : fail(result);
    return c.json({ command: result.command });
  })
  .patch("/twin/reported", async (c) => {
    const device = await deviceCredential(c);
    const { reported } = await deviceBody(c, device, ReportedPatch);
    const result = await device.twin.reportState(device.secret, reported);
    if (!result.ok) return result.code === "unauthorized" ? authFailed(c, result.message) : fail(result);
    return c.json(result.twin);
  })
  .post("/presence", async (c) => {
    const device = await deviceCredential(c);
    const request = await deviceBody(c, device, PresenceRequest);
    const result = await device.twin.presence(
      device.secret,
      request.status,
      request.reason ?? (request.status === "online" ? "connect" : "disconnect"),
    );
    if (!result.ok) return result.code === "unauthorized" ? authFailed(c, result.message) : fail(result);
    return c.json({ availability: result.availability });
  });
