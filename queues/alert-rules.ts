/**
 * Alert evaluation on the stream (docs/alerts.md): the metrics consumer hands each batch here
 * after storing it. The rules are read once per batch, matched against each message's routing
 * key, device and readings, and each device's matching readings go to its AlertActor in one
 * call, which holds the rules' state and timers — with the device's readings for the default
 * analysis on the stream (queues/analysis.ts, docs/ai.md), so that costs no request of its own
 * where a rule already calls the actor.
 */
import type { Observation } from "../durable-objects/stubs";
import { alertStub } from "../durable-objects/stubs";
import { listRules } from "../shared/repos/alerts";
import type { AlertRule } from "../shared/schemas/alerts";
import type { Envelope } from "../shared/schemas/message";
import { matchesPattern } from "../shared/topics";
import { isStreamAnalysisRule, planAnalysis } from "./analysis";

/** The numbers of a message's readings: plain numbers, {value, unit}, and booleans as 1 and 0. */
export function numbersOf(message: Envelope): Record<string, number> {
  if (message.type !== "metric" && message.type !== "telemetry") return {};
  const out: Record<string, number> = {};
  for (const [name, reading] of Object.entries(message.payload)) {
    if (typeof reading === "number") out[name] = reading;
    else if (typeof reading === "boolean") out[name] = reading ? 1 : 0;
    else out[name] = reading.value;
  }
  return out;
}

export function ruleMatches(rule: AlertRule, message: Envelope, readings: Record<string, number>): boolean {
  if (rule.device && rule.device !== message.source) return false;
  if (rule.routing_key && !matchesPattern(rule.routing_key, message.routing_key)) return false;
  return rule.metric === undefined || rule.metric in readings;
}

/**
 * `analysis: false` leaves out the default analysis on the stream (queues/analysis.ts): the edge's
 * own health readings (queues/system-monitor.ts) have their rules.
 */
export async function evaluateAlerts(env: Env, messages: readonly Envelope[], options: { analysis?: boolean } = {}): Promise<number> {
  // Every rule, in one query: a disabled anomaly rule silences the default analysis where it matches.
  const all = await listRules(env.DB);
  const plan = options.analysis === false ? new Map() : planAnalysis(all, messages);
  const rules = all.filter((r) => r.enabled && !isStreamAnalysisRule(r));
  if (rules.length === 0 && plan.size === 0) return 0;
  const perDevice = new Map<string, { rules: Map<string, AlertRule>; observations: Observation[] }>();
  for (const message of messages) {
    const readings = numbersOf(message);
    const matching = rules.filter((r) => ruleMatches(r, message, readings));
    if (matching.length === 0) continue;
    let entry = perDevice.get(message.source);
    if (!entry) {
      entry = { rules: new Map(), observations: [] };
      perDevice.set(message.source, entry);
    }
    for (const rule of matching) entry.rules.set(rule.id, rule);
    entry.observations.push({
      id: message.id,
      routing_key: message.routing_key,
      at: Date.parse(message.received_at),
      readings,
      rules: matching.map((r) => r.id),
    });
  }
  // Each device's readings in message order, with its default analysis in the same call; devices in parallel.
  const devices = new Set([...perDevice.keys(), ...plan.keys()]);
  await Promise.all(
    [...devices].map((device) => {
      const own = perDevice.get(device);
      return alertStub(env, device).evaluate(
        device,
        own ? [...own.rules.values()] : [],
        own ? own.observations.sort((a, b) => a.at - b.at) : [],
        plan.get(device),
      );
    }),
  );
  return devices.size;
}
