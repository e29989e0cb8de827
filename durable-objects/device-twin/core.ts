/**
 * The inside of a DeviceTwin (index.ts is its RPC surface): its state, outbox, dedupe and command
 * stores, authentication, the live announcements, availability transitions, the alarm and the
 * lazy persistence. Kept apart from the Durable Object class so that none of it is callable over RPC.
 */
import { packWindow } from "../../shared/bus/topology";
import { readConfig } from "../../shared/config";
import { secretMatches } from "../../shared/credentials";
import { derivedId } from "../../shared/ids";
import { log } from "../../shared/log";
import type { HubUpdate } from "../../shared/schemas/live";
import { Envelope } from "../../shared/schemas/message";
import type { Availability } from "../availability";
import { type Command, CommandOutbox } from "../command-outbox";
import { agentLinkStub } from "../stubs";
import { TokenBucket } from "../token-bucket";
import type { ReportedReading } from "../twin-document";
import { HubAnnouncer } from "./announce";
import { nextAlarmAt, stateChangedMessage } from "./availability";
import { type CommandOutcome, resultMessage, Waiters } from "./commands";
import { SeenIds } from "./dedupe";
import { routeOf } from "./ingest";
import { TwinOutbox } from "./outbox";
import { SNAPSHOT_MS, TwinState } from "./state";
import { type Failure, type Rejection, type TwinProfile, unauthorized } from "./types";

