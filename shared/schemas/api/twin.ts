/** What the edge answers about twins and commands (docs/twins.md, docs/api.md). */
import { z } from "zod";
import { AvailabilityState, CommandStatus, Issue, JsonObject } from "./common.ts";

export const ReportedReading = z.object({
  value: z.union([z.number(), z.boolean()]),
  unit: z.string().optional(),
  /** Device time of the reading, ISO 8601. */
  at: z.string(),
});
export type ReportedReading = z.infer<typeof ReportedReading>;

export const Counters = z.object({ accepted: z.number(), duplicates: z.number(), rejected: z.number() });
export type Counters = z.infer<typeof Counters>;

/** GET /v1/devices/:id/twin. */
export const TwinView = z.object({
  device: z.string(),
  version: z.number(),
  last_seen: z.string().nullable(),
  availability: AvailabilityState,
  reported: z.object({ readings: z.record(z.string(), ReportedReading), state: JsonObject }),
  desired: JsonObject,
  delta: JsonObject,
  counters: Counters,
});
export type TwinView = z.infer<typeof TwinView>;

/** A command as the operator's API shows it, with its history. */
export const Command = z.object({
  id: z.string(),
  command: z.string(),
  parameters: z.record(z.string(), z.unknown()),
  status: CommandStatus,
  correlation_id: z.string(),
  created_at: z.string(),
  expires_at: z.string(),
  attempts: z.number(),
  result: z.unknown(),
  error: z.string().nullable(),
  history: z.array(z.object({ status: CommandStatus, at: z.string() })),
});
export type Command = z.infer<typeof Command>;

/** A command as a device (or the agent for it) receives it. */
export const DeliveredCommand = z.object({
  id: z.string(),
  command: z.string(),
  parameters: z.record(z.string(), z.unknown()),
  expires_at: z.string(),
  attempts: z.number(),
  correlation_id: z.string().optional(),
});
export type DeliveredCommand = z.infer<typeof DeliveredCommand>;

/** The newest reading of a metric over a room's devices, with min, max and mean of the numbers. */
export const MetricAggregate = z.object({
  metric: z.string(),
  unit: z.string().nullable(),
  devices: z.number(),
  latest: z.object({ device: z.string(), value: z.union([z.number(), z.boolean()]), at: z.string() }),
  min: z.number().optional(),
  max: z.number().optional(),
  mean: z.number().optional(),
});
export type MetricAggregate = z.infer<typeof MetricAggregate>;

/** A message the twin rejected (GET /v1/devices/:id/errors). */
export const StoredError = z.object({
  at: z.string(),
  index: z.number(),
  message_id: z.string().nullable(),
  code: z.string(),
  issues: z.array(Issue),
});
export type StoredError = z.infer<typeof StoredError>;
