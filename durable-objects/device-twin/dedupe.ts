/**
 * Which message ids the device sent within the dedupe window, without a row per id: the ids of a
 * request live packed in its outbox ring row, and in a block of many requests' ids once the slot
 * is reused (ring.ts). Lookups go through memory — an exact map of
 * the last minutes' ids (where retries land) and a Bloom filter over the whole window — and only a
 * Bloom hit is checked in SQLite, so a false positive never turns a new message into a duplicate.
 */

/** Ids of the last this-many ms are kept exactly in memory. */
const EXACT_MS = 10 * 60_000;
/** False-positive rate the filter is sized for; each false positive costs one SQL lookup. */
const FALSE_POSITIVE_RATE = 1e-4;
const MIN_CAPACITY = 16_384;

/** A Bloom filter over strings (double hashing of two FNV-1a variants). */
export class BloomFilter {
  readonly #bits: Uint32Array;
  readonly #m: number;
  readonly #k: number;

  constructor(readonly capacity: number) {
    this.#m = Math.max(1024, Math.ceil((-capacity * Math.log(FALSE_POSITIVE_RATE)) / Math.LN2 ** 2));
    this.#k = Math.max(1, Math.round((this.#m / capacity) * Math.LN2));
    this.#bits = new Uint32Array(Math.ceil(this.#m / 32));
  }

  #positions(value: string): number[] {
    let h1 = 0x811c9dc5;
    let h2 = 0x01000193;
    for (let i = 0; i < value.length; i++) {
      const c = value.charCodeAt(i);
      h1 = Math.imul(h1 ^ c, 0x01000193) >>> 0;
      h2 = Math.imul(h2 ^ c, 0x5bd1e995) >>> 0;
    }
    h2 = (h2 ^ (h2 >>> 15)) | 1;
    const out: number[] = [];
    for (let i = 0; i < this.#k; i++) out.push(((h1 + Math.imul(i, h2)) >>> 0) % this.#m);
    return out;
  }

  add(value: string): void {
    for (const p of this.#positions(value)) this.#bits[p >>> 5] = (this.#bits[p >>> 5] as number) | (1 << (p & 31));
  }

  mightHave(value: string): boolean {
    return this.#positions(value).every((p) => ((this.#bits[p >>> 5] as number) & (1 << (p & 31))) !== 0);
  }
}

export class SeenIds {
  readonly #sql: SqlStorage;
  /** id → seq of its outbox row, for the last EXACT_MS (insertion order = seq order). */
  readonly #exact = new Map<string, number>();
  #bloom: BloomFilter | undefined;
  #count = 0;
  #legacy: boolean;

  constructor(sql: SqlStorage) {
    this.#sql = sql;
    // Versions before the outbox kept one `seen` row per id; those still count until they expire.
    this.#legacy = sql.exec("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'seen'").toArray().length > 0;
  }

  /** The filter over every id of the window, built on first use from the ring's rows and the id blocks. */
  #filter(since: number): BloomFilter {
    if (this.#bloom) return this.#bloom;
    const ids: string[] = [];
    for (const row of this.#sql.exec<{ ids: string }>(
      "SELECT ids FROM outbox_ring WHERE seq >= ? UNION ALL SELECT ids FROM seen_blocks WHERE last >= ?",
      since,
      since,
    )) {
      for (const id of JSON.parse(row.ids) as string[]) ids.push(id);
    }
    const bloom = new BloomFilter(Math.max(MIN_CAPACITY, ids.length * 2));
    for (const id of ids) bloom.add(id);
    this.#bloom = bloom;
    this.#count = ids.length;
    return bloom;
  }

  /** The ids among these that were seen since `since` (ms; outbox seqs are ms timestamps). */
  seenAmong(ids: readonly string[], since: number): Set<string> {
    const seen = new Set<string>();
    if (ids.length === 0) return seen;
    const bloom = this.#filter(since);
    const check: string[] = [];
    for (const id of ids) {
      const seq = this.#exact.get(id);
      if (seq !== undefined && seq >= since) seen.add(id);
      else if (bloom.mightHave(id)) check.push(id);
    }
    if (check.length > 0) {
      const list = JSON.stringify(check);
      for (const row of this.#sql.exec<{ id: string }>(
        `SELECT j.value AS id FROM outbox_ring AS r, json_each(r.ids) AS j
         WHERE r.seq >= ? AND j.value IN (SELECT value FROM json_each(?))
         UNION SELECT j.value AS id FROM seen_blocks AS b, json_each(b.ids) AS j
         WHERE b.last >= ? AND j.value IN (SELECT value FROM json_each(?))`,
        since,
        list,
        since,
        list,
      ))
        seen.add(row.id);
    }
    if (this.#legacy) {
      for (const row of this.#sql.exec<{ id: string }>(
        "SELECT id FROM seen WHERE at >= ? AND id IN (SELECT value FROM json_each(?))",
        since,
        JSON.stringify(ids),
      ))
        seen.add(row.id);
    }
    return seen;
  }

  /** Ids just written in the outbox ring row `seq`. */
  add(ids: readonly string[], seq: number): void {
    for (const id of ids) this.#exact.set(id, seq);
    for (const [id, at] of this.#exact) {
      if (at >= seq - EXACT_MS) break;
      this.#exact.delete(id);
    }
    if (!this.#bloom) return;
    this.#count += ids.length;
    // Past its capacity the filter answers "maybe" too often: built again, bigger, on next use.
    if (this.#count > this.#bloom.capacity) this.#bloom = undefined;
    else for (const id of ids) this.#bloom.add(id);
  }

  /** Old rows were pruned: the legacy table too, and dropped once empty. */
  prune(before: number): void {
    if (!this.#legacy) return;
    this.#sql.exec("DELETE FROM seen WHERE at < ?", before);
    if (this.#sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM seen").one().n === 0) {
      this.#sql.exec("DROP TABLE seen");
      this.#legacy = false;
    }
  }

  forget(): void {
    this.#exact.clear();
    this.#bloom = undefined;
    this.#count = 0;
    this.#legacy = false;
  }
}
