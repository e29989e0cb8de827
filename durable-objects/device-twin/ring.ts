/**
 * Where the twin's outbox rows live (outbox.ts sends them): a RING of slots reused in turn, so a
 * request costs ONE SQLite row written — `INSERT … ON CONFLICT(slot) DO UPDATE` over the slot's
 * old row — and never an update or a delete later. A slot is reused only once its row went to
 * every queue; a ring full of unsent rows refuses the next request (the ingest answers 503
 * `unavailable`, nothing is lost) — the twin's own events grow the ring instead.
 *
 * The ids of a row outlive its slot for the dedupe window (dedupe.ts): before a slot whose ids no
 * block holds yet is reused, the ids of the oldest rows are copied, many rows at once, into one
 * `seen_blocks` row (≈ one block row per BLOCK_IDS ids or BLOCK_ROWS requests). Blocks older than
 * the dedupe window are deleted by the twin's hourly housekeeping.
 */
import type { RowBody } from "./outbox";

export const RING_SCHEMA = `
  CREATE TABLE IF NOT EXISTS outbox_ring (slot INTEGER PRIMARY KEY, seq INTEGER NOT NULL, ids TEXT NOT NULL, body TEXT NOT NULL);
  CREATE TABLE IF NOT EXISTS seen_blocks (last INTEGER PRIMARY KEY, first INTEGER NOT NULL, ids TEXT NOT NULL);
`;

/** A block row takes the ids of rows until it holds this many ids … */
const BLOCK_IDS = 4_000;
/** … or this many rows. */
const BLOCK_ROWS = 1_024;

export interface RingHooks {
  /** Whether the row `seq` still waits to be sent (its slot may not be reused). */
  pending(seq: number): boolean;
  /** The row `seq` is about to be overwritten (the state snapshot must cover it: state.ts rebuilds from rows newer than it). */
  reusing(seq: number): void;
}

export class OutboxRing {
  readonly #sql: SqlStorage;
  /** The seq held in each slot (undefined: never written). */
  readonly #slotSeq: (number | undefined)[] = [];
  #size: number;
  /** The next slot to write. */
  #next = 0;
  /** Every row up to this seq has its ids in a block. */
  #blockedUpTo = 0;

  constructor(sql: SqlStorage, slots: number) {
    this.#sql = sql;
    sql.exec(RING_SCHEMA);
    this.#size = slots;
    let newest = -1;
    let newestSlot = -1;
    for (const row of sql.exec<{ slot: number; seq: number }>("SELECT slot, seq FROM outbox_ring")) {
      this.#slotSeq[row.slot] = row.seq;
      // A ring that grew (or a smaller SLOTS setting) keeps every slot it has.
      this.#size = Math.max(this.#size, row.slot + 1);
      if (row.seq > newest) {
        newest = row.seq;
        newestSlot = row.slot;
      }
    }
    this.#next = (newestSlot + 1) % this.#size;
    this.#blockedUpTo = sql.exec<{ s: number | null }>("SELECT MAX(last) AS s FROM seen_blocks").one().s ?? 0;
  }

  get size(): number {
    return this.#size;
  }

