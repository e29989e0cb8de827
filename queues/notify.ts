/**
 * Notification channels (docs/alerts.md): webhook, ntfy and Home Assistant notify. Each send
 * has a time limit and goes through a circuit breaker per channel (cockatiel), so a dead
 * receiver fails at once instead of holding every alert for its timeout; the queue's retries
 * with backoff and its dead-letter queue are the retry discipline (queues/consumer.ts).
 */
import { isBrokenCircuitError } from "cockatiel";
import { breakerNamed, forgetBreakers } from "../shared/breakers";
import type { Alert, Channel } from "../shared/schemas/alerts";

export const NOTIFY_TIMEOUT_MS = 5_000;
const BREAKER_FAILURES = 5;
const BREAKER_COOLDOWN_MS = 30_000;

/** What a notification carries beyond the alert (seed 000 flow 4's enrichment). */
export interface AlertContext {
  room: string | null;
  availability: string | null;
  recent: { at: string; value: number | boolean }[];
  summary?: string;
}

export class NotifyFailed extends Error {
  override name = "NotifyFailed";
  constructor(
    message: string,
    readonly circuitOpen = false,
  ) {
    super(message);
  }
}

export function channelKey(channel: Channel): string {
  return `${channel.type} ${channel.url}`;
}

function breakerOf(channel: Channel) {
  return breakerNamed(`notify ${channelKey(channel)}`, { failures: BREAKER_FAILURES, cooldownMs: BREAKER_COOLDOWN_MS });
}

/** Forgets every channel's breaker (tests). */
export function resetChannelBreakers(): void {
  forgetBreakers("notify ");
}

function secretOf(env: object, name: string | undefined): string | undefined {
  if (!name) return undefined;
  const value = (env as Record<string, unknown>)[name];
  if (typeof value !== "string" || value === "") throw new NotifyFailed(`the Worker secret ${name} the channel names is not set`);
  return value;
}

function text(alert: Alert, context: AlertContext): string {
  const lines = [alert.title, `status: ${alert.status}, severity: ${alert.severity}${alert.escalated ? " (escalated)" : ""}`];
  if (context.room) lines.push(`room: ${context.room}`);
  if (context.availability) lines.push(`device: ${context.availability}`);
  if (context.recent.length) lines.push(`recent: ${context.recent.map((r) => String(r.value)).join(", ")}`);
  if (context.summary) lines.push(context.summary);
  return lines.join("\n");
}

const NTFY_PRIORITY: Record<Alert["severity"], string> = { critical: "5", warning: "4", info: "3" };

export function requestFor(env: object, channel: Channel, alert: Alert, context: AlertContext): Request {
  const json = { "content-type": "application/json" };
  switch (channel.type) {
    case "webhook": {
      const secret = secretOf(env, channel.secret);
      return new Request(channel.url, {
        method: "POST",
        headers: { ...json, ...(secret ? { authorization: `Bearer ${secret}` } : {}) },
        body: JSON.stringify({ alert, context }),
      });
    }
    case "ntfy": {
      const token = secretOf(env, channel.token_secret);
      return new Request(`${channel.url.replace(/\/$/, "")}/${channel.topic}`, {
        method: "POST",
        headers: {
          title: alert.title.slice(0, 200),
          priority: NTFY_PRIORITY[alert.severity],
          tags: [alert.severity, alert.status].join(","),
          ...(token ? { authorization: `Bearer ${token}` } : {}),
        },
        body: text(alert, context),
      });
    }
    case "home_assistant": {
      const token = secretOf(env, channel.token_secret);
      return new Request(`${channel.url.replace(/\/$/, "")}/api/services/notify/${channel.service}`, {
        method: "POST",
        headers: { ...json, authorization: `Bearer ${token}` },
        body: JSON.stringify({ title: alert.title, message: text(alert, context), data: { alert_id: alert.id, severity: alert.severity } }),
      });
    }
  }
}

/** Sends one notification; throws NotifyFailed (with the circuit state) when it did not arrive. */
export async function notify(env: object, channel: Channel, alert: Alert, context: AlertContext): Promise<void> {
  const request = requestFor(env, channel, alert, context);
  try {
    await breakerOf(channel).execute(async () => {
      const res = await fetch(request, { signal: AbortSignal.timeout(NOTIFY_TIMEOUT_MS) });
      // The body is read so the connection is released either way.
      const body = await res.text();
      if (!res.ok) throw new NotifyFailed(`${channel.type} answered ${res.status}: ${body.slice(0, 200)}`);
    });
  } catch (error) {
    if (isBrokenCircuitError(error)) throw new NotifyFailed(`${channel.type} ${channel.url}: circuit open after repeated failures`, true);
    if (error instanceof NotifyFailed) throw error;
    throw new NotifyFailed(`${channel.type} ${channel.url}: ${String(error)}`.slice(0, 500));
  }
}
