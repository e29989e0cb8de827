/**
 * The retry and dead-letter discipline every queue consumer shares. A queue message is a single
 * Envelope or a pack (`{ pack: 1, messages: Envelope[] }`); every message of a pack is handled on
 * its own. A message that fails with a retriable error is retried with backoff up to MAX_RETRIES
 * times — a single message with `msg.retry()`, the failed members of a pack re-sent to the same
 * queue as a smaller pack with a delay and their `attempts` count — and after that, or at once
 * when the error is not retriable, it is sent alone to the dead-letter queue with its original
 * exchange, routing key, queue, error and attempts. A pack is acked as a whole once its re-sends
 * and dead letters are safe; only if they fail is the whole pack retried (sinks are idempotent).
 */

import { sendToQueue } from "../shared/bus/exchange";
import { DEAD_LETTER_QUEUE, MAX_RETRIES, type QueueDef } from "../shared/bus/topology";
import { toIssues } from "../shared/error-codes";
import { log } from "../shared/log";
import { flushEvery, flushMetrics, metrics } from "../shared/metrics";
import type { DeadLetter, QueuePack, RawDeadLetter } from "../shared/schemas/message";
import { Envelope, MAX_PACK_MESSAGES } from "../shared/schemas/message";
import { ConsumerError } from "./errors";
import { recordSteps, type StepRecord } from "./history";

export interface ConsumerContext {
  env: Env;
  queue: QueueDef;
  /** Delivery attempts per message id (1 on the first), for handlers that record their own outcome. */
  attempts?: ReadonlyMap<string, number>;
  /**
   * History steps a handler adds (e.g. `stored`): recorded with the consumer's own steps in the
   * batch's one history statement, so a message's row is written once per batch.
   */
  steps?: StepRecord[];
}

/** Handles the messages of one batch that parsed; throws per message or returns per-message errors. */
export type BatchHandler = (messages: Envelope[], ctx: ConsumerContext) => Promise<Map<string, unknown> | undefined>;

/** Seconds before the next attempt: 2, 8, 32 — long enough for a restarting database. */
export function backoffSeconds(attempts: number): number {
  return Math.min(2 * 4 ** Math.max(0, attempts - 1), 300);
}

/** One message of a batch: a queue message's single envelope, or one member of its pack. */
interface Unit {
  msg: Message<unknown>;
  packed: boolean;
  envelope: Envelope | undefined;
  /** The body as it came when it is no valid envelope. */
  raw: unknown;
  /** This delivery's attempt number (the envelope's carried count plus the queue's redeliveries). */
  attempts: number;
  error?: ConsumerError;
}

function invalid(issues: Parameters<typeof toIssues>[0], what: string): ConsumerError {
  const detail = toIssues(issues)
    .map((i) => `${i.path}: ${i.message}`)
    .join("; ");
  return new ConsumerError("invalid_message", `${what}: ${detail}`, { retriable: false });
}

function isPack(body: unknown): body is { pack: unknown; messages?: unknown } {
  return typeof body === "object" && body !== null && !Array.isArray(body) && "pack" in body;
}

/** The count stays with the unit: handlers forward envelopes, and a forwarded message starts at attempt 1. */
function withoutAttempts(envelope: Envelope): Envelope {
  if (envelope.attempts === undefined) return envelope;
  const { attempts: _carried, ...rest } = envelope;
  return rest as Envelope;
}