/** An object whose every property is read from `resolve()` at the time of use. */
function late<T extends object>(resolve: () => T): T {
  return new Proxy({} as T, {
    get(_t, prop) {
      const target = resolve();
      const value = Reflect.get(target, prop, target);
      return typeof value === "function" ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
    has: (_t, prop) => Reflect.has(resolve(), prop),
  });
}

const PRUNE_EVERY_MS = 10 * 60 * 1000;
/** The registry's last_seen is written at most this often per device (docs/twins.md: the list views trail by under a minute). */
const REGISTRY_SEEN_EVERY_MS = 50_000;
const REGISTRY_REJECTED_EVERY_MS = 60_000;

export class TwinCore {
  readonly s: TwinState;

  bucket: TokenBucket | undefined;

  lastPrune = 0;
  /** When the registry's last_seen / last_rejected_at were last written (memory only: a restarted twin writes once more). */
  registrySeen = 0;
  registryRejected = 0;

  outboxRows: TwinOutbox | undefined;

  seenIds: SeenIds | undefined;

  commandStore: CommandOutbox | undefined;

  readonly waiters = new Waiters();

  readonly hub: HubAnnouncer;

  snapshotTimer: ReturnType<typeof setTimeout> | undefined;

  /** The alarm as last set or read (undefined: not known yet). */
  alarmAt: number | null | undefined;

  /**
   * The object's SQLite and env, looked up at each use on the owner (the DeviceTwin): the metered
   * subclass (shared/billing-do.ts) swaps in its metered `ctx` and `env` only after the
   * constructor, so nothing here may keep the ones the constructor saw.
   */
  readonly sql: SqlStorage;
  readonly lazyEnv: Env;

  constructor(readonly owner: { readonly ctx: DurableObjectState; readonly env: Env }) {
    this.sql = late(() => owner.ctx.storage.sql);
    this.lazyEnv = late(() => owner.env);
    this.s = new TwinState(this.sql);
    this.hub = new HubAnnouncer(owner);
    if (this.s.load()) this.open();
  }

  /** Opens the outbox and rebuilds what the last snapshot does not hold yet (state.ts). */
  open(): void {
    const sql = this.sql;
    const { ARCHIVE_PACK_SECONDS, LIVE_PACK_MS, TWIN_OUTBOX_SLOTS } = readConfig(this.env);
    const outbox = new TwinOutbox(
      sql,
      this.lazyEnv,
      () => this.s.profile?.id,
      (queue) => packWindow(queue, ARCHIVE_PACK_SECONDS * 1000, LIVE_PACK_MS),
      this.s.mark.sent,
      TWIN_OUTBOX_SLOTS,
      // A row newer than the snapshot is about to be overwritten (> SLOTS requests within SNAPSHOT_MS): snapshot first.
      // The row being written is not in memory yet: the snapshot covers the rows before it.
      (seq) => {
        if (seq > this.s.mark.seq) this.snapshot(Date.now(), this.outbox.lastSeq - 1);
      },
    );
    this.outboxRows = outbox;
    this.seenIds = new SeenIds(sql);
    this.migrateLegacy(outbox);
    const config = readConfig(this.env);
    const recentSince = Date.now() - config.RECENT_READINGS_MINUTES * 60_000;
    this.s.rebuild(outbox.rowsAfter(Math.min(this.s.mark.seq, recentSince)), recentSince, config.RECENT_READINGS_KEPT);
    if (outbox.hasPending) void outbox.flush(false);
  }

  /** Versions before the outbox kept a row per unsent event and per recent reading. */
  migrateLegacy(outbox: TwinOutbox): void {
    const sql = this.ctx.storage.sql;
    const tables = new Set(
      sql
        .exec<{ name: string }>("SELECT name FROM sqlite_master WHERE type = 'table'")
        .toArray()
        .map((r) => r.name),
    );
    if (tables.has("outbound")) {
      for (const row of sql.exec<{ body: string }>("SELECT body FROM outbound ORDER BY created").toArray()) {
        const parsed = Envelope.safeParse(JSON.parse(row.body));
        if (parsed.success) outbox.append(outbox.nextSeq(Date.now()), { m: [parsed.data], r: [routeOf(parsed.data)] }, true);
      }
      sql.exec("DROP TABLE outbound");
    }
    if (tables.has("recent")) sql.exec("DROP TABLE recent");
  }

  get ctx(): DurableObjectState {
    return this.owner.ctx;
  }

  get env(): Env {
    return this.owner.env;
  }

  get outbox(): TwinOutbox {
    if (!this.outboxRows) this.open();
    return this.outboxRows as TwinOutbox;
  }

  get seen(): SeenIds {
    if (!this.seenIds) this.open();
    return this.seenIds as SeenIds;
  }

  /** The command outbox; its table exists only once the device is provisioned. */
  get commands(): CommandOutbox {
    this.commandStore ??= new CommandOutbox(this.sql);
    return this.commandStore;
  }

  async authenticate(secret: string): Promise<TwinProfile | undefined> {
    const profile = this.s.profile;
    return profile && (await secretMatches(secret, profile.token_hash)) ? profile : undefined;
  }

  authenticateHash(hash: string): TwinProfile | undefined {
    const profile = this.s.profile;
    if (!profile) return undefined;
    const presented = new TextEncoder().encode(hash);
    const stored = new TextEncoder().encode(profile.token_hash);
    return presented.byteLength === stored.byteLength && crypto.subtle.timingSafeEqual(presented, stored) ? profile : undefined;
  }

  /** The device's LAN agent, connected over its WebSocket (durable-objects/agent-link.ts), fetches at once. */
  wakeAgent(reason: "commands" | "desired"): void {
    const profile = this.s.profile;
    if (!profile?.agent) return;
    this.ctx.waitUntil(
      agentLinkStub(this.env, profile.agent)
        .wake(profile.id, reason)
        .catch(() => undefined),
    );
  }

  /** Every device call costs from the same bucket as its messages, so none of them is free to flood. */
  async authenticateCall(secret: string): Promise<{ ok: true; profile: TwinProfile } | Failure> {
    const profile = await this.authenticate(secret);
    if (!profile) return unauthorized;
    this.bucket ??= new TokenBucket(profile.rate.per_second, profile.rate.burst);
    const rate = this.bucket.take(1);
    if (!rate.ok)
      return {
        ok: false,
        code: "rate_limited",
        message: `over ${profile.rate.per_second} calls/s`,
        retryAfterSeconds: rate.retryAfterSeconds,
      };
    return { ok: true, profile };
  }

  /** Writes the lazily kept state now if the last snapshot is old enough, else within SNAPSHOT_MS. */
  persistSoon(now: number): void {
    if (!this.s.profile || !this.s.dirty) return;
    if (now - this.s.snapshotAt >= SNAPSHOT_MS) {
      this.snapshot(now);
      return;
    }
    this.snapshotTimer ??= setTimeout(
      () => {
        this.snapshotTimer = undefined;
        this.snapshot(Date.now());
      },
      this.s.snapshotAt + SNAPSHOT_MS - now,
    );
  }

  snapshot(now: number, upTo?: number): void {
    if (!this.s.profile || !this.outboxRows) return;
    const seq = upTo ?? this.outboxRows.lastSeq;
    this.s.snapshot({ seq, sent: Math.min(seq, this.outboxRows.sentUpTo) }, now);
  }

  /**
   * Changed readings to the live view: one call, to the room's live hub, which also keeps the
   * room's aggregates up to date (live-hub.ts hands them to the room actor in batches).
   */
  announceReadings(update: Record<string, ReportedReading>, routingKey: string | undefined): void {
    const profile = this.s.profile;
    if (!profile) return;
    this.announce(
      [{ stream: "twin", device: profile.id, routing_key: routingKey, at: new Date().toISOString(), data: { readings: update } }],
      update,
    );
  }

  /**
   * Tells the room's live hub, without holding up the caller; dashboards resync on reconnect.
   * Throttled (announce.ts): at most one hub call per HUB_GAP_MS, however many messages.
   */
  announce(updates: HubUpdate[], readings?: Record<string, ReportedReading>): void {
    const profile = this.s.profile;
    if (!profile || updates.length === 0) return;
    this.hub.add(profile.room, profile.id, updates, readings);
  }

  announceCommands(commands: Command[]): void {
    const at = new Date().toISOString();
    const device = this.s.profile?.id;
    this.announce(
      commands.map((c) => ({
        stream: "command" as const,
        device,
        at,
        data: { id: c.id, command: c.command, status: c.status, correlation_id: c.correlation_id },
      })),
    );
  }

  /** Heard from the device: last-seen is kept lazily (state.ts); a change of availability is written at once. */
  async heard(now: number, reason: string): Promise<void> {
    if (this.s.lastSeen !== now) {
      this.s.lastSeen = now;
      this.s.dirty = true;
      this.persistSoon(now);
    }
    // The registry's last_seen (device lists) trails this by under 50 s: one D1 write per device per 50 s at most.
    const registryBehind = now - this.registrySeen >= REGISTRY_SEEN_EVERY_MS;
    if (registryBehind || this.s.availability.status !== "online") this.registrySeen = now;
    if (this.s.availability.status !== "online") await this.transition("online", reason, now);
    else if (registryBehind) this.updateRegistry("last_seen", new Date(now).toISOString());
    await this.schedule();
  }

  /** One column of the registry's row, after the answer; a failure only leaves the copy behind a while longer. */
  updateRegistry(column: "last_seen" | "last_rejected_at", value: string): void {
    const id = this.s.profile?.id;
    if (!id) return;
    this.ctx.waitUntil(
      this.env.DB.prepare(`UPDATE devices SET ${column} = ? WHERE id = ?`)
        .bind(value, id)
        .run()
        .catch((error: unknown) => log("warn", "registry not updated", { device: id, column, error: String(error) })),
    );
  }

  async transition(status: Availability, reason: string, now: number): Promise<void> {
    const s = this.s;
    const profile = s.profile;
    const previous = s.availability;
    if (!profile || previous.status === status) return;
    const at = new Date(now).toISOString();
    // Computed before any state is written: no await may separate the state from its event.
    const id = await derivedId(profile.id, "availability", at, status);
    if (s.availability.status === status) return;
    s.availability = { status, since: at, reason };
    s.set("availability", s.availability);
    // Last-seen goes with it: the event and the state it reports agree after a restart.
    this.snapshot(now);
    this.announce([{ stream: "availability", device: profile.id, at, data: { status, previous: previous.status, reason } }]);
    this.enqueue(stateChangedMessage(profile, id, at, previous.status, s.availability));
    // The registry's copy serves "devices by availability" queries; it may lag by a moment.
    this.ctx.waitUntil(
      this.env.DB.prepare("UPDATE devices SET availability = ?, last_seen = ? WHERE id = ?")
        .bind(status, s.lastSeen === null ? null : new Date(s.lastSeen).toISOString(), profile.id)
        .run()
        .catch((error: unknown) => log("warn", "registry availability not updated", { device: profile.id, error: String(error) })),
    );
  }

  /** The twin's own event (availability, command result) into the outbox, as a row of its own (the ring grows rather than refuse it). */
  enqueue(message: Envelope): void {
    this.outbox.append(this.outbox.nextSeq(Date.now()), { m: [message], r: [routeOf(message)] }, true);
  }

  enqueueResult(profile: TwinProfile, command: Command, id: string, now: number, outcome: CommandOutcome): void {
    this.enqueue(resultMessage(profile, command, id, now, outcome));
  }

  // ── Alarms ──────────────────────────────────────────────────────────────────────────────

  /** Sets the alarm for the earliest of: the next availability change, a command expiry, the outbox's safety net. */
  async schedule(): Promise<void> {
    const profile = this.s.profile;
    if (!profile) return;
    const now = Date.now();
    const at = nextAlarmAt(readConfig(this.env), profile, this.s, this.commands.nextExpiry(), this.outbox.hasPending, now);
    if (at === undefined) return;
    if (this.alarmAt === undefined) this.alarmAt = await this.ctx.storage.getAlarm();
    const current = this.alarmAt;
    if (current === null || current > at || current < now) {
      this.alarmAt = at;
      await this.ctx.storage.setAlarm(at);
    }
  }

  // ── Housekeeping ────────────────────────────────────────────────────────────────────────

  recordErrors(rejected: Rejection[], keep: number): void {
    const at = new Date().toISOString();
    this.ctx.storage.sql.exec(
      `INSERT INTO errors (at, idx, message_id, code, issues)
       SELECT ?, value ->> 'index', value ->> 'id', value ->> 'code', value ->> 'issues' FROM json_each(?)`,
      at,
      JSON.stringify(rejected.map((r) => ({ index: r.index, id: r.id ?? null, code: r.code, issues: JSON.stringify(r.issues) }))),
    );
    this.ctx.storage.sql.exec("DELETE FROM errors WHERE seq <= (SELECT MAX(seq) FROM errors) - ?", keep);
    // The registry's last_rejected_at (the dashboard's "rejecting messages"): at most one D1 write per device per minute.
    const now = Date.now();
    if (now - this.registryRejected >= REGISTRY_REJECTED_EVERY_MS) {
      this.registryRejected = now;
      this.updateRegistry("last_rejected_at", at);
    }
  }

  prune(now: number, dedupeWindowMs: number): void {
    if (now - this.lastPrune < PRUNE_EVERY_MS) return;
    this.lastPrune = now;
    // The ring's rows are reused, never deleted; the id blocks go once the dedupe window is past.
    this.outbox.prune(now - dedupeWindowMs);
    this.seen.prune(now - dedupeWindowMs);
  }
}
