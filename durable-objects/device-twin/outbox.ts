/**
 * The twin's outbox: what the device sent is safe once its request's ONE row is written (the
 * answer waits for that write, not for the queues). The row holds the accepted envelopes, the
 * queues each goes to, and their ids (for dedupe, dedupe.ts); it lives in a slot of a ring
 * (ring.ts) that is reused once the row was sent — one row written per request, no update or
 * delete afterwards. Rows are flushed per queue as packs (`QueuePack`), each queue after its
 * pack window (`pack` in shared/bus/topology.ts): an in-process timer while the object lives,
 * the alarm as the safety net after an eviction.
 *
 * Durable progress is one watermark, `sentUpTo`, kept in memory and persisted lazily with the
 * state snapshot (state.ts): every row up to it went to all its queues. After a restart the rows
 * above the persisted watermark are sent again; a queue may then get a message twice, which every
 * consumer takes once (every sink is idempotent on the message id).
 *
 * The ring's rows keep their body until the slot is reused (state.ts rebuilds the recent
 * readings from them); their ids outlive the slot in blocks for the dedupe window (ring.ts).
 */
import { sendToQueue, unroutable } from "../../shared/bus/exchange";
import { DEAD_LETTER_QUEUE, type PackWindow } from "../../shared/bus/topology";
import { log, logs } from "../../shared/log";
import { metrics } from "../../shared/metrics";
import { Envelope, MAX_PACK_BYTES, MAX_PACK_MESSAGES, type QueuePack } from "../../shared/schemas/message";
import { utf8Length } from "./ingest";
import { OutboxRing } from "./ring";

/** What a row holds: messages, the queues of each, and what the request counted (state.ts). */
export interface RowBody {
  m: Envelope[];
  r: string[][];
  /** accepted, duplicates, rejected of the request; absent on the twin's own events. */
  c?: [number, number, number];
  /** The device was heard (an ingest row). */
  h?: 1;
}

interface Pending {
  seq: number;
  body: RowBody;
  queues: Set<string>;
}

/**
 * Windows up to this long are kept by an in-process timer. Longer ones (the archive's) ride along
 * with the next flush once they are due, or with the alarm: a timer must not keep an idle object
 * awake for half a minute.
 */
const TIMER_WINDOW_MS = 5_000;
const RETRY_MIN_MS = 1_000;
const RETRY_MAX_MS = 60_000;

export class TwinOutbox {
  readonly #ring: OutboxRing;
  readonly #reusing: (seq: number) => void;
  readonly #env: object;
  readonly #device: () => string | undefined;
  readonly #windowOf: (queue: string) => PackWindow | undefined;
  /** Rows not yet sent to all their queues, by seq (ascending: Map keeps insertion order). */
  readonly #pending = new Map<number, Pending>();
  #lastSeq = 0;
  /** Queues being sent right now, and how that ends. */
  readonly #flushing = new Map<string, Promise<void>>();
  #timer: ReturnType<typeof setTimeout> | undefined;
  #timerAt = Number.POSITIVE_INFINITY;
  #retryMs = 0;
  #retryAt = 0;

  constructor(
    sql: SqlStorage,
    env: object,
    device: () => string | undefined,
    windowOf: (queue: string) => PackWindow | undefined,
    sentUpTo: number,
    slots: number,
    reusing: (seq: number) => void = () => undefined,
  ) {
    this.#reusing = reusing;
    this.#windowOf = windowOf;
    this.#env = env;
    this.#device = device;
    this.#ring = new OutboxRing(sql, slots);
    this.#ring.migrate(sentUpTo);
    this.#lastSeq = Math.max(sentUpTo, this.#ring.newestSeq);
    for (const row of this.#ring.rowsAfter(sentUpTo)) {
      this.#pending.set(row.seq, { seq: row.seq, body: row.body, queues: new Set(row.body.r.flat()) });
    }
  }

  /** Every row up to this seq went to all its queues. */
  get sentUpTo(): number {
    for (const seq of this.#pending.keys()) return seq - 1;
    return this.#lastSeq;
  }

  /** The newest row's seq. */
  get lastSeq(): number {
    return this.#lastSeq;
  }

  get hasPending(): boolean {
    return this.#pending.size > 0;
  }

  /** Rows after `seq` the ring still holds, oldest first (state.ts rebuilds from them). */
  rowsAfter(seq: number): Generator<{ seq: number; body: RowBody }> {
    return this.#ring.rowsAfter(seq);
  }

  /** Whether a request's row may be written now: false when the ring is full of unsent rows. */
  get hasRoom(): boolean {
    return this.#ring.hasRoom((seq) => this.#pending.has(seq));
  }

  /** Slots in the ring (it grows only for the twin's own events). */
  get slots(): number {
    return this.#ring.size;
  }

  /** How many rows wait to be sent. */
  get pendingRows(): number {
    return this.#pending.size;
  }

  /** A seq for a new row: a millisecond timestamp, strictly increasing. */
  nextSeq(now: number): number {
    this.#lastSeq = Math.max(this.#lastSeq + 1, now);
    return this.#lastSeq;
  }

  /**
   * Writes one row (synchronously: callers do it with no await before it, so it commits with
   * whatever else they write in the same turn) and arranges its flush. A device's request checks
   * `hasRoom` first; `grow` (the twin's own events) adds a slot when the ring is full instead.
   */
  append(seq: number, body: RowBody, grow = false): void {
    const ids = body.m.map((m) => m.id);
    this.#ring.write(seq, ids, body, { pending: (s) => this.#pending.has(s), reusing: this.#reusing }, grow);
    this.#pending.set(seq, { seq, body, queues: new Set(body.r.flat()) });
    this.#arrange();
  }

  /** Sets the timer for the earliest queue whose window closes, or flushes at once. */
  #arrange(): void {
    const due = this.#nextDue();
    if (due === undefined) return;
    const at = Math.max(due, this.#retryAt);
    if (at >= this.#timerAt) return;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timerAt = at;
    this.#timer = setTimeout(
      () => {
        this.#timer = undefined;
        this.#timerAt = Number.POSITIVE_INFINITY;
        void this.flush(false);
      },
      Math.max(0, at - Date.now()),
    );
  }

  /** Per queue with pending rows: the oldest row's seq and how many messages wait. */
  #waiting(): Map<string, { oldest: number; count: number }> {
    const out = new Map<string, { oldest: number; count: number }>();
    for (const row of this.#pending.values()) {
      for (let i = 0; i < row.body.r.length; i++) {
        for (const queue of row.body.r[i] as string[]) {
          if (!row.queues.has(queue)) continue;
          const entry = out.get(queue);
          if (entry) entry.count++;
          else out.set(queue, { oldest: row.seq, count: 1 });
        }
      }
    }
    return out;
  }

