/**
 * Turning what a sender posted into a complete envelope: parse, validate, enrich (ids, edge
 * time, source, schema version) — the first stages of seed 002's pipeline. Pure: the caller
 * supplies the principal, the clock and the limits, so the HTTPS, MQTT and agent paths share it.
 */
import type { z } from "zod";
import type { ErrorCode, Issue } from "./error-codes";
import { toIssues } from "./error-codes";
import { newMessageId } from "./ids";
import { type Envelope, InboundMessage, type MessageType, PAYLOADS, type Reading, SCHEMA_VERSION, Timestamp } from "./schemas/message";
import { normalizeReadings } from "./units";

export interface Principal {
  id: string;
  type: string;
  room: string | null;
  class?: string;
}

export interface EnvelopeLimits {
  maxFutureSkewMs: number;
  maxAgeMs: number;
}

export interface BuildContext {
  principal: Principal;
  /** The type a message has when it names none (the endpoint's type). */
  defaultType: MessageType;
  /** Types this endpoint accepts. */
  allowedTypes: readonly MessageType[];
  /** Set when the endpoint names the exchange (the service publish endpoint). */
  exchange?: string;
  now: number;
  limits: EnvelopeLimits;
  metadata?: Record<string, string | number | boolean | null>;
}

export type BuildResult = { ok: true; envelope: Envelope } | { ok: false; code: ErrorCode; issues: Issue[] };

const DEFAULT_EXCHANGE: Record<MessageType, string> = {
  telemetry: "sensors",
  metric: "metrics",
  event: "home.events",
  alert: "alerts",
  command: "home.events",
  command_result: "home.events",
  inference_request: "ai",
  inference_result: "ai",
};

/** The routing key a message gets when its sender names none. */
function defaultRoutingKey(type: MessageType, principal: Principal, payload: Record<string, unknown>): string {
  const room = principal.room ?? "unassigned";
  switch (type) {
    case "telemetry":
      return `sensors.${principal.type}.${room}`;
    case "metric":
      return `metrics.application.${principal.id}`;
    case "event":
      return `home.${room}.${principal.id}.${String(payload.event_type)}`;
    case "alert":
      return `alerts.${String(payload.severity)}.${principal.id}`;
    case "inference_request":
      return `ai.model.${String(payload.model)}`;
    case "inference_result":
      return `ai.result.${String(payload.model)}`;
    case "command":
    case "command_result":
      return `home.${room}.${principal.id}.${type}`;
  }
}

function fail(code: ErrorCode, path: string, message: string): BuildResult {
  return { ok: false, code, issues: [{ path, message }] };
}

