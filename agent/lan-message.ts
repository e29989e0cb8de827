/**
 * Turns one MQTT publish of the LAN into the message the edge takes (seed 004's bridge step):
 * topic → routing key and device, enrichment (processing time, source metadata), validation.
 */
import { derivedId, MESSAGE_ID_PATTERN, newMessageId } from "../shared/ids.ts";
import { DeviceId, EventPayload, TelemetryPayload } from "../shared/schemas/message.ts";
import { mapTopic } from "../shared/topics.ts";
import type { AgentRule } from "./config.ts";

export interface LanMessage {
  device: string;
  id: string;
  type: "telemetry" | "metric" | "event";
  /** Absent: the edge routes by the device's registered type and room (the adapters' devices). */
  routing_key?: string;
  timestamp: string;
  payload: Record<string, unknown>;
  metadata: Record<string, string | number | boolean | null>;
}

export type Conversion = { ok: true; message: LanMessage } | { ok: false; reason: "unmapped" | "invalid"; device?: string; detail: string };

/** Fields of a reading payload that describe it rather than being readings. */
const ENVELOPE_FIELDS = new Set(["timestamp", "time", "ts", "id", "device", "device_id"]);

function timestampOf(value: unknown): string | undefined {
  if (typeof value === "number" && Number.isFinite(value)) {
    // Seconds or milliseconds since the epoch, as sensors send them.
    const ms = value < 1e12 ? value * 1000 : value;
    const date = new Date(ms);
    return Number.isNaN(date.getTime()) ? undefined : date.toISOString();
  }
  if (typeof value === "string") {
    const date = new Date(value);
    return Number.isNaN(date.getTime()) ? undefined : date.toISOString();
  }
  return undefined;
}

function issuesText(issues: readonly { path: PropertyKey[]; message: string }[]): string {
  return issues.map((i) => `${i.path.map(String).join(".") || "payload"}: ${i.message}`).join("; ");
}

function isReading(value: unknown): boolean {
  if (typeof value === "number") return Number.isFinite(value);
  if (typeof value === "boolean") return true;
  return typeof value === "object" && value !== null && "value" in value && "unit" in value;
}

export interface Route {
  device: string;
  routingKey: string;
  type: "telemetry" | "metric" | "event";
  /** Where the message came from (an MQTT topic, `kafka:<topic>`), for metadata and derived ids. */
  origin: string;
  /** A stable id from the origin (Kafka: topic, partition, offset); otherwise derived from the body. */
  stableId?: string;
}

/** Maps an MQTT topic with the configured rules and converts its payload. */
export async function convert(
  topic: string,
  raw: Buffer,
  rules: readonly AgentRule[],
  source: { agent: string; broker: string },
  now = new Date(),
): Promise<Conversion> {
  const mapping = mapTopic(topic, rules);
  if (!mapping) return { ok: false, reason: "unmapped", detail: `no rule maps topic "${topic}"` };
  const rule = mapping.rule as AgentRule;
  const route: Route = { device: mapping.device ?? rule.device, routingKey: mapping.routingKey, type: rule.type, origin: topic };
  return convertPayload(
    raw,
    route,
    { agent: source.agent, source: withoutCredentials(source.broker), source_topic: topic.slice(0, 256) },
    now,
  );
}

/** A broker URL as metadata: scheme, host and port, never a user or password. */
export function withoutCredentials(url: string): string {
  try {
    const parsed = new URL(url);
    return `${parsed.protocol}//${parsed.host}`.slice(0, 256);
  } catch {
    return "(unparsable broker url)";
  }
}

/** Validates and enriches one payload for a known route (the MQTT and the Kafka sources). */
export async function convertPayload(
  raw: Buffer,
  route: Route,
  metadata: Record<string, string | number | boolean>,
  now = new Date(),
): Promise<Conversion> {
  const { device } = route;
  // Checked here, not at the edge: a device id the edge cannot take would make it refuse the whole batch.
  const deviceCheck = DeviceId.safeParse(device);
  if (!deviceCheck.success)
    return {
      ok: false,
      reason: "invalid",
      detail: `device id "${device.slice(0, 80)}": ${deviceCheck.error.issues[0]?.message ?? "invalid"}`,
    };
  const lastLevel = route.origin.split(/[/.]/).at(-1) ?? "value";
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw.toString("utf8"));
  } catch {
    // A bare number is a common sensor payload: one reading named after the topic's last level.
    const value = Number(raw.toString("utf8").trim());
    if (raw.length === 0 || !Number.isFinite(value)) return { ok: false, reason: "invalid", device, detail: "payload is not JSON" };
    parsed = { [lastLevel]: value };
  }
  if (typeof parsed === "number") parsed = { [lastLevel]: parsed };
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed))
    return { ok: false, reason: "invalid", device, detail: "payload is not a JSON object" };
  const body = parsed as Record<string, unknown>;
  const inner = typeof body.payload === "object" && body.payload !== null ? (body.payload as Record<string, unknown>) : body;

  const deviceTime = timestampOf(body.timestamp ?? body.time ?? body.ts ?? inner.timestamp);
  const timestamp = deviceTime ?? now.toISOString();

  let payload: Record<string, unknown>;
  if (route.type === "event") {
    payload = Object.fromEntries(Object.entries(inner).filter(([k]) => !ENVELOPE_FIELDS.has(k)));
    const check = EventPayload.safeParse(payload);
    if (!check.success) return { ok: false, reason: "invalid", device, detail: issuesText(check.error.issues) };
  } else {
    // Status words (Zigbee2MQTT's "state": "ON") are not readings; they ride in the twin via events.
    payload = Object.fromEntries(Object.entries(inner).filter(([k, v]) => !ENVELOPE_FIELDS.has(k) && isReading(v)));
    const check = TelemetryPayload.safeParse(payload);
    if (!check.success) return { ok: false, reason: "invalid", device, detail: issuesText(check.error.issues) };
  }

  // The same publish redelivered (the broker resends what the agent had not acknowledged) must
  // carry the same id, so the edge stores it once: derive it from the device's own time and body.
  const ownId = typeof body.id === "string" && MESSAGE_ID_PATTERN.test(body.id) ? body.id : undefined;
  const id = ownId ?? route.stableId ?? (deviceTime ? await derivedId(device, route.origin, raw.toString("base64")) : newMessageId());
  return {
    ok: true,
    message: {
      device,
      id,
      type: route.type,
      ...(route.routingKey !== "" && { routing_key: route.routingKey }),
      timestamp,
      payload,
      metadata: { ...metadata, processed_at: now.toISOString() },
    },
  };
}
