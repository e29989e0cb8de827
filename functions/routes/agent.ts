/**
 * The LAN agent's routes (docs/agent.md). The agent is a registered service (`kind: service`,
 * `type: agent`) with its own token; it acts for the devices whose registry metadata names it
 * (`metadata.agent = "<agent id>"`), so one credential on the LAN box carries many devices and
 * no device secret ever leaves the registry.
 *
 * - `POST /v1/agent/messages`: a batch of messages of several devices, each naming its `device`,
 *   JSON, optionally gzip-compressed; one twin call per device; answered per message.
 * - `GET /v1/agent/devices/:id/commands?wait_s=`: the device's due commands and its desired state
 *   (long poll, answered early by a command or a change of the desired state).
 * - `POST /v1/agent/devices/:id/commands/:command/result`: a device's answer.
 * - `POST /v1/agent/devices/:id/presence`: availability seen on the LAN (`…/availability`, wills).
 * - `POST /v1/agent/devices/:id/commands`: a command from the LAN (Home Assistant) for a bridged device.
 * - `POST /v1/agent/devices`: auto-provisioning, for agents an admin allowed it (metadata.auto_provision).
 * - `GET /v1/agent/stream`: a WebSocket on which the edge wakes the agent when a device it carries
 *   has commands or a new desired state (durable-objects/agent-link.ts).
 */

import type { Context } from "hono";
import { Hono } from "hono";
import { z } from "zod";
import { agentLinkStub } from "../../durable-objects/stubs";
import { readConfig } from "../../shared/config";
import { bearerToken, parseDeviceToken } from "../../shared/credentials";
import type { ErrorCode } from "../../shared/error-codes";
import type { AgentResult as ApiAgentResult } from "../../shared/schemas/api/agent";
import { AgentDeviceProvision } from "../../shared/schemas/device";
import { CommandRequest, CommandResultRequest, PresenceRequest } from "../../shared/schemas/twin";
import { jsonLimits, parseJsonText, readLimitedText } from "../body";
import { ApiError } from "../errors";
import { type AppEnv, authFailed } from "../middleware/auth";
import { createDevice, getDevice, twin } from "../registry";
import { deviceIdParam, fail, jsonBody, parseWith, validate } from "../validate";
import { deliveredCommand } from "./device-self";

const AgentBatch = z.strictObject({
  messages: z.array(z.looseObject({ device: z.string().max(64) })).min(1),
});

/** The answer's type (shared/schemas/api/agent.ts), its codes narrowed to the edge's own. */
export type AgentResult = DistributiveWithCode<ApiAgentResult>;
type DistributiveWithCode<T> = T extends { code: string } ? Omit<T, "code"> & { code: ErrorCode } : T;

/** Bridged device ids per agent, briefly cached per isolate: the registry is D1, off the twins' path. */
const bridgedCache = new Map<string, { at: number; ids: Set<string> }>();
const BRIDGED_TTL_MS = 30_000;
/** At most this many devices per agent by auto-provisioning (an admin may register more). */
const MAX_BRIDGED_PER_AGENT = 1000;

async function bridgedDevices(env: Env, agentId: string, fresh = false): Promise<Set<string>> {
  const cached = bridgedCache.get(agentId);
  if (cached && !fresh && Date.now() - cached.at < BRIDGED_TTL_MS) return cached.ids;
  const { results } = await env.DB.prepare("SELECT id FROM devices WHERE json_extract(metadata, '$.agent') = ?")
    .bind(agentId)
    .all<{ id: string }>();
  const ids = new Set(results.map((r) => r.id));
  bridgedCache.set(agentId, { at: Date.now(), ids });
  return ids;
}

async function agentCredential(c: Context<AppEnv>): Promise<string> {
  const token = bearerToken(c.req.header("authorization"));
  const parsed = token ? parseDeviceToken(token) : undefined;
  if (!parsed) return authFailed(c, "send Authorization: Bearer <agent token>");
  const agent = twin(c.env, parsed.deviceId);
  if (!(await agent.checkSecret(parsed.secret))) return authFailed(c, "the agent token is not valid");
  const profile = await agent.profile();
  if (profile?.kind !== "service" || profile.type !== "agent")
    throw new ApiError("forbidden", `"${parsed.deviceId}" is not registered as an agent (kind service, type agent)`);
  return parsed.deviceId;
}

