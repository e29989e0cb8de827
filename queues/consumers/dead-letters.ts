/**
 * The dead-letter store: the consumer of `dead.letter.queue` keeps every dead letter in D1 for
 * `GET /v1/dead-letters` and replay, and announces it on the `system` live hub. Nothing that
 * reaches it is dropped: envelopes dead-lettered with context, bare envelopes Cloudflare itself
 * dead-lettered after consumer crashes, and bodies that are no valid envelope at all (kept as
 * they came, marked not replayable). Idempotent: one message failing on one queue is one row.
 */
import { hubStub } from "../../durable-objects/stubs";
import { DEAD_LETTER_QUEUE } from "../../shared/bus/topology";
import { log } from "../../shared/log";
import { DeadLetter, Envelope, RawDeadLetter, UNROUTABLE } from "../../shared/schemas/message";
import { backoffSeconds } from "../consumer";
import { recordSteps } from "../history";

/** The queue recorded for messages Cloudflare itself dead-lettered after a consumer crashed. */
export const CRASHED = "(consumer-crashed)";
/** The queue recorded for a body whose origin cannot be told. */
export const UNKNOWN = "(unknown)";

type Stored = { kind: "letter"; letter: DeadLetter } | { kind: "raw"; letter: RawDeadLetter };

/** A body Cloudflare dead-lettered bare: the envelope as it was on the queue whose consumer crashed. */
function crashed(message: Envelope, attempts: number, now: string): Stored {
  return {
    kind: "letter",
    letter: {
      message,
      exchange: message.exchange,
      routing_key: message.routing_key,
      queue: CRASHED,
      error: {
        code: "consumer_crashed",
        message: "a consumer crashed or timed out on every attempt; Cloudflare dead-lettered the message",
      },
      attempts,
      failed_at: now,
    },
  };
}

function unknown(raw: unknown, attempts: number, now: string): Stored {
  return {
    kind: "raw",
    letter: {
      raw,
      queue: UNKNOWN,
      error: { code: "invalid_message", message: "not an envelope or a dead letter" },
      attempts,
      failed_at: now,
    },
  };
}

/**
 * What one queue message holds: a dead letter, or a bare envelope or pack Cloudflare dead-lettered
 * after consumer crashes — a pack's members each become their own letter, replayable alone.
 */
function classify(msg: Message<unknown>): Stored[] {
  const letter = DeadLetter.safeParse(msg.body);
  if (letter.success) return [{ kind: "letter", letter: letter.data }];
  const raw = RawDeadLetter.safeParse(msg.body);
  if (raw.success) return [{ kind: "raw", letter: raw.data }];
  const now = new Date().toISOString();
  const bare = Envelope.safeParse(msg.body);
  if (bare.success) return [crashed(withoutAttempts(bare.data), msg.attempts, now)];
  const body = msg.body as { pack?: unknown; messages?: unknown } | null;
  if (typeof body === "object" && body !== null && body.pack === 1 && Array.isArray(body.messages) && body.messages.length > 0) {
    return body.messages.map((member) => {
      const parsed = Envelope.safeParse(member);
      if (!parsed.success) return unknown(member, msg.attempts, now);
      return crashed(withoutAttempts(parsed.data), (parsed.data.attempts ?? 1) + msg.attempts - 1, now);
    });
  }
  return [unknown(msg.body, msg.attempts, now)];
}

function withoutAttempts(message: Envelope): Envelope {
  if (message.attempts === undefined) return message;
  const { attempts: _carried, ...rest } = message;
  return rest as Envelope;
}

function row(db: D1Database, stored: Stored, queueMessageId: string): D1PreparedStatement {
  const insert = db.prepare(
    `INSERT INTO dead_letters (message_id, source, queue, exchange, routing_key, error_code, error_message, attempts, failed_at, envelope, correlation_id, replayable)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
     ON CONFLICT (source, message_id, queue) DO UPDATE SET status = 'pending', replayed_at = NULL,
       error_code = ?6, error_message = ?7, attempts = ?8, failed_at = ?9`,
  );
  if (stored.kind === "letter") {
    const l = stored.letter;
    return insert.bind(
      l.message.id,
      l.message.source,
      l.queue,
      l.exchange,
      l.routing_key,
      l.error.code,
      l.error.message,
      l.attempts,
      l.failed_at,
      JSON.stringify(l.message),
      l.message.correlation_id,
      1,
    );
  }
  const l = stored.letter;
  const body = JSON.stringify(l.raw) ?? "null";
  return insert.bind(
    queueMessageId,
    UNKNOWN,
    l.queue,
    "",
    "",
    l.error.code,
    l.error.message,
    l.attempts,
    l.failed_at,
    body.slice(0, 100_000),
    null,
    0,
  );
}

/** Dashboards watch dead letters live on the `system` hub; a missed update is only a live view. */
async function announce(env: Env, letters: Stored[]): Promise<void> {
  if (letters.length === 0) return;
  const at = new Date().toISOString();
  try {
    await hubStub(env, "system").publish(
      letters.map((s) => ({
        stream: "dead_letter" as const,
        device: s.kind === "letter" ? s.letter.message.source : undefined,
        at,
        data:
          s.kind === "letter"
            ? {
                message_id: s.letter.message.id,
                queue: s.letter.queue,
                exchange: s.letter.exchange,
                routing_key: s.letter.routing_key,
                error: s.letter.error,
              }
            : { queue: s.letter.queue, error: s.letter.error, replayable: false },
      })),
    );
  } catch (error) {
    log("warn", "dead letters not announced", { error: String(error) });
  }
}

export async function storeDeadLetters(batch: MessageBatch<unknown>, env: Env): Promise<void> {
  // A raw member of a pack is keyed by the queue message's id and its place in the pack.
  const stored = batch.messages.flatMap((msg) =>
    classify(msg).map((one, i, all) => ({ msg, stored: one, key: all.length > 1 ? `${msg.id}.${i}` : msg.id })),
  );
  try {
    await env.DB.batch(stored.map((s) => row(env.DB, s.stored, s.key)));
    for (const msg of batch.messages) msg.ack();
    for (const s of stored) {
      const letter = s.stored.kind === "letter" ? s.stored.letter : undefined;
      log("warn", "dead letter stored", {
        correlation_id: letter?.message.correlation_id,
        message_id: letter?.message.id ?? s.msg.id,
        queue: s.stored.letter.queue,
        code: s.stored.letter.error.code,
      });
    }
  } catch (error) {
    // The store is the end of the line: never drop a dead letter; retry until D1 is back.
    for (const msg of batch.messages) msg.retry({ delaySeconds: backoffSeconds(msg.attempts) });
    log("error", "dead letters not stored, retrying", { error: String(error) });
    return;
  }
  await announce(
    env,
    stored.map((s) => s.stored),
  );
  // Consumers record their own dead-lettering; messages that reached no consumer are recorded here.
  const noConsumer = stored.flatMap((s) =>
    s.stored.kind === "letter" && (s.stored.letter.queue === UNROUTABLE || s.stored.letter.queue === CRASHED) ? [s.stored.letter] : [],
  );
  await recordSteps(
    env,
    noConsumer.map((l) => ({
      message: l.message,
      queue: l.queue,
      step: "dead_lettered" as const,
      detail: `${l.error.code}: ${l.error.message}`.slice(0, 500),
    })),
    { queue: DEAD_LETTER_QUEUE, counts: { delivered: stored.length, retried: 0, dead_lettered: 0 } },
  );
}