  #dueAt(queue: string, oldest: number, count: number): number {
    const pack = this.#windowOf(queue);
    if (!pack || count >= pack.maxMessages) return 0;
    return oldest + pack.windowMs;
  }

  #nextDue(): number | undefined {
    let next: number | undefined;
    for (const [queue, { oldest, count }] of this.#waiting()) {
      if (this.#flushing.has(queue)) continue;
      const at = this.#dueAt(queue, oldest, count);
      if (at - oldest > TIMER_WINDOW_MS) continue;
      next = next === undefined ? at : Math.min(next, at);
    }
    return next;
  }

  /**
   * Sends what is due (`all`: everything pending, whatever the windows — the alarm and the
   * twin's own events do that), one sendBatch per queue. Resolves when done; failures are kept
   * and retried with backoff, never thrown.
   */
  async flush(all: boolean): Promise<void> {
    // Sends under way finish first: the caller (the alarm) must see what they left.
    if (all) await Promise.all(this.#flushing.values());
    const now = Date.now();
    const due = [...this.#waiting()].filter(
      ([queue, w]) => !this.#flushing.has(queue) && (all || this.#dueAt(queue, w.oldest, w.count) <= now),
    );
    await Promise.all(due.map(([queue]) => this.#flushQueue(queue)));
    this.#arrange();
  }

  #flushQueue(queue: string): Promise<void> {
    const sending: Promise<void> = this.#send(queue).finally(() => {
      if (this.#flushing.get(queue) === sending) this.#flushing.delete(queue);
    });
    this.#flushing.set(queue, sending);
    return sending;
  }

  async #send(queue: string): Promise<void> {
    const rows = [...this.#pending.values()].filter((row) => row.queues.has(queue));
    try {
      const messages: Envelope[] = [];
      for (const row of rows) {
        row.body.m.forEach((m, i) => {
          if (row.body.r[i]?.includes(queue)) messages.push(m);
        });
      }
      const bodies = queue === DEAD_LETTER_QUEUE ? messages.map((m) => unroutable(m)) : packs(messages);
      await sendToQueue(this.#env, queue, bodies);
      metrics.inc("edgemesh_routed_messages_total", { queue }, messages.length);
      // One line per message only when asked for (LOG_LEVEL = "debug"): the flow by correlation id.
      if (logs("debug"))
        for (const m of messages) log("debug", "routed", { correlation_id: m.correlation_id, message_id: m.id, source: m.source, queue });
      this.#retryMs = 0;
      this.#retryAt = 0;
      for (const row of rows) {
        row.queues.delete(queue);
        if (row.queues.size === 0) this.#pending.delete(row.seq);
      }
    } catch (error) {
      this.#retryMs = Math.min(RETRY_MAX_MS, Math.max(RETRY_MIN_MS, this.#retryMs * 2));
      this.#retryAt = Date.now() + this.#retryMs;
      // Kept in storage; tried again after the backoff (or by the alarm after an eviction).
      log("warn", "twin outbox not sent yet", { device: this.#device(), queue, rows: rows.length, error: String(error) });
    }
  }

  /** Drops the id blocks older than the dedupe window (the ring's rows are never deleted: reused). */
  prune(before: number): void {
    this.#ring.prune(before);
  }

  forget(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#timerAt = Number.POSITIVE_INFINITY;
    this.#pending.clear();
    this.#ring.forget();
    this.#lastSeq = 0;
  }
}

/** Envelopes as queue bodies: packs of up to MAX_PACK_MESSAGES under MAX_PACK_BYTES; a lone message as itself. */
export function packs(messages: readonly Envelope[]): (Envelope | QueuePack)[] {
  const out: (Envelope | QueuePack)[] = [];
  let current: Envelope[] = [];
  let bytes = 0;
  const close = () => {
    if (current.length === 1) out.push(current[0] as Envelope);
    else if (current.length > 1) out.push({ pack: 1, messages: current });
    current = [];
    bytes = 0;
  };
  for (const message of messages) {
    const size = utf8Length(JSON.stringify(message)) + 1;
    if (current.length > 0 && (current.length === MAX_PACK_MESSAGES || bytes + size > MAX_PACK_BYTES - 32)) close();
    current.push(message);
    bytes += size;
  }
  close();
  return out;
}

/** Parses a row body written by this or an older version; rows that no longer validate lose those messages. */
export function validBody(body: RowBody, device: string | undefined): RowBody {
  const keep = body.m.map((m) => Envelope.safeParse(m));
  if (keep.every((k) => k.success)) return body;
  log("error", "unpublishable twin outbox message dropped", { device });
  return {
    ...body,
    m: keep.flatMap((k) => (k.success ? [k.data] : [])),
    r: body.r.filter((_, i) => keep[i]?.success),
  };
}