/** Devices an admin asked to show in Home Assistant through this agent (metadata.homeassistant_agent). */
async function homeAssistantDevices(env: Env, agentId: string) {
  const { results } = await env.DB.prepare(
    "SELECT id, name, type, room FROM devices WHERE json_extract(metadata, '$.homeassistant_agent') = ? ORDER BY id LIMIT ?",
  )
    .bind(agentId, MAX_BRIDGED_PER_AGENT)
    .all<{ id: string; name: string | null; type: string; room: string | null }>();
  return results;
}

/** The device of a per-device route, which must be one the agent bridges. */
async function bridgedDevice(c: Context<AppEnv>, agentId: string): Promise<string> {
  const id = deviceIdParam(c.req.param("id") ?? "");
  let bridged = await bridgedDevices(c.env, agentId);
  if (!bridged.has(id)) bridged = await bridgedDevices(c.env, agentId, true);
  if (!bridged.has(id)) throw ApiError.field("forbidden", "id", `device "${id}" is not bridged by agent "${agentId}" (metadata.agent)`);
  return id;
}

async function readBody(c: Context<AppEnv>, maxBytes: number): Promise<unknown> {
  const encoding = (c.req.header("content-encoding") ?? "identity").toLowerCase();
  let request = c.req.raw;
  if (encoding === "gzip" && request.body) {
    // The limit applies to the inflated bytes, so a small bomb cannot grow past it.
    request = new Request(request.url, { method: "POST", body: request.body.pipeThrough(new DecompressionStream("gzip")) });
  } else if (encoding !== "identity") {
    throw ApiError.field("unsupported_media_type", "content-encoding", `content encoding "${encoding}" is not gzip or identity`);
  }
  const type = (c.req.header("content-type") ?? "").split(";")[0]?.trim().toLowerCase();
  if (type !== "application/json") throw new ApiError("unsupported_media_type", "send application/json");
  let text: string;
  try {
    text = await readLimitedText(request, maxBytes);
  } catch (error) {
    if (error instanceof ApiError) throw error;
    throw new ApiError("invalid_json", `the gzip body could not be inflated: ${(error as Error).message}`);
  }
  return parseJsonText(text, jsonLimits(readConfig(c.env)));
}

