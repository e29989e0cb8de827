/**
 * The message contract: the envelope every message travels in, and the payload of each message
 * type of seeds 000 and 002. The single source of every message type: TypeScript types are
 * inferred from these schemas, never written by hand.
 */
import { z } from "zod";
import { DEVICE_ID_PATTERN, MESSAGE_ID_PATTERN } from "../ids.ts";
import { KEY_PROBLEM_MESSAGES, routingKeyProblem } from "../topics.ts";

export const SCHEMA_VERSION = 1;

export const MessageId = z.string().regex(MESSAGE_ID_PATTERN, {
  message: "must be 1-128 characters of letters, digits and . _ : -, starting with a letter or digit",
});

export const DeviceId = z.string().regex(DEVICE_ID_PATTERN, {
  message: "must be 1-64 characters of a-z, 0-9, _ and -, starting with a letter or digit",
});

export const RoutingKey = z.string().superRefine((key, ctx) => {
  const problem = routingKeyProblem(key);
  if (problem) ctx.addIssue({ code: "custom", message: `routing key ${KEY_PROBLEM_MESSAGES[problem]}` });
});

export const Timestamp = z.iso.datetime({ offset: true, message: "must be an ISO 8601 date-time with a time zone" });

/** Reading and metric names: the column-like names series stores and dashboards show. */
export const MetricName = z.string().regex(/^[a-z][a-z0-9_]{0,63}$/, {
  message: "must be 1-64 characters of a-z, 0-9 and _, starting with a letter",
});

const ShortText = z.string().max(256);

/** Metadata: flat, small, scalar; it rides along every hop. */
export const Metadata = z
  .record(
    z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, { message: "metadata keys are 1-64 of A-Z a-z 0-9 _ . -" }),
    z.union([ShortText, z.number(), z.boolean(), z.null()]),
  )
  .refine((m) => Object.keys(m).length <= 32, { message: "at most 32 metadata entries" });

/** A reading: a bare number or boolean, or a value with its unit. z.number() rejects NaN and ±Infinity. */
export const Reading = z.union(
  [
    z.number(),
    z.boolean(),
    z.strictObject({
      value: z.number(),
      unit: z.string().min(1).max(16),
      /** Set by normalization: the value and unit the device sent. */
      original: z.strictObject({ value: z.number(), unit: z.string().max(16) }).optional(),
    }),
  ],
  { error: "a reading is a finite number, a boolean, or {value: <finite number>, unit: <text>}" },
);
export type Reading = z.infer<typeof Reading>;

const METRIC_NAME = /^[a-z][a-z0-9_]{0,63}$/;

/** Readings by name; names are checked here so that the issue names the key at fault. */
export const Readings = z.record(z.string(), Reading).superRefine((readings, ctx) => {
  const names = Object.keys(readings);
  if (names.length === 0) ctx.addIssue({ code: "custom", message: "must hold at least one reading" });
  if (names.length > 64) ctx.addIssue({ code: "custom", message: "at most 64 readings per message" });
  for (const name of names) {
    if (!METRIC_NAME.test(name)) {
      ctx.addIssue({ code: "custom", path: [name], message: "reading names are 1-64 of a-z, 0-9 and _, starting with a letter" });
    }
  }
});

export const TelemetryPayload = Readings;

export const MetricPayload = Readings;

export const EventPayload = z.looseObject({
  event_type: z.string().regex(/^[a-z][a-z0-9_]{0,63}$/, { message: "event_type must be a lowercase word (a-z, 0-9, _)" }),
  previous_state: ShortText.optional(),
  current_state: ShortText.optional(),
  reason: ShortText.optional(),
});

export const CommandPayload = z.strictObject({
  command: z.string().regex(/^[a-z][a-z0-9_]{0,63}$/, { message: "command must be a lowercase word (a-z, 0-9, _)" }),
  parameters: z.record(z.string(), z.json()).default({}),
});

export const CommandResultPayload = z.strictObject({
  command_id: MessageId,
  /** `expired`: published by the edge when the command's TTL ran out before a result. */
  status: z.enum(["succeeded", "failed", "expired"]),
  result: z.json().optional(),
  error: ShortText.optional(),
});

export const Severity = z.enum(["critical", "warning", "info"]);

export const AlertPayload = z.looseObject({
  severity: Severity,
  title: ShortText.min(1),
  description: z.string().max(4096).optional(),
  rule_id: ShortText.optional(),
  device: DeviceId.optional(),
  metric: MetricName.optional(),
  value: z.number().optional(),
  status: z.enum(["active", "acknowledged", "cleared"]).default("active"),
});

/** KServe v2 / Triton tensor. */
const Tensor = z.strictObject({
  name: ShortText.min(1),
  shape: z.array(z.int().nonnegative()).max(8),
  datatype: z.enum(["BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64", "FP16", "FP32", "FP64", "BYTES"]),
  data: z.array(z.json()),
});

export const InferenceRequestPayload = z.strictObject({
  model: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/, { message: "model is a name of letters, digits, . _ -" }),
  version: ShortText.optional(),
  inputs: z.array(Tensor).min(1).max(16),
  cache: z.boolean().default(true),
});

