/**
 * The alert rule state machine (issue 18: apart from the Durable Object that stores it): one rule's
 * state on one device — `ok`, `pending`, `active`, `acknowledged` — and its steps on a reading
 * (`holds`, `step`) and on the clock (`due`, `nextDue`), each returning the alert message to
 * publish when the alert changed. No storage, no I/O: durable-objects/alert-actor.ts loads and
 * saves the state, publishes the messages and keeps the timers.
 */
import { newMessageId } from "../../shared/ids";
import type { Alert, AlertCondition, AlertRule, Comparison } from "../../shared/schemas/alerts";
import type { EnvelopeOf } from "../../shared/schemas/message";

/** A reading as the consumer hands it in: the numbers of one message. */
export interface Observation {
  id: string;
  routing_key: string;
  /** Edge time of the message, ms. */
  at: number;
  readings: Record<string, number>;
  /** The rules (of those handed in) whose routing key, device and metric this message matches. */
  rules: string[];
}

export type Phase = "ok" | "pending" | "active" | "acknowledged";

export interface State {
  rule_id: string;
  phase: Phase;
  /** When the condition started to hold (pending), ms. */
  since: number | null;
  /** The last matching reading (absence; rate of change), ms and value. */
  last_at: number | null;
  last_value: number | null;
  alert: Alert | null;
  next_notify: number | null;
  escalate_at: number | null;
  rule: AlertRule;
}

export function compare(op: Comparison, a: number, b: number): boolean {
  switch (op) {
    case "gt":
      return a > b;
    case "gte":
      return a >= b;
    case "lt":
      return a < b;
    case "lte":
      return a <= b;
  }
}

const OP_TEXT: Record<Comparison, string> = { gt: ">", gte: "≥", lt: "<", lte: "≤" };

export function describe(condition: AlertCondition, metric: string | undefined, value: number | undefined): string {
  const shown = value === undefined ? "" : ` (${Number(value.toFixed(4))})`;
  switch (condition.type) {
    case "threshold":
      return `${metric} ${OP_TEXT[condition.op]} ${condition.value}${shown}`;
    case "rate_of_change":
      return `${metric} changing ${OP_TEXT[condition.op]} ${condition.value} per ${condition.per_seconds} s${shown}`;
    case "absence":
      return `no ${metric ?? "data"} for ${condition.seconds} s`;
    case "anomaly":
      return `${metric} anomalous: robust z ≥ ${condition.score}${shown}`;
  }
}

export function fresh(rule: AlertRule): State {
  return {
    rule_id: rule.id,
    phase: "ok",
    since: null,
    last_at: null,
    last_value: null,
    alert: null,
    next_notify: null,
    escalate_at: null,
    rule,
  };
}

/** Whether the rule's condition holds for this reading (absence: data arrived, so it does not). */
export function holds(rule: AlertRule, state: State, obs: Observation, value: number | undefined, score: number | undefined): boolean {
  const c = rule.condition;
  switch (c.type) {
    case "threshold":
      return value !== undefined && compare(c.op, value, c.value);
    case "rate_of_change": {
      if (value === undefined || state.last_at === null || state.last_value === null || obs.at <= state.last_at) return false;
      const rate = ((value - state.last_value) / ((obs.at - state.last_at) / 1000)) * c.per_seconds;
      return compare(c.op, rate, c.value);
    }
    case "absence":
      return false;
    case "anomaly":
      return score !== undefined && score >= c.score;
  }
}

/** One step of the lifecycle; returns the message to publish when the alert changed. */
export function step(
  device: string,
  s: State,
  holds: boolean,
  now: number,
  value: number | undefined,
  cause?: string,
): EnvelopeOf<"alert"> | undefined {
  if (holds) {
    if (s.phase === "ok") {
      s.phase = "pending";
      s.since = now;
    }
    if (s.phase === "pending" && now - (s.since ?? now) >= s.rule.for_seconds * 1000) return fire(device, s, now, value, cause);
    if ((s.phase === "active" || s.phase === "acknowledged") && s.alert && value !== undefined) s.alert.value = value;
    return undefined;
  }
  if (s.phase === "pending") {
    s.phase = "ok";
    s.since = null;
    return undefined;
  }
  if (s.phase === "active" || s.phase === "acknowledged") return clear(s, now, cause);
  return undefined;
}

