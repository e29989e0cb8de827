/**
 * Automations (seed 000 flow 3): a trigger, conditions over twin state, and actions — the single
 * source of the body the API validates, D1 keeps and the automation runner executes.
 * docs/automations.md explains each field.
 */
import { Cron } from "croner";
import { z } from "zod";
import { patternProblem } from "../topics";
import { Channel } from "./alerts";
import { DeviceId, MetricName, RoutingKey, Severity } from "./message";
import { DocumentPatch } from "./twin";

const JsonObject = z.record(z.string(), z.json());

const Pattern = z.string().refine((p) => patternProblem(p) === undefined, {
  message: "must be a routing-key pattern (words separated by dots; * one word, # any words)",
});
const Word = z.string().regex(/^[a-z][a-z0-9_]{0,63}$/, { message: "must be a lowercase word (a-z, 0-9, _)" });
const Room = z.string().regex(/^[a-z0-9][a-z0-9_-]{0,63}$/, { message: "must be a room id" });
const Comparison = z.enum(["eq", "ne", "gt", "gte", "lt", "lte"]);

export const Trigger = z.discriminatedUnion("type", [
  /** A message on `home.events` (triggers, state changes) or a motion reading, by routing key. */
  z.strictObject({ type: z.literal("event"), routing_key: Pattern, event_type: Word.optional() }),
  /** A sensor reading crossing a threshold (fires on the crossing, not on every reading past it). */
  z.strictObject({
    type: z.literal("threshold"),
    metric: MetricName,
    op: z.enum(["gt", "gte", "lt", "lte"]),
    value: z.number(),
    routing_key: Pattern.optional(),
    device: DeviceId.optional(),
  }),
  /**
   * Every `every_seconds`, or at the times of a cron expression (5 fields, or 6 with seconds;
   * `timezone` an IANA name, UTC by default), on the AutomationClock's alarm
   * (durable-objects/automation-clock.ts). Exactly one of the two.
   */
  z
    .strictObject({
      type: z.literal("schedule"),
      every_seconds: z
        .int()
        .min(60)
        .max(30 * 86_400)
        .optional(),
      cron: z.string().min(9).max(128).optional(),
      timezone: z.string().max(64).optional(),
    })
    .superRefine((t, ctx) => {
      if ((t.every_seconds === undefined) === (t.cron === undefined))
        ctx.addIssue({ code: "custom", path: ["cron"], message: "a schedule has exactly one of every_seconds and cron" });
      if (t.cron === undefined) return;
      try {
        new Cron(t.cron, { paused: true, ...(t.timezone ? { timezone: t.timezone } : {}) }).nextRun();
      } catch (error) {
        ctx.addIssue({ code: "custom", path: ["cron"], message: String(error instanceof Error ? error.message : error).slice(0, 200) });
      }
    }),
  /** An alert changing state (by default: when it fires). */
  z.strictObject({
    type: z.literal("alert"),
    rule_id: z.string().max(64).optional(),
    severity: Severity.optional(),
    status: z.enum(["active", "acknowledged", "cleared"]).default("active"),
  }),
]);
export type Trigger = z.infer<typeof Trigger>;

/** A value in a device's twin, by dot path (`reported.readings.temperature.value`, `desired.mode`, `availability.status`). */
export const Condition = z.strictObject({
  device: DeviceId,
  path: z.string().regex(/^[A-Za-z0-9_]+(\.[A-Za-z0-9_]+){0,8}$/, { message: "must be a dot path into the twin" }),
  op: Comparison,
  value: z.union([z.number(), z.string().max(256), z.boolean(), z.null()]),
});
export type Condition = z.infer<typeof Condition>;

const CommandFields = {
  command: Word,
  parameters: z.record(z.string(), z.json()).default({}),
  ttl_s: z.int().min(1).max(86_400).default(300),
};

export const Action = z.discriminatedUnion("type", [
  z.strictObject({ type: z.literal("command"), device: DeviceId, ...CommandFields }),
  z.strictObject({ type: z.literal("room_command"), room: Room, ...CommandFields }),
  z.strictObject({ type: z.literal("desired"), device: DeviceId, patch: DocumentPatch }),
  z.strictObject({ type: z.literal("notify"), channel: Channel, title: z.string().min(1).max(256) }),
  /** An event on `home.events`, with the trigger's id as its causation. */
  z.strictObject({ type: z.literal("publish"), routing_key: RoutingKey, event_type: Word, data: JsonObject.default({}) }),
]);
export type Action = z.infer<typeof Action>;

/**
 * The AI decision step: the trigger's readings, in this order, go to the model as one FP64 tensor
 * `[1, n]` named `readings`; the run goes on only when the first output value equals `proceed_when`.
 */
export const Decision = z.strictObject({
  model: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/, { message: "model is a name of letters, digits, . _ -" }),
  readings: z.array(MetricName).min(1).max(16),
  proceed_when: z.union([z.number(), z.string().max(256), z.boolean()]).default(1),
});
export type Decision = z.infer<typeof Decision>;

export const AutomationInput = z.strictObject({
  name: z.string().min(1).max(128),
  description: z.string().max(1024).optional(),
  trigger: Trigger,
  conditions: z.array(Condition).max(16).default([]),
  decision: Decision.optional(),
  actions: z.array(Action).min(1).max(16),
  enabled: z.boolean().default(true),
});
export type AutomationInput = z.infer<typeof AutomationInput>;

export interface Automation extends AutomationInput {
  id: string;
  version: number;
  created_at: string;
  updated_at: string;
}

export type RunOutcome = "succeeded" | "skipped" | "failed";

export interface ActionOutcome {
  action: number;
  type: Action["type"];
  ok: boolean;
  detail?: unknown;
  error?: string;
}

export interface AutomationRun {
  id: string;
  automation_id: string;
  trigger_message_id: string;
  outcome: RunOutcome;
  /** From the trigger's arrival at the edge to the last action done. */
  latency_ms: number;
  actions: ActionOutcome[];
  /** The AI decision step's answer, when the automation has one. */
  decision?: { value: unknown; cached: boolean; latency_ms?: number; error?: string };
  reason?: string;
  at: string;
}

/** The AutomationClock's tick for a scheduled automation: an event on home.events that names it in `metadata.automation_id`. */
export const SCHEDULE_SOURCE = "scheduler";
export const SCHEDULE_ROUTING_KEY = "home.schedule.clock.trigger";
