/**
 * Turns one MQTT publish of the LAN into the message the edge takes (seed 004's bridge step):
 * topic → routing key and device, enrichment (processing time, source metadata), validation.
 */
import { derivedId, MESSAGE_ID_PATTERN, newMessageId } from "../shared/ids.ts";
import { EventPayload, TelemetryPayload } from "../shared/schemas/message.ts";
import { mapTopic } from "../shared/topics.ts";
import type { AgentRule } from "./config.ts";

export interface LanMessage {
  device: string;
  id: string;
  type: "telemetry" | "metric" | "event";
  routing_key: string;
  timestamp: string;
  payload: Record<string, unknown>;
  metadata: Record<string, string | number | boolean | null>;
}

export type Conversion =
  | { ok: true; message: LanMessage; rule: AgentRule }
  | { ok: false; reason: "unmapped" | "invalid"; device?: string; detail: string };

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

function isReading(value: unknown): boolean {
  if (typeof value === "number") return Number.isFinite(value);
  if (typeof value === "boolean") return true;
  return typeof value === "object" && value !== null && "value" in value && "unit" in value;
}

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
  const device = mapping.device ?? rule.device;
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw.toString("utf8"));
  } catch {
    // A bare number is a common sensor payload: one reading named after the topic's last level.
    const value = Number(raw.toString("utf8").trim());
    if (raw.length === 0 || !Number.isFinite(value)) return { ok: false, reason: "invalid", device, detail: "payload is not JSON" };
    parsed = { [topic.split("/").at(-1) ?? "value"]: value };
  }
  if (typeof parsed === "number") parsed = { [topic.split("/").at(-1) ?? "value"]: parsed };
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed))
    return { ok: false, reason: "invalid", device, detail: "payload is not a JSON object" };
  const body = parsed as Record<string, unknown>;
  const inner = typeof body.payload === "object" && body.payload !== null ? (body.payload as Record<string, unknown>) : body;

  const deviceTime = timestampOf(body.timestamp ?? body.time ?? body.ts ?? inner.timestamp);
  const timestamp = deviceTime ?? now.toISOString();

  let payload: Record<string, unknown>;
  if (rule.type === "event") {
    payload = Object.fromEntries(Object.entries(inner).filter(([k]) => !ENVELOPE_FIELDS.has(k)));
    const check = EventPayload.safeParse(payload);
    if (!check.success)
      return {
        ok: false,
        reason: "invalid",
        device,
        detail: check.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; "),
      };
  } else {
    // Status words (Zigbee2MQTT's "state": "ON") are not readings; they ride in the twin via events.
    payload = Object.fromEntries(Object.entries(inner).filter(([k, v]) => !ENVELOPE_FIELDS.has(k) && isReading(v)));
    const check = TelemetryPayload.safeParse(payload);
    if (!check.success)
      return {
        ok: false,
        reason: "invalid",
        device,
        detail: check.error.issues.map((i) => `${i.path.join(".") || "payload"}: ${i.message}`).join("; "),
      };
  }

  // The same publish redelivered (the broker resends what the agent had not acknowledged) must
  // carry the same id, so the edge stores it once: derive it from the device's own time and body.
  const ownId = typeof body.id === "string" && MESSAGE_ID_PATTERN.test(body.id) ? body.id : undefined;
  const id = ownId ?? (deviceTime ? await derivedId(device, topic, raw.toString("base64")) : newMessageId());
  return {
    ok: true,
    rule,
    message: {
      device,
      id,
      type: rule.type,
      routing_key: mapping.routingKey,
      timestamp,
      payload,
      metadata: {
        source_topic: topic.slice(0, 256),
        agent: source.agent,
        broker: source.broker.slice(0, 256),
        processed_at: now.toISOString(),
      },
    },
  };
}
