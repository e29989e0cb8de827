/**
 * The AlertActor's storage, lean (issue 13). A rule's state is written when it CHANGES — a rule
 * entering or leaving pending or firing, an alert acknowledged, re-notified, escalated, a rule
 * edited — not on every reading. What changes on every reading (the last reading's time and
 * value, which absence and rate-of-change rules need, and a firing alert's current value) and the
 * ids of the messages evaluated (the dedupe on message id) go into ONE journal row per
 * evaluation call, written over a ring of RING slots. Every CHECKPOINT calls the states whose
 * per-reading fields moved are written and the checkpoint noted, so the journal rows newer than
 * the checkpoint (always still in the ring) are all a restart needs: it loads the state rows and
 * lays the newer journal rows over them. DO SQLite rows written: 1 per evaluation call (however
 * many readings it carries) plus 1 per state change, plus about (rules + 1) / CHECKPOINT a call.
 *
 * Dedupe: the ids of the last RING calls are kept (in memory, and in the ring across restarts);
 * a message redelivered later than that is evaluated again, as it was past the old 2,000-id
 * window — its state step is then one the state already took (docs/alerts.md).
 */
import type { Alert, AlertRule } from "../../shared/schemas/alerts";
import type { Phase, State } from "./rules";

export const SCHEMA = `
  CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
  CREATE TABLE IF NOT EXISTS state (
    rule_id TEXT PRIMARY KEY, phase TEXT NOT NULL, since INTEGER, last_at INTEGER, last_value REAL,
    alert TEXT, next_notify INTEGER, escalate_at INTEGER, rule TEXT NOT NULL);
  CREATE TABLE IF NOT EXISTS windows (metric TEXT PRIMARY KEY, size INTEGER NOT NULL, values_json TEXT NOT NULL);
  CREATE TABLE IF NOT EXISTS journal (slot INTEGER PRIMARY KEY, seq INTEGER NOT NULL, body TEXT NOT NULL);
  CREATE TABLE IF NOT EXISTS outbox (id TEXT PRIMARY KEY, body TEXT NOT NULL, created INTEGER NOT NULL);
`;

/** Journal slots: the dedupe window, in evaluation calls. */
export const RING = 256;
/** Calls between checkpoints; at most RING, so every journal row past the checkpoint is still there. */
export const CHECKPOINT = 128;

interface StateRow {
  rule_id: string;
  phase: Phase;
  since: number | null;
  last_at: number | null;
  last_value: number | null;
  alert: string | null;
  next_notify: number | null;
  escalate_at: number | null;
  rule: string;
  [key: string]: SqlStorageValue;
}

/** A journal row: the call's message ids and the per-reading fields of the rules it moved. */
interface JournalBody {
  ids: string[];
  last: [rule_id: string, last_at: number | null, last_value: number | null, alert_value: number | null][];
}

/** The fields whose change is written at once: everything but the per-reading ones. */
function cold(s: State): string {
  const alert = s.alert ? { ...s.alert, value: undefined } : null;
  return JSON.stringify([s.phase, s.since, alert, s.next_notify, s.escalate_at, s.rule]);
}

function stateOf(row: StateRow): State {
  return { ...row, alert: row.alert ? (JSON.parse(row.alert) as Alert) : null, rule: JSON.parse(row.rule) as AlertRule };
}

export class ActorStore {
  readonly #sql: SqlStorage;
  #states: Map<string, State> | undefined;
  /** Each state's cold fields as stored. */
  readonly #written = new Map<string, string>();
  /** States whose per-reading fields moved since their row was written. */
  readonly #dirty = new Set<string>();
  readonly #seen = new Set<string>();
  readonly #slotIds = new Map<number, string[]>();
  #seq = 0;
  #checkpoint = 0;

  constructor(sql: SqlStorage) {
    this.#sql = sql;
    sql.exec(SCHEMA);
  }

