/**
 * The automation runner (seed 000 flow 3; docs/automations.md). The consumers hand it what they
 * consumed: events and motion readings (event triggers), metrics (threshold triggers) and alerts
 * (alert triggers). For each automation whose trigger matches, it checks the conditions against
 * the twins, asks the AI decision step when there is one (seed 000's "AI Decision Service",
 * through the inference path and its cache), runs the actions in order, and records the run with its outcome and latency — once
 * per automation and trigger message, so a redelivered trigger does not act twice.
 */
import { roomStub, twinStub } from "../durable-objects/stubs";
import { publish } from "../shared/bus/exchange";
import { derivedId } from "../shared/ids";
import { findRun, forgetCrossing, listAutomations, recordRun } from "../shared/repos/automations";
import {
  type Action,
  type ActionOutcome,
  type Automation,
  type AutomationRun,
  type Condition,
  type Decision,
  SCHEDULE_ROUTING_KEY,
  SCHEDULE_SOURCE,
  type Trigger,
} from "../shared/schemas/automations";
import type { Envelope, EnvelopeOf } from "../shared/schemas/message";
import { matchesPattern } from "../shared/topics";
import { numbersOf } from "./alert-rules";
import { infer } from "./inference";
import { notify } from "./notify";

/** An automation's published event can trigger another; the chain stops at this depth. */
export const MAX_CHAIN_DEPTH = 4;

function depthOf(message: Envelope): number {
  const depth = message.metadata.automation_depth;
  return typeof depth === "number" ? depth : 0;
}

/** Whether a message triggers an event or alert automation (pure; thresholds are set-based, below). */
function triggered(automation: Automation, message: Envelope): boolean {
  const t = automation.trigger;
  switch (t.type) {
    case "event": {
      if (!matchesPattern(t.routing_key, message.routing_key)) return false;
      if (!t.event_type) return true;
      return message.type === "event" && message.payload.event_type === t.event_type;
    }
    case "alert": {
      if (message.type !== "alert") return false;
      const p = message.payload;
      return p.status === t.status && (!t.severity || p.severity === t.severity) && (!t.rule_id || p.rule_id === t.rule_id);
    }
    case "schedule":
      // The AutomationClock's tick for this automation (it publishes one per due slot).
      return (
        message.source === SCHEDULE_SOURCE &&
        message.routing_key === SCHEDULE_ROUTING_KEY &&
        (message.metadata as Record<string, unknown> | undefined)?.automation_id === automation.id
      );
    case "threshold":
      // Thresholds: thresholdCrossings, never one message alone.
      return false;
  }
}

function at(doc: unknown, path: string): unknown {
  let value: unknown = doc;
  for (const key of path.split(".")) {
    if (value === null || typeof value !== "object") return undefined;
    value = (value as Record<string, unknown>)[key];
  }
  return value;
}

function compare(op: Condition["op"], a: unknown, b: Condition["value"]): boolean {
  switch (op) {
    case "eq":
      return a === b;
    case "ne":
      return a !== b;
    default: {
      if (typeof a !== "number" || typeof b !== "number") return false;
      return op === "gt" ? a > b : op === "gte" ? a >= b : op === "lt" ? a < b : a <= b;
    }
  }
}

/** The first condition that does not hold, described; undefined when all hold. */
async function failedCondition(env: Env, conditions: readonly Condition[]): Promise<string | undefined> {
  const twins = new Map<string, Promise<unknown>>();
  for (const c of conditions) {
    let twin = twins.get(c.device);
    if (!twin) {
      twin = twinStub(env, c.device).twin();
      twins.set(c.device, twin);
    }
    const actual = at(await twin, c.path);
    if (!compare(c.op, actual, c.value))
      return `${c.device} ${c.path} ${c.op} ${JSON.stringify(c.value)} (is ${JSON.stringify(actual) ?? "absent"})`;
  }
  return undefined;
}

