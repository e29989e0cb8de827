/**
 * Alert rules and alerts (seed 003's monitoring API, seed 000 flow 4): the single source of the
 * rule body the API validates, the D1 row holds and the AlertActor evaluates, and of the alert
 * record the dashboard and notifications see. docs/alerts.md explains each field.
 */
import { z } from "zod";
import { patternProblem } from "../topics";
import { DeviceId, MetricName, Severity } from "./message";

const Pattern = z.string().refine((p) => patternProblem(p) === undefined, {
  message: "must be a routing-key pattern (words separated by dots; * one word, # any words)",
});

const Comparison = z.enum(["gt", "gte", "lt", "lte"]);
export type Comparison = z.infer<typeof Comparison>;

const Seconds = (max: number) => z.int().min(1).max(max);

/** What must hold for the rule to fire. */
export const AlertCondition = z.discriminatedUnion("type", [
  /** The reading compared with a fixed value. */
  z.strictObject({ type: z.literal("threshold"), op: Comparison, value: z.number() }),
  /** Change per `per_seconds` between consecutive readings, compared with `value` (signed). */
  z.strictObject({ type: z.literal("rate_of_change"), op: Comparison, value: z.number(), per_seconds: Seconds(86_400).default(60) }),
  /** No matching reading for `seconds` after the last one (checked by the actor's alarm). */
  z.strictObject({ type: z.literal("absence"), seconds: Seconds(7 * 86_400) }),
  /** The built-in detector's robust z-score (shared/anomaly.ts) at or over `score`. */
  z.strictObject({
    type: z.literal("anomaly"),
    score: z.number().min(1).max(100).default(4),
    window: z.int().min(10).max(500).default(60),
    min_samples: z.int().min(5).max(500).default(20),
  }),
]);
export type AlertCondition = z.infer<typeof AlertCondition>;

/**
 * The name of a Worker secret (never the secret itself: rules are readable by viewers). Only
 * secrets named NOTIFY_…: otherwise an operator could have the edge send ADMIN_TOKEN or
 * JWT_SECRET to a URL of their choosing.
 */
const SecretName = z
  .string()
  .regex(/^NOTIFY_[A-Z0-9_]{1,56}$/, { message: "must name a Worker secret whose name starts with NOTIFY_ (A-Z, 0-9, _)" });
const HttpUrl = z.url({ protocol: /^https?$/, message: "must be an http(s) URL" }).max(2048);

export const Channel = z.discriminatedUnion("type", [
  /** POSTs the alert as JSON. */
  z.strictObject({ type: z.literal("webhook"), url: HttpUrl, secret: SecretName.optional() }),
  /** ntfy: POSTs the text to `<url>/<topic>` with title, priority and tags headers. */
  z.strictObject({
    type: z.literal("ntfy"),
    url: HttpUrl,
    topic: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, { message: "must be 1-64 of A-Z a-z 0-9 _ -" }),
    token_secret: SecretName.optional(),
  }),
  /** Home Assistant: POSTs to `<url>/api/services/notify/<service>` with a long-lived token. */
  z.strictObject({
    type: z.literal("home_assistant"),
    url: HttpUrl,
    service: z.string().regex(/^[a-z0-9_]{1,64}$/, { message: "must be a notify service name (a-z, 0-9, _)" }),
    token_secret: SecretName,
  }),
]);
export type Channel = z.infer<typeof Channel>;

const RuleFields = {
  name: z.string().min(1).max(128),
  description: z.string().max(1024).optional(),
  /** The reading the rule watches (a metric name of the message's payload). */
  metric: MetricName.optional(),
  /** Which messages it looks at: a pattern on the routing key; all metrics messages when absent. */
  routing_key: Pattern.optional(),
  /** Only this device when set. */
  device: DeviceId.optional(),
  condition: AlertCondition,
  /** How long the condition must hold before the alert fires (0: at once). */
  for_seconds: z.int().min(0).max(86_400).default(0),
  severity: Severity,
  channels: z.array(Channel).max(8).default([]),
  /** Notify again while the alert stays active and unacknowledged. */
  renotify_seconds: z
    .int()
    .min(60)
    .max(7 * 86_400)
    .optional(),
  /** Raise to critical (and notify) when still unacknowledged after this long. */
  escalate_after_seconds: z
    .int()
    .min(10)
    .max(7 * 86_400)
    .optional(),
  enabled: z.boolean().default(true),
};

function needsMetric(rule: { metric?: string; condition: AlertCondition }, ctx: z.RefinementCtx): void {
  // An anomaly rule without a metric sets the default analysis on the stream for what it matches (docs/ai.md).
  if (rule.condition.type !== "absence" && rule.condition.type !== "anomaly" && !rule.metric) {
    ctx.addIssue({ code: "custom", path: ["metric"], message: `a ${rule.condition.type} condition needs the metric it reads` });
  }
}

export const AlertRuleInput = z.strictObject(RuleFields).superRefine(needsMetric);
export type AlertRuleInput = z.infer<typeof AlertRuleInput>;

/** PATCH: any field; the merged rule is validated again as a whole. */
export const AlertRulePatch = z.strictObject(
  Object.fromEntries(Object.entries(RuleFields).map(([k, v]) => [k, (v as z.ZodType).optional()])) as {
    [K in keyof typeof RuleFields]: z.ZodOptional<(typeof RuleFields)[K]>;
  },
);

export interface AlertRule extends AlertRuleInput {
  id: string;
  version: number;
  created_at: string;
  updated_at: string;
}

export const AlertStatus = z.enum(["pending", "active", "acknowledged", "cleared"]);
export type AlertStatus = z.infer<typeof AlertStatus>;

export interface DeliveryStatus {
  channel: number;
  type: Channel["type"];
  status: "delivered" | "failed" | "dead_lettered";
  attempts: number;
  at: string;
  error?: string;
}

/**
 * What the default analysis on the stream saw when it raised or last updated an anomaly alert
 * (docs/ai.md): the reading, the baseline it was scored against and the score.
 */
export const AnomalyEvidence = z.strictObject({
  metric: MetricName,
  value: z.number(),
  /** The baseline: where the series was expected (median level, trend-projected) and its noise σ. */
  level: z.number(),
  sigma: z.number().nonnegative(),
  /** The robust z-score and the threshold it met. */
  score: z.number().nonnegative(),
  threshold: z.number(),
  /** Readings in the baseline window when scored. */
  window: z.int().nonnegative(),
  /** The reading's time (its message's `timestamp`) and message id. */
  at: z.iso.datetime(),
  reading_id: z.string().max(128),
});
export type AnomalyEvidence = z.infer<typeof AnomalyEvidence>;

/** An alert: one per rule and device while it lives; `id` changes each time it fires anew. */
export interface Alert {
  id: string;
  rule_id: string;
  rule_name: string;
  device: string;
  status: Exclude<AlertStatus, "pending">;
  severity: z.infer<typeof Severity>;
  metric?: string;
  value?: number;
  title: string;
  started_at: string;
  updated_at: string;
  acknowledged_at?: string;
  acknowledged_by?: string;
  cleared_at?: string;
  escalated: boolean;
  notifications: number;
  /** Anomaly alerts of the default analysis: what was seen (docs/ai.md). */
  evidence?: AnomalyEvidence;
}

export const AlertAck = z.strictObject({ note: z.string().max(512).optional() });
