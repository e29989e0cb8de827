/**
 * The twin's state in memory, persisted lazily. Profile, desired state and availability change
 * rarely and are written when they change. Reported readings, counters, last-seen and the
 * outbox's sent watermark change with every message: they are written together as ONE snapshot
 * row (meta key `lazy`) at most every SNAPSHOT_MS (in the same turn as an outbox row when one is
 * due, else by a timer), and after an eviction or restart they are rebuilt from the snapshot plus
 * the outbox rows newer than it (outbox.ts). Recent readings are a ring in memory, rebuilt from
 * the outbox ring's rows of the recent window: no row per reading.
 */
import type { AvailabilityState, Counters } from "../../shared/api-types";
import type { Envelope } from "../../shared/schemas/message";
import type { JsonObject, ReportedReading } from "../twin-document";
import { mergeReadings } from "../twin-document";
import type { RowBody } from "./outbox";
import type { RecentReading, TwinProfile } from "./types";

export const STATE_SCHEMA = `
  CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
  CREATE TABLE IF NOT EXISTS errors (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL, idx INTEGER NOT NULL,
    message_id TEXT, code TEXT NOT NULL, issues TEXT NOT NULL);
`;

/** Reported state, counters and last-seen reach storage at most this long after they change. */
export const SNAPSHOT_MS = 10_000;

/** What the snapshot covers: outbox rows up to `seq` are in it; rows up to `sent` went to every queue. */
export interface SnapshotMark {
  seq: number;
  sent: number;
}

/** The one row the lazy state is written as. */
interface LazySnapshot {
  readings: Record<string, ReportedReading>;
  counters: Counters;
  last_seen: number | null;
  mark: SnapshotMark;
}

interface Recent {
  at: number;
  metric: string;
  value: number | boolean;
  unit: string | null;
  message_id: string;
}

const NEVER_SEEN = (): AvailabilityState => ({ status: "offline", since: new Date(0).toISOString(), reason: "never_seen" });

export class TwinState {
  readonly #sql: SqlStorage;
  profile: TwinProfile | undefined;
  readings: Record<string, ReportedReading> = {};
  state: JsonObject = {};
  desired: JsonObject = {};
  version = 0;
  lastSeen: number | null = null;
  availability: AvailabilityState = NEVER_SEEN();
  counters: Counters = { accepted: 0, duplicates: 0, rejected: 0 };
  mark: SnapshotMark = { seq: 0, sent: 0 };
  #recent: Recent[] = [];
  /** The JSON last written per lazily persisted key: only keys that changed are written again. */
  readonly #written = new Map<string, string>();
  snapshotAt = 0;
  /** Something kept lazily changed since the last snapshot. */
  dirty = false;

  constructor(sql: SqlStorage) {
    this.#sql = sql;
  }

  /** Loads what storage holds; false when the device was never provisioned. */
  load(): boolean {
    // Tables are created when the registry provisions the device, never for an id someone merely guessed.
    const provisioned = this.#sql.exec("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'").toArray().length > 0;
    if (!provisioned) return false;
    this.#sql.exec(STATE_SCHEMA);
    this.profile = this.get<TwinProfile>("profile");
    this.state = this.get("state") ?? {};
    this.desired = this.get("desired") ?? {};
    this.version = this.get("version") ?? 0;
    this.availability = this.get("availability") ?? this.availability;
    const lazy = this.get<LazySnapshot>("lazy");
    // Versions before the one-row snapshot kept four keys.
    this.readings = lazy?.readings ?? this.get("readings") ?? {};
    this.lastSeen = lazy ? lazy.last_seen : (this.get("last_seen") ?? null);
    this.counters = lazy?.counters ?? this.get("counters") ?? this.counters;
    this.mark = lazy?.mark ?? this.get("snapshot") ?? this.mark;
    return true;
  }

  get<T>(key: string): T | undefined {
    const row = this.#sql.exec<{ value: string }>("SELECT value FROM meta WHERE key = ?", key).toArray()[0];
    if (!row) return undefined;
    this.#written.set(key, row.value);
    return JSON.parse(row.value) as T;
  }

  /** Writes a key now (profile, desired, version, state, availability). */
  set(key: string, value: unknown): void {
    const json = JSON.stringify(value);
    this.#sql.exec("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", key, json);
    this.#written.set(key, json);
  }