/** Splits a batch into units: a pack's members are checked one by one, so one bad member spoils only itself. */
function unpack(batch: MessageBatch<unknown>): Unit[] {
  const units: Unit[] = [];
  for (const msg of batch.messages) {
    const body = msg.body;
    if (isPack(body)) {
      const members = body.messages;
      if (body.pack !== 1 || !Array.isArray(members) || members.length === 0 || members.length > MAX_PACK_MESSAGES) {
        const error = new ConsumerError("invalid_pack", `a pack is {"pack": 1, "messages": [1-${MAX_PACK_MESSAGES} envelopes]}`, {
          retriable: false,
        });
        units.push({ msg, packed: false, envelope: undefined, raw: body, attempts: msg.attempts, error });
        continue;
      }
      for (const member of members) {
        const parsed = Envelope.safeParse(member);
        const carried = parsed.success ? (parsed.data.attempts ?? 1) : 1;
        const attempts = carried + msg.attempts - 1;
        if (parsed.success) units.push({ msg, packed: true, envelope: withoutAttempts(parsed.data), raw: member, attempts });
        else
          units.push({
            msg,
            packed: true,
            envelope: undefined,
            raw: member,
            attempts,
            error: invalid(parsed.error.issues, "a pack member is not a valid envelope"),
          });
      }
      continue;
    }
    const parsed = Envelope.safeParse(body);
    if (parsed.success) {
      const attempts = (parsed.data.attempts ?? 1) + msg.attempts - 1;
      units.push({ msg, packed: false, envelope: withoutAttempts(parsed.data), raw: body, attempts });
    } else
      units.push({
        msg,
        packed: false,
        envelope: undefined,
        raw: body,
        attempts: msg.attempts,
        error: invalid(parsed.error.issues, "not a valid envelope"),
      });
  }
  return units;
}

/** Runs the handler on every valid unit and records each unit's error, if any. */
async function handle(units: Unit[], ctx: ConsumerContext, handler: BatchHandler): Promise<StepRecord[]> {
  const noted: StepRecord[] = [];
  const valid = units.filter((u): u is Unit & { envelope: Envelope } => u.envelope !== undefined && u.error === undefined);
  for (const { envelope } of valid) {
    const lag = (Date.now() - Date.parse(envelope.received_at)) / 1000;
    if (Number.isFinite(lag)) metrics.observe("edgemesh_routing_lag_seconds", Math.max(0, lag), { queue: ctx.queue.name });
  }
  if (valid.length === 0) return noted;
  try {
    const errors = await handler(
      valid.map((v) => v.envelope),
      { ...ctx, attempts: new Map(valid.map((v) => [v.envelope.id, v.attempts])), steps: noted },
    );
    for (const v of valid) {
      const error = errors?.get(v.envelope.id);
      if (error !== undefined) v.error = ConsumerError.from(error);
    }
  } catch (error) {
    const failure = ConsumerError.from(error);
    for (const v of valid) v.error = failure;
  }
  return noted;
}

/** A queue message's fate: acked, retried whole, or waiting on its re-sends and dead letters. */
interface Fate {
  msg: Message<unknown>;
  /** Set when the message itself is retried (a single envelope's retriable failure). */
  retryDelay?: number;
  /** Pack members to re-send, retriable and within their retries. */
  resend: Envelope[];
  resendDelay: number;
  letters: (DeadLetter | RawDeadLetter)[];
  /** Becomes false when a re-send or a dead letter could not be sent: the whole message is retried. */
  safe: boolean;
}

