/**
 * Ingest: devices post telemetry and events, services publish to an exchange. The Worker only
 * reads and splits the body; the device's DeviceTwin does the rest in one call.
 */

import type { Context } from "hono";
import { Hono } from "hono";
import type { IngestOutcome } from "../../durable-objects/device-twin";
import { findExchange } from "../../shared/bus/topology";
import { readConfig } from "../../shared/config";
import { bearerToken, parseDeviceToken } from "../../shared/credentials";
import { ERROR_CODES } from "../../shared/error-codes";
import { metrics } from "../../shared/metrics";
import type { MessageType } from "../../shared/schemas/message";
import { bodyFormat, jsonLimits, type ParsedBatch, parseBatch, readLimitedText } from "../body";
import { ApiError } from "../errors";
import { type AppEnv, authFailed } from "../middleware/auth";
import { twin } from "../registry";

interface Endpoint {
  defaultType: MessageType;
  allowedTypes: MessageType[];
  exchange?: string;
}

const DEFAULT_TYPE_BY_EXCHANGE: Record<string, MessageType> = {
  sensors: "telemetry",
  metrics: "metric",
  "home.events": "event",
  alerts: "alert",
  ai: "inference_request",
  archive: "event",
};

async function ingest(c: Context<AppEnv>, endpoint: Endpoint): Promise<Response> {
  const started = performance.now();
  try {
    return await ingestTimed(c, endpoint);
  } finally {
    // performance.now() advances only across I/O in Workers: it measures the waits that matter.
    metrics.observe("edgemesh_ingest_duration_seconds", (performance.now() - started) / 1000, { transport: "https" });
  }
}

async function ingestTimed(c: Context<AppEnv>, endpoint: Endpoint): Promise<Response> {
  const config = readConfig(c.env);
  const token = bearerToken(c.req.header("authorization"));
  const parsedToken = token ? parseDeviceToken(token) : undefined;
  if (!parsedToken) return authFailed(c, "send Authorization: Bearer <device token>");

  const device = twin(c.env, parsedToken.deviceId);
  let batch: ParsedBatch;
  try {
    const format = bodyFormat(c.req.header("content-type"));
    batch = parseBatch(await readLimitedText(c.req.raw, config.MAX_BODY_BYTES), format, config.MAX_BATCH_MESSAGES, jsonLimits(config));
  } catch (error) {
    // A bad body from a bad credential is an authentication failure first; from a good one it
    // is recorded against the device, like any rejected message (seed 003).
    if (
      error instanceof ApiError &&
      !(await device.recordRejection(parsedToken.secret, {
        index: 0,
        code: error.code,
        issues: error.issues.length ? error.issues : [{ path: "", message: error.message }],
      }))
    ) {
      return authFailed(c, "the device token is not valid");
    }
    throw error;
  }

  const twinStarted = performance.now();
  const outcome: IngestOutcome = await device.ingest({
    secret: parsedToken.secret,
    items: batch.items,
    preRejected: batch.preRejected,
    defaultType: endpoint.defaultType,
    allowedTypes: endpoint.allowedTypes,
    exchange: endpoint.exchange,
    transport: "https",
  });
  metrics.observe("edgemesh_twin_duration_seconds", (performance.now() - twinStarted) / 1000);

  if (!outcome.ok) {
    if (outcome.code === "unauthorized") return authFailed(c, outcome.message);
    throw new ApiError(outcome.code, outcome.message, {
      headers: outcome.retryAfterSeconds ? { "retry-after": String(outcome.retryAfterSeconds) } : {},
    });
  }

  const body = {
    accepted: outcome.accepted,
    duplicates: outcome.duplicates,
    rejected: outcome.rejected,
    ids: outcome.ids,
    routed: outcome.routed,
  };
  if (outcome.accepted === 0 && outcome.duplicates === 0) {
    // Nothing in the request was good: answer with the one message's own status, or 400 for a batch.
    const first = outcome.rejected[0];
    const codes = new Set(outcome.rejected.map((r) => r.code));
    const code = first && codes.size === 1 ? first.code : "invalid_payload";
    // A single message answers with its own status; a batch with no good message is a 400.
    const status = batch.single ? ERROR_CODES[code].status : 400;
    const issues = outcome.rejected.flatMap((r) =>
      r.issues.map((i) => ({ path: batch.single ? i.path : [String(r.index), i.path].filter(Boolean).join("."), message: i.message })),
    );
    throw new ApiError(
      code,
      batch.single
        ? (first?.issues.map((i) => `${i.path || "message"}: ${i.message}`).join("; ") ?? "")
        : "no message in the batch was accepted",
      {
        status,
        issues,
        extra: { rejected: outcome.rejected },
      },
    );
  }
  return c.json(body, 202);
}

export const ingestRoutes = new Hono<AppEnv>()
  .post("/telemetry", (c) => ingest(c, { defaultType: "telemetry", allowedTypes: ["telemetry", "metric"] }))
  .post("/events", (c) => ingest(c, { defaultType: "event", allowedTypes: ["event", "alert", "command_result"] }))
  .post("/exchanges/:exchange/publish", (c) => {
    const name = c.req.param("exchange");
    const exchange = findExchange(name);
    if (!exchange) throw ApiError.field("unknown_exchange", "exchange", `no exchange named "${name}"; GET /v1/topology lists them`);
    if (exchange.name === "dead.letter") throw ApiError.field("forbidden", "exchange", "only the edge publishes to dead.letter");
    return ingest(c, {
      defaultType: DEFAULT_TYPE_BY_EXCHANGE[exchange.name] ?? "event",
      allowedTypes: ["telemetry", "metric", "event", "alert", "command_result", "inference_request", "inference_result"],
      exchange: exchange.name,
    });
  });