export const agentRoutes = new Hono<AppEnv>()
  .get("/stream", async (c) => {
    // A program, not a browser, so no Origin to check; the agent token is the Authorization header.
    const agentId = await agentCredential(c);
    if (c.req.header("upgrade")?.toLowerCase() !== "websocket")
      throw new ApiError("invalid_query", "GET /v1/agent/stream is a WebSocket endpoint: send Upgrade: websocket", { status: 426 });
    return agentLinkStub(c.env, agentId).fetch(c.req.raw);
  })
  .post("/messages", async (c) => {
    const agentId = await agentCredential(c);
    const config = readConfig(c.env);
    const { messages } = parseWith(AgentBatch, await readBody(c, config.MAX_BODY_BYTES));
    if (messages.length > config.MAX_BATCH_MESSAGES)
      throw ApiError.field("batch_too_large", "messages", `${messages.length} messages; the limit is ${config.MAX_BATCH_MESSAGES}`);

    let bridged = await bridgedDevices(c.env, agentId);
    if (messages.some((m) => !bridged.has(m.device))) bridged = await bridgedDevices(c.env, agentId, true);

    const results: AgentResult[] = new Array(messages.length);
    const byDevice = new Map<string, number[]>();
    messages.forEach((m, index) => {
      if (!bridged.has(m.device)) {
        results[index] = {
          status: "rejected",
          id: typeof m.id === "string" ? m.id : undefined,
          code: "forbidden",
          issues: [{ path: `messages.${index}.device`, message: `device "${m.device}" is not bridged by agent "${agentId}"` }],
        };
      } else byDevice.set(m.device, [...(byDevice.get(m.device) ?? []), index]);
    });

    await Promise.all(
      [...byDevice].map(async ([device, indexes]) => {
        const items = indexes.map((i) => {
          const { device: _device, ...message } = messages[i] as Record<string, unknown>;
          return message;
        });
        const outcome = await twin(c.env, device).ingest({
          secret: null,
          items,
          preRejected: [],
          defaultType: "telemetry",
          allowedTypes: ["telemetry", "metric", "event", "alert", "command_result"],
          transport: "agent",
        });
        indexes.forEach((index, position) => {
          if (!outcome.ok) {
            results[index] = { status: "retry", code: outcome.code, message: outcome.message, retry_after_s: outcome.retryAfterSeconds };
            return;
          }
          const id = outcome.ids[position];
          const rejection = outcome.rejected.find((r) => r.index === position);
          results[index] =
            id != null
              ? { status: "stored", id }
              : { status: "rejected", id: rejection?.id, code: rejection?.code ?? "invalid_payload", issues: rejection?.issues ?? [] };
        });
      }),
    );
    return c.json({ agent: agentId, results });
  })
  .post("/devices", async (c) => {
    // Auto-provisioning: only for an agent an admin allowed it (metadata.auto_provision = true).
    const agentId = await agentCredential(c);
    const agent = await getDevice(c.env, agentId);
    if (agent.metadata.auto_provision !== true)
      throw new ApiError("forbidden", `agent "${agentId}" may not register devices: an admin sets its metadata.auto_provision to true`);
    const input = parseWith(AgentDeviceProvision, await jsonBody(c.req.raw));
    const bridged = await bridgedDevices(c.env, agentId, true);
    if (bridged.has(input.id)) return c.json({ device: await getDevice(c.env, input.id), created: false });
    if (bridged.size >= MAX_BRIDGED_PER_AGENT)
      throw ApiError.field("forbidden", "id", `agent "${agentId}" already bridges ${bridged.size} devices, the limit`);
    // An existing device of someone else is a conflict (409), never taken over.
    const { device } = await createDevice(c.env, {
      id: input.id,
      kind: "device",
      type: input.type,
      class: "mains",
      ...(input.name !== undefined && { name: input.name }),
      ...(input.room !== undefined && { room: input.room }),
      metadata: { agent: agentId, provisioned: "auto", ...(input.ecosystem !== undefined && { ecosystem: input.ecosystem }) },
    });
    bridgedCache.delete(agentId);
    // The token is not handed out: the device speaks through its agent.
    return c.json({ device, created: true }, 201);
  })
  .get(
    "/devices/:id/commands",
    validate("query", z.strictObject({ wait_s: z.coerce.number().int().min(0).max(30).default(0) })),
    async (c) => {
      const id = await bridgedDevice(c, await agentCredential(c));
      const device = twin(c.env, id);
      const commands = await device.takeCommands(c.req.valid("query").wait_s * 1000, false);
      const view = await device.twin();
      return c.json({
        device: id,
        commands: commands.map(deliveredCommand),
        desired: { version: view?.version ?? 0, state: view?.desired ?? {} },
      });
    },
  )
  .get("/homeassistant/devices", async (c) => {
    // Edge-native devices shown in Home Assistant through this agent: their latest readings and availability.
    const agentId = await agentCredential(c);
    const rows = await homeAssistantDevices(c.env, agentId);
    const devices = await Promise.all(
      rows.map(async (row) => {
        const view = await twin(c.env, row.id).twin();
        return {
          id: row.id,
          ...(row.name !== null && { name: row.name }),
          type: row.type,
          ...(row.room !== null && { room: row.room }),
          availability: view?.availability.status ?? "offline",
          readings: view?.reported.readings ?? {},
        };
      }),
    );
    return c.json({ agent: agentId, devices });
  })
  .post("/devices/:id/commands", async (c) => {
    // A command from the LAN (Home Assistant's command topic, docs/homeassistant.md) for a device
    // this agent bridges or shows in Home Assistant: queued at the twin as any other, so it is
    // kept, retried and answered.
    const agentId = await agentCredential(c);
    const requested = deviceIdParam(c.req.param("id") ?? "");
    const shown = (await homeAssistantDevices(c.env, agentId)).some((d) => d.id === requested);
    const id = shown ? requested : await bridgedDevice(c, agentId);
    const request = parseWith(CommandRequest, await jsonBody(c.req.raw));
    const queued = await twin(c.env, id).enqueueCommand({ ...request, wait_s: 0 });
    if (!queued.ok) fail(queued);
    return c.json({ command: queued.command }, 202);
  })
  .post("/devices/:id/commands/:command/result", async (c) => {
    const id = await bridgedDevice(c, await agentCredential(c));
    const outcome = parseWith(CommandResultRequest, await jsonBody(c));
    const result = await twin(c.env, id).completeCommand(null, c.req.param("command"), outcome);
    if (!result.ok) return fail(result);
    return c.json({ command: result.command });
  })
  .post("/devices/:id/presence", async (c) => {
    const id = await bridgedDevice(c, await agentCredential(c));
    const request = parseWith(PresenceRequest, await jsonBody(c));
    await twin(c.env, id).signalPresence(request.status, request.reason ?? (request.status === "online" ? "connect" : "disconnect"));
    return c.json({ device: id, status: request.status });
  });