export function fire(device: string, s: State, now: number, value: number | undefined, cause?: string): EnvelopeOf<"alert"> {
  const at = new Date(now).toISOString();
  const rule = s.rule;
  s.phase = "active";
  s.since = null;
  s.alert = {
    id: newMessageId(),
    rule_id: rule.id,
    rule_name: rule.name,
    device,
    status: "active",
    severity: rule.severity,
    metric: rule.metric,
    value,
    title: `${rule.name}: ${describe(rule.condition, rule.metric, value)} on ${device}`,
    started_at: at,
    updated_at: at,
    escalated: false,
    notifications: 1,
  };
  s.next_notify = rule.renotify_seconds ? now + rule.renotify_seconds * 1000 : null;
  s.escalate_at = rule.escalate_after_seconds ? now + rule.escalate_after_seconds * 1000 : null;
  return message(s.alert, "fired", cause);
}

export function clear(s: State, now: number, cause?: string): EnvelopeOf<"alert"> | undefined {
  const alert = s.alert;
  s.phase = "ok";
  s.alert = null;
  s.next_notify = null;
  s.escalate_at = null;
  if (!alert) return undefined;
  const at = new Date(now).toISOString();
  return message({ ...alert, status: "cleared", cleared_at: at, updated_at: at }, "cleared", cause);
}

export function due(device: string, s: State, now: number): EnvelopeOf<"alert"> | undefined {
  const c = s.rule.condition;
  if (c.type === "absence" && s.last_at !== null && now - s.last_at >= c.seconds * 1000) {
    if (s.phase === "ok") {
      // The silence itself is the condition: it started `seconds` after the last reading.
      s.phase = "pending";
      s.since = s.last_at + c.seconds * 1000;
    }
    if (s.phase === "pending" && now - (s.since ?? now) >= s.rule.for_seconds * 1000) return fire(device, s, now, undefined);
    return undefined;
  }
  if (s.phase === "pending" && s.since !== null && now - s.since >= s.rule.for_seconds * 1000 && c.type !== "absence") {
    // The condition held at the last reading and nothing said otherwise since.
    return fire(device, s, now, s.last_value ?? undefined);
  }
  if (s.phase !== "active" || !s.alert) return undefined;
  if (s.escalate_at !== null && now >= s.escalate_at && !s.alert.escalated) {
    s.escalate_at = null;
    s.alert = {
      ...s.alert,
      severity: "critical",
      escalated: true,
      notifications: s.alert.notifications + 1,
      updated_at: new Date(now).toISOString(),
    };
    return message(s.alert, "escalated");
  }
  if (s.next_notify !== null && now >= s.next_notify) {
    s.next_notify = s.rule.renotify_seconds ? now + s.rule.renotify_seconds * 1000 : null;
    s.alert = { ...s.alert, notifications: s.alert.notifications + 1, updated_at: new Date(now).toISOString() };
    return message(s.alert, "renotified");
  }
  return undefined;
}

export function nextDue(s: State): number | null {
  const times: number[] = [];
  const c = s.rule.condition;
  if (c.type === "absence" && s.last_at !== null && s.phase !== "active" && s.phase !== "acknowledged")
    times.push(s.last_at + (c.seconds + s.rule.for_seconds) * 1000);
  if (s.phase === "pending" && s.since !== null) times.push(s.since + s.rule.for_seconds * 1000);
  if (s.phase === "active") {
    if (s.escalate_at !== null) times.push(s.escalate_at);
    if (s.next_notify !== null) times.push(s.next_notify);
  }
  return times.length ? Math.min(...times) : null;
}

export function message(alert: Alert, transition: string, cause?: string): EnvelopeOf<"alert"> {
  const now = new Date().toISOString();
  return {
    // Stable per alert and transition, so a retried publish is the same message.
    id: `${alert.id}.${transition}.${alert.notifications}`,
    correlation_id: alert.id,
    ...(cause ? { causation_id: cause } : {}),
    source: "alert-manager",
    exchange: "alerts",
    routing_key: `alerts.${alert.severity}.${alert.device}`,
    type: "alert",
    timestamp: alert.updated_at,
    received_at: now,
    metadata: { transition, alert_id: alert.id },
    schema_version: 1,
    payload: {
      ...alert,
      severity: alert.severity,
      title: alert.title,
      status: alert.status,
      rule_id: alert.rule_id,
      device: alert.device,
      metric: alert.metric,
      value: alert.value,
      alert_id: alert.id,
      transition,
    },
  };
}
