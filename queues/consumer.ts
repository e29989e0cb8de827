/**
 * The retry and dead-letter discipline every queue consumer shares: a message that fails with a
 * retriable error is retried with backoff up to MAX_RETRIES times; after that, or at once when
 * the error is not retriable, it is sent to the dead-letter queue with its original exchange,
 * routing key, queue, error and attempts, and only then acknowledged.
 */

import { sendToQueue } from "../shared/bus/exchange";
import { DEAD_LETTER_QUEUE, MAX_RETRIES, type QueueDef } from "../shared/bus/topology";
import { toIssues } from "../shared/error-codes";
import { log } from "../shared/log";
import { flushEvery, flushMetrics, metrics } from "../shared/metrics";
import type { DeadLetter, RawDeadLetter } from "../shared/schemas/message";
import { Envelope } from "../shared/schemas/message";
import { ConsumerError } from "./errors";
import { recordSteps, type StepRecord } from "./history";
import { unpack } from "./unpack";

export interface ConsumerContext {
  env: Env;
  queue: QueueDef;
  /** Delivery attempts per message id (1 on the first), for handlers that record their own outcome. */
  attempts?: ReadonlyMap<string, number>;
}

/** Handles the messages of one batch that parsed; throws per message or returns per-message errors. */
export type BatchHandler = (messages: Envelope[], ctx: ConsumerContext) => Promise<Map<string, unknown> | undefined>;

/** Seconds before the next attempt: 2, 8, 32 — long enough for a restarting database. */
export function backoffSeconds(attempts: number): number {
  return Math.min(2 * 4 ** Math.max(0, attempts - 1), 300);
}

export async function consume(batch: MessageBatch<unknown>, ctx: ConsumerContext, handler: BatchHandler): Promise<void> {
  const valid: { msg: Message<unknown>; envelope: Envelope }[] = [];
  const failures: { msg: Message<unknown>; envelope: Envelope | undefined; error: ConsumerError }[] = [];

  const messages = unpack(batch.messages);
  for (const msg of messages) {
    const parsed = Envelope.safeParse(msg.body);
    if (parsed.success) valid.push({ msg, envelope: parsed.data });
    else {
      const detail = toIssues(parsed.error.issues)
        .map((i) => `${i.path}: ${i.message}`)
        .join("; ");
      failures.push({
        msg,
        envelope: undefined,
        error: new ConsumerError("invalid_message", `not a valid envelope: ${detail}`, { retriable: false }),
      });
    }
  }

  const started = performance.now();
  for (const { envelope } of valid) {
    const lag = (Date.now() - Date.parse(envelope.received_at)) / 1000;
    if (Number.isFinite(lag)) metrics.observe("edgemesh_routing_lag_seconds", Math.max(0, lag), { queue: ctx.queue.name });
  }
  if (valid.length > 0) {
    try {
      const errors = await handler(
        valid.map((v) => v.envelope),
        { ...ctx, attempts: new Map(valid.map((v) => [v.envelope.id, v.msg.attempts])) },
      );
      for (const v of valid) {
        const error = errors?.get(v.envelope.id);
        if (error === undefined) v.msg.ack();
        else failures.push({ ...v, error: ConsumerError.from(error) });
      }
    } catch (error) {
      const failure = ConsumerError.from(error);
      for (const v of valid) failures.push({ ...v, error: failure });
    }
  }

  metrics.observe("edgemesh_sink_duration_seconds", (performance.now() - started) / 1000, { queue: ctx.queue.name });
  let retried = 0;
  const failed = new Set(failures.map((f) => f.msg.id));
  const steps: StepRecord[] = valid
    .filter((v) => !failed.has(v.msg.id))
    .map((v) => ({ message: v.envelope, queue: ctx.queue.name, step: "delivered" as const }));
  const deadLetters: { msg: Message<unknown>; letter: DeadLetter | RawDeadLetter }[] = [];
  for (const { msg, envelope, error } of failures) {
    const failureFields = () => ({
      correlation_id: envelope?.correlation_id,
      message_id: envelope?.id ?? msg.id,
      queue: ctx.queue.name,
      code: error.code,
      error: error.message,
      attempts: msg.attempts,
    });
    if (error.retriable && msg.attempts <= MAX_RETRIES) {
      msg.retry({ delaySeconds: backoffSeconds(msg.attempts) });
      retried++;
      log("warn", "retrying", failureFields());
      if (envelope)
        steps.push({
          message: envelope,
          queue: ctx.queue.name,
          step: "retried",
          detail: `attempt ${msg.attempts}: ${error.code}: ${error.message}`.slice(0, 500),
        });
      continue;
    }
    if (envelope)
      steps.push({
        message: envelope,
        queue: ctx.queue.name,
        step: "dead_lettered",
        detail: `${error.code}: ${error.message}`.slice(0, 500),
      });
    deadLetters.push({
      msg,
      letter: envelope
        ? deadLetter(envelope, ctx.queue, error, msg.attempts)
        : {
            raw: msg.body,
            queue: ctx.queue.name,
            error: { code: error.code, message: error.message.slice(0, 2000) },
            attempts: msg.attempts,
            failed_at: new Date().toISOString(),
          },
    });
    log("error", "dead-lettering", failureFields());
  }

  if (deadLetters.length > 0) {
    // A body that is no valid envelope cannot be replayed, but it is kept as it came.
    const letters = deadLetters.map((d) => d.letter);
    try {
      await sendToQueue(ctx.env, DEAD_LETTER_QUEUE, letters);
      for (const d of deadLetters) d.msg.ack();
    } catch (error) {
      // The dead-letter queue is unreachable: keep the messages where they are.
      for (const d of deadLetters) d.msg.retry({ delaySeconds: backoffSeconds(d.msg.attempts) });
      log("error", "dead-letter queue unavailable", {
        queue: ctx.queue.name,
        message_ids: deadLetters.map((d) => d.msg.id),
        error: String(error),
      });
    }
  }

  for (const step of steps)
    if (step.step === "delivered")
      log("info", "delivered", { correlation_id: step.message.correlation_id, message_id: step.message.id, queue: ctx.queue.name });
  const counts = { delivered: messages.length - failures.length, retried, dead_lettered: deadLetters.length };
  for (const [outcome, n] of Object.entries(counts)) metrics.inc("edgemesh_sink_messages_total", { queue: ctx.queue.name, outcome }, n);
  await recordSteps(ctx.env, steps, { queue: ctx.queue.name, counts });
  await flushMetrics(ctx.env.DB, flushEvery(ctx.env));
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