async function act(env: Env, action: Action, runId: string, index: number, message: Envelope): Promise<unknown> {
  switch (action.type) {
    case "command": {
      const result = await twinStub(env, action.device).enqueueCommand({
        command: action.command,
        parameters: action.parameters,
        ttl_s: action.ttl_s,
        wait_s: 0,
        // The device can tell a repeated run's command by its correlation id.
        correlation_id: runId,
      });
      if (!result.ok) throw new Error(`${result.code}: ${result.message}`);
      return { command_id: result.command.id };
    }
    case "room_command": {
      const outcomes = await roomStub(env, action.room).forwardCommand({
        command: action.command,
        parameters: action.parameters,
        ttl_s: action.ttl_s,
        wait_s: 0,
        correlation_id: runId,
      });
      const failed = outcomes.filter((o) => !o.ok);
      if (outcomes.length === 0) throw new Error(`room "${action.room}" has no devices`);
      if (failed.length > 0) throw new Error(failed.map((f) => `${f.device}: ${f.error?.code}`).join(", "));
      return { devices: outcomes.map((o) => o.device) };
    }
    case "desired": {
      const result = await twinStub(env, action.device).patchDesired(action.patch);
      if (!result.ok) throw new Error(`${result.code}: ${result.message}`);
      return { version: result.twin.version };
    }
    case "notify": {
      const now = new Date().toISOString();
      await notify(
        env,
        action.channel,
        {
          id: runId,
          rule_id: "",
          rule_name: "automation",
          device: message.source,
          status: "active",
          severity: "info",
          title: action.title,
          started_at: now,
          updated_at: now,
          escalated: false,
          notifications: 1,
        },
        { room: null, availability: null, recent: [] },
      );
      return undefined;
    }
    case "publish": {
      const now = new Date().toISOString();
      const event: EnvelopeOf<"event"> = {
        id: await derivedId(runId, String(index)),
        correlation_id: message.correlation_id,
        causation_id: message.id,
        source: "automations",
        exchange: "home.events",
        routing_key: action.routing_key,
        type: "event",
        timestamp: now,
        received_at: now,
        metadata: { automation_depth: depthOf(message) + 1 },
        schema_version: 1,
        payload: { ...action.data, event_type: action.event_type },
      };
      const [routed] = await publish(env, [event]);
      return { event_id: event.id, queues: routed?.queues };
    }
  }
}

/** Asks the model; a reason to stop the run when it says no or cannot answer. */
async function decide(
  env: Env,
  decision: Decision,
  message: Envelope,
  runId: string,
): Promise<{ record: NonNullable<AutomationRun["decision"]>; stop?: string; failed?: boolean }> {
  const readings = numbersOf(message);
  const values = decision.readings.map((name) => readings[name]);
  if (values.some((v) => v === undefined)) {
    const missing = decision.readings.filter((name) => readings[name] === undefined);
    return {
      record: { value: null, cached: false, error: "missing readings" },
      stop: `the trigger has no ${missing.join(", ")} for the AI decision`,
    };
  }
  const result = await infer(
    env,
    {
      model: decision.model,
      inputs: [{ name: "readings", shape: [1, values.length], datatype: "FP64", data: values as number[] }],
      cache: true,
    },
    { requestId: runId },
  );
  if (result.error)
    return {
      record: { value: null, cached: false, error: `${result.error.code}: ${result.error.message}` },
      stop: `AI decision failed: ${result.error.code}`,
      failed: true,
    };
  const value = result.outputs?.[0]?.data[0];
  const record = { value, cached: result.cached, latency_ms: result.latency_ms };
  return value === decision.proceed_when
    ? { record }
    : { record, stop: `AI decision: ${JSON.stringify(value)}, not ${JSON.stringify(decision.proceed_when)}` };
}

export async function runAutomation(env: Env, automation: Automation, message: Envelope): Promise<AutomationRun> {
  const previous = await findRun(env.DB, automation.id, message.id);
  if (previous) return previous;
  const runId = await derivedId(automation.id, message.id);
  const failed = await failedCondition(env, automation.conditions);
  let reason = failed ? `condition not met: ${failed}` : undefined;
  let decision: Awaited<ReturnType<typeof decide>> | undefined;
  if (!reason && automation.decision) {
    decision = await decide(env, automation.decision, message, runId);
    reason = decision.stop;
  }
  const actions: ActionOutcome[] = [];
  if (!reason) {
    for (const [index, action] of automation.actions.entries()) {
      try {
        actions.push({ action: index, type: action.type, ok: true, detail: await act(env, action, runId, index, message) });
      } catch (error) {
        // Later actions may depend on this one: the run stops here.
        actions.push({
          action: index,
          type: action.type,
          ok: false,
          error: String(error instanceof Error ? error.message : error).slice(0, 500),
        });
        break;
      }
    }
  }
  const run: AutomationRun = {
    id: runId,
    automation_id: automation.id,
    trigger_message_id: message.id,
    outcome: decision?.failed ? "failed" : reason ? "skipped" : actions.every((a) => a.ok) ? "succeeded" : "failed",
    latency_ms: Math.max(0, Date.now() - Date.parse(message.received_at)),
    actions,
    ...(decision ? { decision: decision.record } : {}),
    ...(reason ? { reason } : {}),
    at: new Date().toISOString(),
  };
  await recordRun(env.DB, run);
  return run;
}