  /** Every rule's state, loaded once per wake-up: the rows, then the newer journal over them. */
  states(): Map<string, State> {
    if (this.#states) return this.#states;
    const states = new Map<string, State>();
    for (const row of this.#sql.exec<StateRow>("SELECT * FROM state").toArray()) {
      const s = stateOf(row);
      states.set(s.rule_id, s);
      this.#written.set(s.rule_id, cold(s));
    }
    this.#checkpoint = Number(
      this.#sql.exec<{ value: string }>("SELECT value FROM meta WHERE key = 'checkpoint'").toArray()[0]?.value ?? 0,
    );
    const rows = this.#sql.exec<{ slot: number; seq: number; body: string }>("SELECT slot, seq, body FROM journal ORDER BY seq").toArray();
    for (const row of rows) {
      const body = JSON.parse(row.body) as JournalBody;
      this.#seq = Math.max(this.#seq, row.seq);
      this.#slotIds.set(row.slot, body.ids);
      for (const id of body.ids) this.#seen.add(id);
      if (row.seq <= this.#checkpoint) continue;
      for (const [ruleId, lastAt, lastValue, alertValue] of body.last) {
        const s = states.get(ruleId);
        if (!s || (s.last_at !== null && lastAt !== null && lastAt < s.last_at)) continue;
        s.last_at = lastAt;
        s.last_value = lastValue;
        if (s.alert && alertValue !== null) s.alert.value = alertValue;
        this.#dirty.add(ruleId);
      }
    }
    this.#legacySeen();
    this.#states = states;
    return states;
  }

  /** Actors from before the journal kept a `seen` row per message: their ids still count, once. */
  #legacySeen(): void {
    if (this.#sql.exec("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'seen'").toArray().length === 0) return;
    for (const { id } of this.#sql.exec<{ id: string }>("SELECT id FROM seen").toArray()) this.#seen.add(id);
    this.#sql.exec("DROP TABLE seen");
  }

  seen(id: string): boolean {
    this.states();
    return this.#seen.has(id);
  }

  /** Writes a state's row when its cold fields changed; otherwise notes that its per-reading ones did. */
  persist(s: State): void {
    const states = this.states();
    states.set(s.rule_id, s);
    const fingerprint = cold(s);
    if (this.#written.get(s.rule_id) === fingerprint) {
      this.#dirty.add(s.rule_id);
      return;
    }
    this.#write(s);
    this.#written.set(s.rule_id, fingerprint);
  }

  #write(s: State): void {
    this.#sql.exec(
      `INSERT INTO state (rule_id, phase, since, last_at, last_value, alert, next_notify, escalate_at, rule)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (rule_id) DO UPDATE SET phase = excluded.phase, since = excluded.since, last_at = excluded.last_at,
         last_value = excluded.last_value, alert = excluded.alert, next_notify = excluded.next_notify,
         escalate_at = excluded.escalate_at, rule = excluded.rule`,
      s.rule_id,
      s.phase,
      s.since,
      s.last_at,
      s.last_value,
      s.alert ? JSON.stringify(s.alert) : null,
      s.next_notify,
      s.escalate_at,
      JSON.stringify(s.rule),
    );
    this.#dirty.delete(s.rule_id);
  }

  remove(ruleId: string): void {
    this.states().delete(ruleId);
    this.#written.delete(ruleId);
    this.#dirty.delete(ruleId);
    this.#sql.exec("DELETE FROM state WHERE rule_id = ?", ruleId);
  }

  /** After an evaluation call: its journal row (ids, per-reading fields), and a checkpoint when due. */
  commit(ids: string[], touched: Iterable<State>): void {
    if (ids.length === 0) return;
    const last: JournalBody["last"] = [];
    for (const s of touched) if (this.#dirty.has(s.rule_id)) last.push([s.rule_id, s.last_at, s.last_value, s.alert?.value ?? null]);
    this.#seq++;
    const slot = this.#seq % RING;
    for (const old of this.#slotIds.get(slot) ?? []) this.#seen.delete(old);
    this.#slotIds.set(slot, ids);
    for (const id of ids) this.#seen.add(id);
    const body: JournalBody = { ids, last };
    this.#sql.exec(
      "INSERT INTO journal (slot, seq, body) VALUES (?, ?, ?) ON CONFLICT (slot) DO UPDATE SET seq = excluded.seq, body = excluded.body",
      slot,
      this.#seq,
      JSON.stringify(body),
    );
    if (this.#seq - this.#checkpoint >= CHECKPOINT) this.checkpoint();
  }

  /** Writes the states whose per-reading fields moved and notes the checkpoint. */
  checkpoint(): void {
    const states = this.states();
    for (const id of [...this.#dirty]) {
      const s = states.get(id);
      if (s) this.#write(s);
    }
    this.#dirty.clear();
    this.#checkpoint = this.#seq;
    this.#sql.exec(
      "INSERT INTO meta (key, value) VALUES ('checkpoint', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
      String(this.#seq),
    );
  }
}