  /** The newest seq the ring or the blocks hold. */
  get newestSeq(): number {
    let max = this.#blockedUpTo;
    for (const seq of this.#slotSeq) if (seq !== undefined && seq > max) max = seq;
    return max;
  }

  /** Whether the next slot may be written: its row (if any) went to every queue. */
  hasRoom(pending: (seq: number) => boolean): boolean {
    const seq = this.#slotSeq[this.#next];
    return seq === undefined || !pending(seq);
  }

  /**
   * Writes a row into the next slot: one row written (plus, once per many requests, a block of
   * old ids). `grow`: when the slot is still unsent, a new slot is added instead (the twin's own
   * events, which no client can resend); else the caller checked `hasRoom` first.
   */
  write(seq: number, ids: readonly string[], body: RowBody, hooks: RingHooks, grow: boolean): void {
    let slot = this.#next;
    const old = this.#slotSeq[slot];
    if (old !== undefined && hooks.pending(old)) {
      if (!grow) throw new Error("twin outbox ring full");
      slot = this.#size++;
    } else {
      this.#next = (slot + 1) % this.#size;
      if (old !== undefined && old > this.#blockedUpTo) this.#block(old);
      if (old !== undefined) hooks.reusing(old);
    }
    this.#sql.exec(
      `INSERT INTO outbox_ring (slot, seq, ids, body) VALUES (?, ?, ?, ?)
       ON CONFLICT (slot) DO UPDATE SET seq = excluded.seq, ids = excluded.ids, body = excluded.body`,
      slot,
      seq,
      JSON.stringify(ids),
      JSON.stringify(body),
    );
    this.#slotSeq[slot] = seq;
  }

  /** Copies the ids of the oldest rows not in a block yet (at least up to `upTo`) into one block row. */
  #block(upTo: number): void {
    const ids: string[] = [];
    let first: number | undefined;
    let last = this.#blockedUpTo;
    let rows = 0;
    for (const row of this.#sql.exec<{ seq: number; ids: string }>(
      "SELECT seq, ids FROM outbox_ring WHERE seq > ? ORDER BY seq",
      this.#blockedUpTo,
    )) {
      if (row.seq > upTo && (ids.length >= BLOCK_IDS || rows >= BLOCK_ROWS)) break;
      first ??= row.seq;
      last = row.seq;
      rows++;
      for (const id of JSON.parse(row.ids) as string[]) ids.push(id);
    }
    if (first === undefined) return;
    this.#sql.exec("INSERT OR REPLACE INTO seen_blocks (last, first, ids) VALUES (?, ?, ?)", last, first, JSON.stringify(ids));
    this.#blockedUpTo = last;
  }

  /** Rows after `seq`, oldest first. */
  *rowsAfter(seq: number): Generator<{ seq: number; body: RowBody }> {
    for (const row of this.#sql.exec<{ seq: number; body: string }>("SELECT seq, body FROM outbox_ring WHERE seq > ? ORDER BY seq", seq))
      yield { seq: row.seq, body: JSON.parse(row.body) as RowBody };
  }

  /** Blocks whose newest id is older than the dedupe window go (one row written per block). */
  prune(before: number): void {
    this.#sql.exec("DELETE FROM seen_blocks WHERE last < ?", before);
  }

  /**
   * Versions before the ring kept one `outbox` row per request, updated and deleted later: their
   * ids become blocks, their rows with a body (unsent, or recent readings) are copied into the ring
   * (the newest `size`, unsent ones first), and the table goes.
   */
  migrate(sentUpTo: number): void {
    const legacy = this.#sql.exec("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'outbox'").toArray().length > 0;
    if (!legacy) return;
    let ids: string[] = [];
    let first: number | undefined;
    let last = 0;
    const flush = () => {
      if (first === undefined) return;
      this.#sql.exec("INSERT OR REPLACE INTO seen_blocks (last, first, ids) VALUES (?, ?, ?)", last, first, JSON.stringify(ids));
      ids = [];
      first = undefined;
    };
    for (const row of this.#sql.exec<{ seq: number; ids: string }>("SELECT seq, ids FROM outbox ORDER BY seq")) {
      first ??= row.seq;
      last = row.seq;
      for (const id of JSON.parse(row.ids) as string[]) ids.push(id);
      if (ids.length >= BLOCK_IDS) flush();
    }
    flush();
    this.#blockedUpTo = Math.max(this.#blockedUpTo, last);
    const bodies = this.#sql
      .exec<{ seq: number; ids: string; body: string }>("SELECT seq, ids, body FROM outbox WHERE body IS NOT NULL ORDER BY seq DESC")
      .toArray();
    const unsent = bodies.filter((r) => r.seq > sentUpTo);
    const sent = bodies.filter((r) => r.seq <= sentUpTo).slice(0, Math.max(0, this.#size - unsent.length));
    const keep = [...unsent, ...sent].sort((a, b) => a.seq - b.seq);
    for (const row of keep) {
      const slot = this.#next;
      if (this.#slotSeq[slot] !== undefined) this.#size++;
      const at = this.#slotSeq[slot] !== undefined ? this.#size - 1 : slot;
      this.#sql.exec(
        `INSERT INTO outbox_ring (slot, seq, ids, body) VALUES (?, ?, ?, ?)
         ON CONFLICT (slot) DO UPDATE SET seq = excluded.seq, ids = excluded.ids, body = excluded.body`,
        at,
        row.seq,
        row.ids,
        row.body,
      );
      this.#slotSeq[at] = row.seq;
      if (at === slot) this.#next = (slot + 1) % this.#size;
    }
    this.#sql.exec("DROP TABLE outbox");
  }

  forget(): void {
    this.#slotSeq.length = 0;
    this.#next = 0;
    this.#blockedUpTo = 0;
  }
}
