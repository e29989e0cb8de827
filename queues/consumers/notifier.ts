/**
 * The notifier: the consumer of `alerts.notifications` (seed 003's notification service). For
 * each alert message it adds context (recent values, the room, the device's availability, and an
 * AI summary when AI_SUMMARY_MODEL is set),
 * sends it to each of the rule's channels that has not had it yet, and records every outcome on
 * the alert. A failed channel fails the message retriably: the queue brings it back with backoff
 * (2, 8, 32 s) — seed 003's "queue for retry" — and after the last retry the consumer discipline
 * dead-letters it, which the alert records too. Acknowledgements are not notified.
 */
import { twinStub } from "../../durable-objects/stubs";
import { MAX_RETRIES } from "../../shared/bus/topology";
import { readConfig } from "../../shared/config";
import { alertOfPayload, deliveredChannels, getRule, recordDelivery } from "../../shared/repos/alerts";
import type { Alert } from "../../shared/schemas/alerts";
import type { Envelope } from "../../shared/schemas/message";
import type { BatchHandler } from "../consumer";
import { ConsumerError } from "../errors";
import { infer } from "../inference";
import { type AlertContext, NotifyFailed, notify } from "../notify";

const RECENT_SHOWN = 10;

/** The AI summary (AI_SUMMARY_MODEL), through the inference path and its cache; none when it fails. */
async function summarize(env: Env, alert: Alert): Promise<string | undefined> {
  const model = readConfig(env).AI_SUMMARY_MODEL;
  if (!model) return undefined;
  const result = await infer(
    env,
    { model, inputs: [{ name: "text", shape: [1], datatype: "BYTES", data: [alert.title] }], cache: true },
    { requestId: alert.id },
  );
  const value = result.outputs?.[0]?.data[0];
  return typeof value === "string" ? value.slice(0, 1000) : undefined;
}

/** Context for the notification; whatever cannot be had in time is left out, never blocking it. */
export async function enrich(env: Env, alert: Alert): Promise<AlertContext> {
  const twin = twinStub(env, alert.device);
  const [profile, view, recent, summary] = await Promise.allSettled([
    twin.profile(),
    twin.twin(),
    alert.metric ? twin.recent({ metric: alert.metric, limit: RECENT_SHOWN }) : Promise.resolve([]),
    summarize(env, alert),
  ]);
  return {
    room: profile.status === "fulfilled" ? (profile.value?.room ?? null) : null,
    availability: view.status === "fulfilled" ? (view.value?.availability.status ?? null) : null,
    recent: recent.status === "fulfilled" ? recent.value.slice(-RECENT_SHOWN).map((r) => ({ at: r.at, value: r.value })) : [],
    ...(summary.status === "fulfilled" && summary.value ? { summary: summary.value } : {}),
  };
}

async function deliver(env: Env, message: Envelope, attempts: number): Promise<string[]> {
  if (message.type !== "alert")
    throw new ConsumerError("unexpected_type", `the notifier takes alerts, not ${message.type}`, { retriable: false });
  const alert = alertOfPayload(message);
  // Alerts a device or service published name no rule, so no channels: they are archived and shown only.
  if (alert.status === "acknowledged" || !alert.rule_id) return [];
  const rule = await getRule(env.DB, alert.rule_id);
  if (!rule || rule.channels.length === 0) return [];
  const done = await deliveredChannels(env.DB, message.id);
  const todo = rule.channels.map((channel, index) => ({ channel, index })).filter(({ index }) => !done.has(index));
  if (todo.length === 0) return [];
  const context = await enrich(env, alert);
  const failures: string[] = [];
  await Promise.all(
    todo.map(async ({ channel, index }) => {
      const at = new Date().toISOString();
      try {
        await notify(env, channel, alert, context);
        await recordDelivery(env.DB, message.id, alert.id, { channel: index, type: channel.type, status: "delivered", attempts, at });
      } catch (error) {
        if (!(error instanceof NotifyFailed)) throw error;
        failures.push(`channel ${index} (${channel.type}): ${error.message}`);
        const last = attempts > MAX_RETRIES;
        await recordDelivery(env.DB, message.id, alert.id, {
          channel: index,
          type: channel.type,
          status: last ? "dead_lettered" : "failed",
          attempts,
          at,
          error: error.message.slice(0, 500),
        });
      }
    }),
  );
  return failures;
}

export const notifier: BatchHandler = async (messages, { env, attempts }) => {
  const errors = new Map<string, unknown>();
  await Promise.all(
    messages.map(async (message) => {
      try {
        const failures = await deliver(env, message, attempts?.get(message.id) ?? 1);
        if (failures.length > 0) errors.set(message.id, new ConsumerError("notification_failed", failures.join("; "), { retriable: true }));
      } catch (error) {
        errors.set(message.id, error);
      }
    }),
  );
  return errors;
};