export async function consume(batch: MessageBatch<unknown>, ctx: ConsumerContext, handler: BatchHandler): Promise<void> {
  const units = unpack(batch);
  const started = performance.now();
  const noted = await handle(units, ctx, handler);
  metrics.observe("edgemesh_sink_duration_seconds", (performance.now() - started) / 1000, { queue: ctx.queue.name });

  const fates = new Map<Message<unknown>, Fate>();
  for (const msg of batch.messages) fates.set(msg, { msg, resend: [], resendDelay: 0, letters: [], safe: true });
  const steps: StepRecord[] = [...noted];
  let delivered = 0;
  let retried = 0;
  let deadLettered = 0;
  for (const unit of units) {
    const { msg, envelope, error, attempts } = unit;
    const fate = fates.get(msg) as Fate;
    if (!error) {
      delivered++;
      if (envelope) steps.push({ message: envelope, queue: ctx.queue.name, step: "delivered" });
      continue;
    }
    const failureFields = {
      correlation_id: envelope?.correlation_id,
      message_id: envelope?.id ?? msg.id,
      queue: ctx.queue.name,
      code: error.code,
      error: error.message,
      attempts,
      packed: unit.packed,
    };
    if (error.retriable && attempts <= MAX_RETRIES && envelope) {
      retried++;
      if (unit.packed) {
        fate.resend.push({ ...envelope, attempts: attempts + 1 });
        fate.resendDelay = Math.max(fate.resendDelay, backoffSeconds(attempts));
      } else fate.retryDelay = backoffSeconds(msg.attempts);
      log("warn", "retrying", failureFields);
      steps.push({
        message: envelope,
        queue: ctx.queue.name,
        step: "retried",
        detail: `attempt ${attempts}: ${error.code}: ${error.message}`.slice(0, 500),
      });
      continue;
    }
    deadLettered++;
    if (envelope)
      steps.push({
        message: envelope,
        queue: ctx.queue.name,
        step: "dead_lettered",
        detail: `${error.code}: ${error.message}`.slice(0, 500),
      });
    // A body that is no valid envelope cannot be replayed, but it is kept as it came.
    fate.letters.push(
      envelope
        ? deadLetter(envelope, ctx.queue, error, attempts)
        : {
            raw: unit.raw,
            queue: ctx.queue.name,
            error: { code: error.code, message: error.message.slice(0, 2000) },
            attempts,
            failed_at: new Date().toISOString(),
          },
    );
    log("error", "dead-lettering", failureFields);
  }

  await settle(ctx, [...fates.values()]);
  const counts = { delivered, retried, dead_lettered: deadLettered };
  for (const [outcome, n] of Object.entries(counts)) metrics.inc("edgemesh_sink_messages_total", { queue: ctx.queue.name, outcome }, n);
  // Debug level: off the hot path wherever the log level is info or above (issue 13).
  for (const step of steps)
    if (step.step === "delivered")
      log("debug", "delivered", { correlation_id: step.message.correlation_id, message_id: step.message.id, queue: ctx.queue.name });
  await recordSteps(ctx.env, steps, { queue: ctx.queue.name, counts });
  await flushMetrics(ctx.env.DB, flushEvery(ctx.env));
}

/** Sends the re-sent packs and the dead letters, then acks or retries each queue message. */
async function settle(ctx: ConsumerContext, fates: Fate[]): Promise<void> {
  const resends = fates.filter((f) => f.resend.length > 0);
  const target = (ctx.env as unknown as Record<string, Queue | undefined>)[ctx.queue.binding];
  await Promise.all(
    resends.map(async (fate) => {
      try {
        if (!target) throw new Error(`queue binding ${ctx.queue.binding} is missing`);
        const pack: QueuePack = { pack: 1, messages: fate.resend };
        await target.send(pack, { contentType: "json", delaySeconds: fate.resendDelay });
      } catch (error) {
        fate.safe = false;
        log("error", "re-sending a pack failed; retrying the whole pack", { queue: ctx.queue.name, error: String(error) });
      }
    }),
  );
  const lettered = fates.filter((f) => f.safe && f.letters.length > 0);
  if (lettered.length > 0) {
    try {
      await sendToQueue(
        ctx.env,
        DEAD_LETTER_QUEUE,
        lettered.flatMap((f) => f.letters),
      );
    } catch (error) {
      // The dead-letter queue is unreachable: keep the messages where they are.
      for (const f of lettered) f.safe = false;
      log("error", "dead-letter queue unavailable", {
        queue: ctx.queue.name,
        message_ids: lettered.map((f) => f.msg.id),
        error: String(error),
      });
    }
  }
  for (const fate of fates) {
    if (!fate.safe) fate.msg.retry({ delaySeconds: backoffSeconds(fate.msg.attempts) });
    else if (fate.retryDelay !== undefined) fate.msg.retry({ delaySeconds: fate.retryDelay });
    else fate.msg.ack();
  }
}

export function deadLetter(message: Envelope, queue: QueueDef, error: ConsumerError, attempts: number): DeadLetter {
  return {
    message,
    exchange: message.exchange,
    routing_key: message.routing_key,
    queue: queue.name,
    error: { code: error.code, message: error.message.slice(0, 2000) },
    attempts,
    failed_at: new Date().toISOString(),
  };
}