export const InferenceResultPayload = z.strictObject({
  model: ShortText,
  request_id: MessageId,
  outputs: z.array(Tensor).optional(),
  error: z.strictObject({ code: ShortText, message: z.string().max(4096) }).optional(),
  cached: z.boolean(),
  latency_ms: z.number().nonnegative().optional(),
});

export const PAYLOADS = {
  telemetry: TelemetryPayload,
  event: EventPayload,
  command: CommandPayload,
  command_result: CommandResultPayload,
  alert: AlertPayload,
  metric: MetricPayload,
  inference_request: InferenceRequestPayload,
  inference_result: InferenceResultPayload,
} as const;

export const MessageType = z.enum(Object.keys(PAYLOADS) as [keyof typeof PAYLOADS, ...(keyof typeof PAYLOADS)[]]);
export type MessageType = z.infer<typeof MessageType>;

const envelopeFields = {
  id: MessageId,
  correlation_id: MessageId,
  causation_id: MessageId.optional(),
  source: z.string().min(1).max(128),
  target: ShortText.optional(),
  exchange: z.string().min(1).max(64),
  routing_key: RoutingKey,
  /** Device time: when the reading was taken. */
  timestamp: Timestamp,
  /** Edge time: when the edge accepted the message. */
  received_at: Timestamp,
  metadata: Metadata.default({}),
  schema_version: z.literal(SCHEMA_VERSION),
};

function envelopeOf<T extends MessageType, P extends z.ZodType>(type: T, payload: P) {
  return z.strictObject({ ...envelopeFields, type: z.literal(type), payload });
}

/** The envelope as it travels between the edge's parts: complete and validated. */
export const Envelope = z.discriminatedUnion("type", [
  envelopeOf("telemetry", TelemetryPayload),
  envelopeOf("event", EventPayload),
  envelopeOf("command", CommandPayload),
  envelopeOf("command_result", CommandResultPayload),
  envelopeOf("alert", AlertPayload),
  envelopeOf("metric", MetricPayload),
  envelopeOf("inference_request", InferenceRequestPayload),
  envelopeOf("inference_result", InferenceResultPayload),
]);
export type Envelope = z.infer<typeof Envelope>;
export type EnvelopeOf<T extends MessageType> = Extract<Envelope, { type: T }>;

/** At most this many envelopes in one pack (docs/topology.md, "Packs"). */
export const MAX_PACK_MESSAGES = 100;
/** A pack's serialized size stays under this (one Cloudflare queue message holds 128 KB). */
export const MAX_PACK_BYTES = 120_000;

/**
 * A queue message body holding many envelopes bound for the same queue: `{ pack: 1, messages }`.
 * A body is either one Envelope or a pack; every member is still handled, retried and
 * dead-lettered on its own by the consumer.
 */
export const QueuePack = z.strictObject({
  pack: z.literal(1),
  messages: z.array(Envelope).min(1).max(MAX_PACK_MESSAGES),
});
export type QueuePack = z.infer<typeof QueuePack>;

/**
 * What a sender posts: the envelope's fields the sender may choose. The edge fills in the rest
 * (id when absent, source from the credential, received_at, schema_version, exchange and routing
 * key defaults) and then validates the payload against its type's schema.
 */
export const InboundMessage = z.strictObject({
  id: MessageId.optional(),
  correlation_id: MessageId.optional(),
  causation_id: MessageId.optional(),
  source: z.string().max(128).optional(),
  target: ShortText.optional(),
  type: MessageType.optional(),
  /** Seed 002 puts an event's type beside the payload; accepted there and moved into it. */
  event_type: z.string().max(64).optional(),
  exchange: z.string().min(1).max(64).optional(),
  routing_key: RoutingKey.optional(),
  timestamp: Timestamp.optional(),
  payload: z.unknown(),
  metadata: Metadata.optional(),
  schema_version: z.literal(SCHEMA_VERSION).optional(),
});
export type InboundMessage = z.infer<typeof InboundMessage>;

/** A message that failed on a queue after its retries, with where it was going and why. */
export const DeadLetter = z.strictObject({
  message: Envelope,
  exchange: z.string(),
  routing_key: z.string(),
  /** The queue it failed on, or `(unroutable)` when no binding matched. */
  queue: z.string(),
  error: z.strictObject({ code: z.string(), message: z.string() }),
  attempts: z.int().nonnegative(),
  failed_at: Timestamp,
});
export type DeadLetter = z.infer<typeof DeadLetter>;

export const UNROUTABLE = "(unroutable)";

/**
 * A body that is not a valid envelope (a schema change, a bug, a hand-sent message): kept as it
 * came, so nothing is silently discarded, but it cannot be replayed.
 */
export const RawDeadLetter = z.strictObject({
  raw: z.unknown(),
  queue: z.string(),
  error: z.strictObject({ code: z.string(), message: z.string() }),
  attempts: z.int().nonnegative(),
  failed_at: Timestamp,
});
export type RawDeadLetter = z.infer<typeof RawDeadLetter>;