export function buildEnvelope(raw: unknown, ctx: BuildContext): BuildResult {
  const parsed = InboundMessage.safeParse(raw);
  if (!parsed.success) return { ok: false, code: "invalid_payload", issues: toIssues(parsed.error.issues) };
  const input = parsed.data;

  const type = input.type ?? ctx.defaultType;
  if (!ctx.allowedTypes.includes(type)) {
    return fail("invalid_payload", "type", `this endpoint accepts ${ctx.allowedTypes.join(", ")}, not ${type}`);
  }
  if (input.source !== undefined && input.source !== ctx.principal.id) {
    return fail("source_mismatch", "source", `the credential belongs to "${ctx.principal.id}"`);
  }
  if (ctx.exchange !== undefined && input.exchange !== undefined && input.exchange !== ctx.exchange) {
    return fail("invalid_payload", "exchange", `the URL names exchange "${ctx.exchange}"`);
  }

  if (
    type === "event" &&
    input.event_type !== undefined &&
    isObject(input.payload) &&
    input.payload.event_type !== undefined &&
    input.payload.event_type !== input.event_type
  ) {
    return fail("invalid_payload", "event_type", `differs from payload.event_type ("${String(input.payload.event_type)}"); send one`);
  }
  let rawPayload = input.payload;
  if (type === "event" && input.event_type !== undefined && isObject(rawPayload) && rawPayload.event_type === undefined) {
    rawPayload = { ...rawPayload, event_type: input.event_type };
  }
  // Seed 004's meter puts the reading's time inside its payload: it is the message's time.
  let sentAt = input.timestamp;
  let sentAtPath = "timestamp";
  if ((type === "telemetry" || type === "metric") && isObject(rawPayload) && rawPayload.timestamp !== undefined) {
    const { timestamp: inner, ...readings } = rawPayload;
    const at = Timestamp.safeParse(inner);
    if (!at.success) return fail("invalid_payload", "payload.timestamp", "must be an ISO 8601 date-time with a time zone");
    if (sentAt !== undefined && Date.parse(sentAt) !== Date.parse(at.data)) {
      return fail("invalid_payload", "payload.timestamp", `differs from timestamp (${sentAt}); send one`);
    }
    sentAt = at.data;
    sentAtPath = "payload.timestamp";
    rawPayload = readings;
  }
  const payloadSchema: z.ZodType = PAYLOADS[type];
  const payload = payloadSchema.safeParse(rawPayload);
  if (!payload.success) return { ok: false, code: "invalid_payload", issues: toIssues(payload.error.issues, "payload") };
  if (type === "alert" && isObject(payload.data)) {
    // A device's alert is its own: naming a rule or an alert would let it act on the edge's rule
    // alerts (their channels, their rows), and naming a device would pin it on another.
    const own = payload.data;
    for (const field of ["rule_id", "alert_id"] as const) {
      if (own[field] !== undefined) return fail("forbidden", `payload.${field}`, "set only by the edge's alert rules");
    }
    if (own.device !== undefined && own.device !== ctx.principal.id) {
      return fail("source_mismatch", "payload.device", `the credential belongs to "${ctx.principal.id}"`);
    }
  }

  const receivedAt = new Date(ctx.now).toISOString();
  let timestamp = receivedAt;
  if (sentAt !== undefined) {
    const deviceTime = Date.parse(sentAt);
    if (deviceTime - ctx.now > ctx.limits.maxFutureSkewMs) {
      return fail(
        "timestamp_in_future",
        sentAtPath,
        `${sentAt} is more than ${ctx.limits.maxFutureSkewMs / 1000} s ahead of the edge clock`,
      );
    }
    if (ctx.now - deviceTime > ctx.limits.maxAgeMs) {
      return fail("timestamp_too_old", sentAtPath, `${sentAt} is older than ${ctx.limits.maxAgeMs / 86_400_000} days`);
    }
    timestamp = new Date(deviceTime).toISOString();
  }

  const id = input.id ?? newMessageId();
  const exchange = ctx.exchange ?? input.exchange ?? DEFAULT_EXCHANGE[type];
  const envelope = {
    id,
    correlation_id: input.correlation_id ?? id,
    ...(input.causation_id !== undefined && { causation_id: input.causation_id }),
    source: ctx.principal.id,
    ...(input.target !== undefined && { target: input.target }),
    type,
    exchange,
    routing_key: input.routing_key ?? defaultRoutingKey(type, ctx.principal, payload.data as Record<string, unknown>),
    timestamp,
    received_at: receivedAt,
    // Normalized here, so the twin, the room and every consumer see one unit per quantity.
    payload: type === "telemetry" || type === "metric" ? normalizeReadings(payload.data as Record<string, Reading>) : payload.data,
    // Enrichment: what the edge knows about the sender travels with the message.
    metadata: {
      ...input.metadata,
      device_type: ctx.principal.type,
      ...(ctx.principal.room !== null && { room: ctx.principal.room }),
      ...(ctx.principal.class !== undefined && { device_class: ctx.principal.class }),
      ...ctx.metadata,
    },
    schema_version: SCHEMA_VERSION,
  } as Envelope;
  return { ok: true, envelope };
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
