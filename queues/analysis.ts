/**
 * The default analysis on the stream, consumer side (docs/ai.md): from a batch's messages and the
 * alert rules the batch read anyway (one D1 query per batch, queues/alert-rules.ts), each device's
 * numeric readings with the settings that apply to each metric. The device's AlertActor scores
 * them in the same call as its rules (shared/analysis.ts), so the analysis adds no D1 query and,
 * for a device some rule already watches, no Durable Object request.
 *
 * Which settings apply to a reading of `metric` on a message:
 *
 * 1. An `anomaly` rule naming that metric and matching the message (device, routing key) takes it
 *    over: enabled, it evaluates the reading with its own score, window and warm-up (tuning);
 *    disabled, nothing does (silencing). The default steps aside either way.
 * 2. Otherwise the most specific `anomaly` rule without a metric that matches the message — one
 *    naming the device, then one with a routing key, then the default (migration 0031) — gives
 *    the settings; when that rule is disabled, the metric is not analysed.
 */
import type { AnalysisBatch, AnalysisSettings } from "../shared/analysis";
import type { AlertRule } from "../shared/schemas/alerts";
import type { Envelope } from "../shared/schemas/message";
import { matchesPattern } from "../shared/topics";

/** The readings the default analyses: numbers and {value, unit}; booleans are states, not measurements. */
export function measurementsOf(message: Envelope): Record<string, number> {
  if (message.type !== "metric" && message.type !== "telemetry") return {};
  const out: Record<string, number> = {};
  for (const [name, reading] of Object.entries(message.payload)) {
    if (typeof reading === "number") out[name] = reading;
    else if (typeof reading === "object" && reading !== null && typeof reading.value === "number") out[name] = reading.value;
  }
  return out;
}

/** An `anomaly` rule without a metric: it sets the default analysis for what it matches. */
export function isStreamAnalysisRule(rule: AlertRule): boolean {
  return rule.condition.type === "anomaly" && rule.metric === undefined;
}

/** The rule's device and routing key match the message (as queues/alert-rules.ts matches them). */
function matches(rule: AlertRule, message: Envelope): boolean {
  if (rule.device && rule.device !== message.source) return false;
  return !rule.routing_key || matchesPattern(rule.routing_key, message.routing_key);
}

function specificity(rule: AlertRule): number {
  return (rule.device ? 2 : 0) + (rule.routing_key ? 1 : 0);
}

function settingsOf(rule: AlertRule): AnalysisSettings | undefined {
  if (rule.condition.type !== "anomaly") return undefined;
  return {
    rule_id: rule.id,
    rule_name: rule.name,
    severity: rule.severity,
    score: rule.condition.score,
    window: rule.condition.window,
    min_samples: rule.condition.min_samples,
  };
}

/**
 * Each device's analysis batch. `rules`: every rule, enabled or not (a disabled one silences).
 * Devices with nothing to analyse are absent.
 */
export function planAnalysis(rules: readonly AlertRule[], messages: readonly Envelope[]): Map<string, AnalysisBatch> {
  const anomaly = rules.filter((r) => r.condition.type === "anomaly");
  const defaults = anomaly.filter(isStreamAnalysisRule).sort((a, b) => specificity(b) - specificity(a));
  const perMetric = anomaly.filter((r) => r.metric !== undefined);
  const plan = new Map<string, AnalysisBatch>();
  if (defaults.length === 0) return plan;
  for (const message of messages) {
    const readings = measurementsOf(message);
    const names = Object.keys(readings);
    if (names.length === 0) continue;
    const base = defaults.find((r) => matches(r, message));
    if (!base?.enabled) continue;
    const settings = settingsOf(base);
    if (!settings) continue;
    // The reading's own time: a batch packs many readings of one edge millisecond, and concurrent
    // requests arrive out of order; the device's timestamps say in which order they were taken.
    const at = Date.parse(message.timestamp);
    const retired: string[] = [];
    for (const metric of names) {
      if (perMetric.some((r) => r.metric === metric && matches(r, message))) {
        retired.push(metric);
        continue;
      }
      const batch = batchOf(plan, message.source);
      batch.settings[metric] = settings;
      batch.readings.push({ id: message.id, at, metric, value: readings[metric] as number });
    }
    // Taken over by a rule for the metric: an open default alert of it clears, when the device's
    // actor is called anyway (no request only for that).
    const batch = plan.get(message.source);
    if (batch && retired.length > 0) batch.retired = [...new Set([...(batch.retired ?? []), ...retired])];
  }
  return plan;
}

function batchOf(plan: Map<string, AnalysisBatch>, device: string): AnalysisBatch {
  let batch = plan.get(device);
  if (!batch) {
    batch = { settings: {}, readings: [] };
    plan.set(device, batch);
  }
  return batch;
}