/** Runs every enabled automation of this trigger type that the messages trigger. */
/**
 * The threshold crossings of a batch, set-based: each automation's condition is checked on each
 * message in JS, then ONE D1 batch (a transaction) reads the stored states of the (automation,
 * device) pairs involved and writes their final states. A crossing is a change from not holding
 * to holding, walked in message order from the stored state, so two crossings in one batch count
 * twice and two batches at once cannot both see one crossing. Returns `automation id, message id` keys.
 */
async function thresholdCrossings(env: Env, automations: readonly Automation[], messages: readonly Envelope[]): Promise<Set<string>> {
  const sequences = new Map<string, { automation: string; device: string; steps: { message: string; past: boolean }[] }>();
  for (const automation of automations) {
    const t = automation.trigger;
    if (t.type !== "threshold") continue;
    for (const message of messages) {
      if (t.device && t.device !== message.source) continue;
      if (t.routing_key && !matchesPattern(t.routing_key, message.routing_key)) continue;
      const value = numbersOf(message)[t.metric];
      if (value === undefined) continue;
      const past = t.op === "gt" ? value > t.value : t.op === "gte" ? value >= t.value : t.op === "lt" ? value < t.value : value <= t.value;
      const key = `${automation.id}\u0000${message.source}`;
      let sequence = sequences.get(key);
      if (!sequence) {
        sequence = { automation: automation.id, device: message.source, steps: [] };
        sequences.set(key, sequence);
      }
      sequence.steps.push({ message: message.id, past });
    }
  }
  const crossings = new Set<string>();
  if (sequences.size === 0) return crossings;
  const pairs = [...sequences.values()];
  const finals = pairs.map((p) => [p.automation, p.device, p.steps.at(-1)?.past ? 1 : 0]);
  const [before] = await env.DB.batch([
    env.DB.prepare(
      `SELECT automation_id, device, holding FROM automation_edges
       WHERE (automation_id, device) IN (SELECT value ->> 0, value ->> 1 FROM json_each(?1))`,
    ).bind(JSON.stringify(finals)),
    env.DB.prepare(
      `INSERT INTO automation_edges (automation_id, device, holding) SELECT value ->> 0, value ->> 1, value ->> 2 FROM json_each(?1) WHERE true
       ON CONFLICT (automation_id, device) DO UPDATE SET holding = excluded.holding WHERE automation_edges.holding != excluded.holding`,
    ).bind(JSON.stringify(finals)),
  ]);
  const stored = new Map(
    ((before?.results ?? []) as { automation_id: string; device: string; holding: number }[]).map((r) => [
      `${r.automation_id}\u0000${r.device}`,
      r.holding === 1,
    ]),
  );
  for (const [key, sequence] of sequences) {
    let holding = stored.get(key) ?? false;
    for (const step of sequence.steps) {
      if (step.past && !holding) crossings.add(`${sequence.automation}\u0000${step.message}`);
      holding = step.past;
    }
  }
  return crossings;
}

export async function runAutomations(env: Env, messages: readonly Envelope[], trigger: Trigger["type"]): Promise<AutomationRun[]> {
  const candidates = messages.filter((m) => depthOf(m) < MAX_CHAIN_DEPTH);
  if (candidates.length === 0) return [];
  const automations = await listAutomations(env.DB, trigger);
  if (automations.length === 0) return [];
  const crossings = trigger === "threshold" ? await thresholdCrossings(env, automations, candidates) : undefined;
  const runs: AutomationRun[] = [];
  for (const message of candidates) {
    for (const automation of automations) {
      if (automation.trigger.type === "threshold") {
        if (!crossings?.has(`${automation.id}\u0000${message.id}`)) continue;
      } else if (!triggered(automation, message)) continue;
      try {
        runs.push(await runAutomation(env, automation, message));
      } catch (error) {
        // The batch is retried; a threshold's crossing must then count again, or the run is lost.
        if (automation.trigger.type === "threshold") await forgetCrossing(env.DB, automation.id, message.source).catch(() => undefined);
        throw error;
      }
    }
  }
  return runs;
}
