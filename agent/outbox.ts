/**
 * The disk outbox (node:sqlite, WAL): every message the agent took and the edge has not yet
 * acknowledged, in arrival order. A message leaves only when the edge answered for it (stored,
 * duplicate, or rejected for good). Ids are unique, so a broker redelivering a message that is
 * still waiting adds nothing.
 *
 * Bounded by messages and bytes. When full, `backpressure` refuses new messages (the MQTT
 * source then holds its acknowledgement, so the broker keeps them) and `drop_oldest` deletes
 * the oldest waiting messages to make room, counting each as dropped.
 */
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import { DatabaseSync, type StatementSync } from "node:sqlite";

export interface OutboxMessage {
  seq: number;
  id: string;
  device: string;
  /** The message as the edge's agent route takes it (JSON text). */
  body: string;
  created: number;
}

export interface OutboxOptions {
  path: string;
  maxMessages: number;
  maxBytes: number;
  whenFull: "backpressure" | "drop_oldest";
  sync: "full" | "normal";
}

export type AddOutcome = "added" | "duplicate" | "full";

export class Outbox {
  readonly #db: DatabaseSync;
  readonly #options: OutboxOptions;
  #count: number;
  #bytes: number;
  dropped = 0;
  readonly #insert: StatementSync;
  readonly #peek: StatementSync;
  readonly #remove: StatementSync;
  readonly #oldest: StatementSync;
  readonly #listeners = new Set<() => void>();

  constructor(options: OutboxOptions) {
    this.#options = options;
    mkdirSync(dirname(options.path), { recursive: true });
    this.#db = new DatabaseSync(options.path);
    this.#db.exec(`PRAGMA journal_mode = WAL; PRAGMA synchronous = ${options.sync === "full" ? "FULL" : "NORMAL"};`);
    this.#db.exec(`CREATE TABLE IF NOT EXISTS outbox (
      seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, device TEXT NOT NULL,
      body TEXT NOT NULL, bytes INTEGER NOT NULL, created INTEGER NOT NULL)`);
    const totals = this.#db.prepare("SELECT count(*) AS n, coalesce(sum(bytes), 0) AS b FROM outbox").get() as { n: number; b: number };
    this.#count = totals.n;
    this.#bytes = totals.b;
    this.#insert = this.#db.prepare("INSERT OR IGNORE INTO outbox (id, device, body, bytes, created) VALUES (?, ?, ?, ?, ?)");
    this.#peek = this.#db.prepare("SELECT seq, id, device, body, created FROM outbox ORDER BY seq LIMIT ?");
    this.#remove = this.#db.prepare("DELETE FROM outbox WHERE seq = ? RETURNING bytes");
    this.#oldest = this.#db.prepare("SELECT seq, bytes FROM outbox ORDER BY seq LIMIT ?");
  }

  get depth(): number {
    return this.#count;
  }

  get bytes(): number {
    return this.#bytes;
  }

  /** Whether a message of this size would be refused now (backpressure policy). */
  full(bytes = 0): boolean {
    return this.#count + 1 > this.#options.maxMessages || this.#bytes + bytes > this.#options.maxBytes;
  }

  /** Stores one message durably; once this returns "added" or "duplicate" it survives a crash. */
  add(id: string, device: string, body: string, now = Date.now()): AddOutcome {
    const bytes = Buffer.byteLength(body);
    if (this.full(bytes)) {
      if (this.#options.whenFull === "backpressure" || bytes > this.#options.maxBytes) return "full";
      this.#makeRoom(bytes);
    }
    const changes = Number(this.#insert.run(id, device, body, bytes, now).changes);
    if (changes === 0) return "duplicate";
    this.#count++;
    this.#bytes += bytes;
    for (const listener of this.#listeners) listener();
    return "added";
  }

  #makeRoom(bytes: number): void {
    this.#db.exec("BEGIN");
    try {
      while (this.#count > 0 && this.full(bytes)) {
        const rows = this.#oldest.all(Math.max(1, Math.min(1000, this.#count))) as { seq: number; bytes: number }[];
        for (const row of rows) {
          if (!this.full(bytes)) break;
          this.#remove.run(row.seq);
          this.#count--;
          this.#bytes -= row.bytes;
          this.dropped++;
        }
      }
      this.#db.exec("COMMIT");
    } catch (error) {
      this.#db.exec("ROLLBACK");
      throw error;
    }
  }

  /** The oldest waiting messages, in order. */
  peek(limit: number): OutboxMessage[] {
    return this.#peek.all(limit) as unknown as OutboxMessage[];
  }

  /** Removes messages the edge answered for, in one transaction. */
  remove(seqs: readonly number[]): void {
    if (seqs.length === 0) return;
    this.#db.exec("BEGIN");
    try {
      for (const seq of seqs) {
        const row = this.#remove.get(seq) as { bytes: number } | undefined;
        if (row) {
          this.#count--;
          this.#bytes -= row.bytes;
        }
      }
      this.#db.exec("COMMIT");
    } catch (error) {
      this.#db.exec("ROLLBACK");
      throw error;
    }
    for (const listener of this.#listeners) listener();
  }

  /** Age in seconds of the oldest waiting message, or 0. */
  oldestAgeSeconds(now = Date.now()): number {
    const row = this.#db.prepare("SELECT created FROM outbox ORDER BY seq LIMIT 1").get() as { created: number } | undefined;
    return row ? Math.max(0, (now - row.created) / 1000) : 0;
  }

  /** Called after every add and remove (the uplink wakes; the source retries a refused message). */
  onChange(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  close(): void {
    this.#listeners.clear();
    this.#db.close();
  }
}