  #setIfChanged(key: string, value: unknown): void {
    const json = JSON.stringify(value);
    if (this.#written.get(key) === json) return;
    this.#sql.exec("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", key, json);
    this.#written.set(key, json);
  }

  /** Writes the lazily kept state, covering every outbox row up to `mark.seq`: one row, when anything changed. */
  snapshot(mark: SnapshotMark, now: number): void {
    this.mark = mark;
    const lazy: LazySnapshot = { readings: this.readings, counters: this.counters, last_seen: this.lastSeen, mark };
    this.#setIfChanged("lazy", lazy);
    this.snapshotAt = now;
    this.dirty = false;
  }

  /** After a restart: what outbox rows newer than the snapshot did, and the recent ring from the window's rows. */
  rebuild(rows: Iterable<{ seq: number; body: RowBody }>, recentSince: number, keep: number): void {
    for (const { seq, body } of rows) {
      if (seq > this.mark.seq) {
        if (body.c) {
          this.counters.accepted += body.c[0];
          this.counters.duplicates += body.c[1];
          this.counters.rejected += body.c[2];
        }
        if (body.h) this.lastSeen = Math.max(this.lastSeen ?? 0, seq);
        this.absorb(body.m, keep, recentSince);
      } else if (seq >= recentSince) this.#remember(body.m, keep, recentSince);
    }
  }

  /** Merges readings into the reported state and the recent ring; returns the readings that changed. */
  absorb(messages: readonly Envelope[], keep: number, recentSince: number): Record<string, ReportedReading> {
    const incoming: Record<string, ReportedReading> = {};
    for (const message of messages) {
      if (message.type !== "telemetry" && message.type !== "metric") continue;
      for (const [metric, reading] of Object.entries(message.payload)) {
        const value = typeof reading === "object" ? reading.value : reading;
        const unit = typeof reading === "object" ? reading.unit : undefined;
        const at = message.timestamp;
        const previous = Object.hasOwn(incoming, metric) ? incoming[metric] : undefined;
        if (!previous || Date.parse(previous.at) <= Date.parse(at))
          incoming[metric] = unit === undefined ? { value, at } : { value, unit, at };
      }
    }
    this.#remember(messages, keep, recentSince);
    const changed = mergeReadings(this.readings, incoming);
    return Object.fromEntries(changed.map((name) => [name, this.readings[name] as ReportedReading]));
  }

  #remember(messages: readonly Envelope[], keep: number, recentSince: number): void {
    for (const message of messages) {
      if (message.type !== "telemetry" && message.type !== "metric") continue;
      const at = Date.parse(message.timestamp);
      for (const [metric, reading] of Object.entries(message.payload)) {
        const value = typeof reading === "object" ? reading.value : reading;
        const unit = typeof reading === "object" ? reading.unit : null;
        this.#recent.push({ at, metric, value, unit, message_id: message.id });
      }
    }
    if (this.#recent.length > keep * 2) this.trimRecent(keep, recentSince);
  }

  trimRecent(keep: number, since: number): void {
    const start = Math.max(0, this.#recent.length - keep);
    this.#recent = this.#recent.slice(start).filter((r) => r.at >= since);
  }

  recent(options: { metric?: string; since: number; limit: number; keep: number }): RecentReading[] {
    this.trimRecent(options.keep, options.since);
    return this.#recent
      .filter((r) => r.at >= options.since && (options.metric === undefined || r.metric === options.metric))
      .sort((a, b) => a.at - b.at)
      .slice(0, options.limit)
      .map((r) => ({ at: new Date(r.at).toISOString(), metric: r.metric, value: r.value, unit: r.unit, message_id: r.message_id }));
  }

  /** Forgets everything (deprovision): a new device may take the id. */
  reset(): void {
    this.profile = undefined;
    this.readings = {};
    this.state = {};
    this.desired = {};
    this.version = 0;
    this.lastSeen = null;
    this.availability = NEVER_SEEN();
    this.counters = { accepted: 0, duplicates: 0, rejected: 0 };
    this.mark = { seq: 0, sent: 0 };
    this.#recent = [];
    this.#written.clear();
    this.snapshotAt = 0;
  }
}
