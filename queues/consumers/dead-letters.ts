/**
 * The dead-letter store: the consumer of `dead.letter.queue` keeps every dead letter in D1 for
 * `GET /v1/dead-letters` and replay. Idempotent: the same message failing on the same queue is
 * stored once however often it is delivered.
 */

import { hubStub } from "../../durable-objects/live-hub";
import { toIssues } from "../../shared/error-codes";
import { DeadLetter, Envelope, UNROUTABLE } from "../../shared/schemas/message";
import { backoffSeconds } from "../consumer";
import { recordSteps } from "../history";
import { DEAD_LETTER_QUEUE } from "../topology";

/** The queue recorded for messages Cloudflare itself dead-lettered after a consumer crashed. */
export const CRASHED = "(consumer-crashed)";

/**
 * Our consumers dead-letter with context; Cloudflare's own dead-letter queue setting (the
 * backstop for a consumer that crashed or timed out on every attempt) moves the bare envelope.
 */
function asDeadLetter(msg: Message<unknown>) {
  const letter = DeadLetter.safeParse(msg.body);
  if (letter.success) return letter;
  const bare = Envelope.safeParse(msg.body);
  if (!bare.success) return letter;
  return DeadLetter.safeParse({
    message: bare.data,
    exchange: bare.data.exchange,
    routing_key: bare.data.routing_key,
    queue: CRASHED,
    error: { code: "consumer_crashed", message: "a consumer crashed or timed out on every attempt; Cloudflare dead-lettered the message" },
    attempts: msg.attempts,
    failed_at: new Date().toISOString(),
  });
}

/** Dashboards watch dead letters live on the `system` hub; a missed update is only a live view. */
async function announce(env: Env, letters: DeadLetter[]): Promise<void> {
  if (letters.length === 0) return;
  const at = new Date().toISOString();
  try {
    await hubStub(env, "system").publish(
      letters.map((l) => ({
        stream: "dead_letter" as const,
        device: l.message.source,
        at,
        data: { message_id: l.message.id, queue: l.queue, exchange: l.exchange, routing_key: l.routing_key, error: l.error },
      })),
    );
  } catch (error) {
    console.warn(JSON.stringify({ level: "warn", msg: "dead letters not announced", error: String(error) }));
  }
}

export async function storeDeadLetters(batch: MessageBatch<unknown>, env: Env): Promise<void> {
  const statements: D1PreparedStatement[] = [];
  const stored: Message<unknown>[] = [];
  const letters: DeadLetter[] = [];
  const unroutable: DeadLetter[] = [];
  for (const msg of batch.messages) {
    const parsed = asDeadLetter(msg);
    if (!parsed.success) {
      // Nothing to replay from a body that is not a dead letter: log it loudly and let it go.
      console.error(JSON.stringify({ level: "error", msg: "invalid dead letter dropped", issues: toIssues(parsed.error.issues) }));
      msg.ack();
      continue;
    }
    const letter = parsed.data;
    letters.push(letter);
    if (letter.queue === UNROUTABLE || letter.queue === CRASHED) unroutable.push(letter);
    statements.push(
      env.DB.prepare(
        `INSERT INTO dead_letters (message_id, queue, exchange, routing_key, error_code, error_message, attempts, failed_at, envelope, correlation_id, source)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
         ON CONFLICT (message_id, queue) DO UPDATE SET status = 'pending', error_code = ?5, error_message = ?6,
           attempts = ?7, failed_at = ?8 WHERE status = 'replayed'`,
      ).bind(
        letter.message.id,
        letter.queue,
        letter.exchange,
        letter.routing_key,
        letter.error.code,
        letter.error.message,
        letter.attempts,
        letter.failed_at,
        JSON.stringify(letter.message),
        letter.message.correlation_id,
        letter.message.source,
      ),
    );
    stored.push(msg);
  }
  if (statements.length === 0) return;
  try {
    await env.DB.batch(statements);
    for (const msg of stored) msg.ack();
    await announce(env, letters);
    // Consumers record their own dead-lettering; messages that reached no consumer are recorded here.
    await recordSteps(
      env,
      unroutable.map((l) => ({
        message: l.message,
        queue: l.queue,
        step: "dead_lettered" as const,
        detail: `${l.error.code}: ${l.error.message}`.slice(0, 500),
      })),
      { queue: DEAD_LETTER_QUEUE, counts: { delivered: stored.length, retried: 0, dead_lettered: 0 } },
    );
  } catch (error) {
    // The store is the end of the line: never drop a dead letter, retry until D1 is back.
    for (const msg of stored) msg.retry({ delaySeconds: backoffSeconds(msg.attempts) });
    console.error(JSON.stringify({ level: "error", msg: "dead letters not stored, retrying", error: String(error) }));
  }
}
