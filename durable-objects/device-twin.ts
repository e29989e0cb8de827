/**
 * DeviceTwin: one Durable Object per device (and per service principal) — its actor and its
 * twin, in one strongly consistent place (seed 002).
 *
 * On the ingest path it is the only hop: it verifies the credential's hash, enforces the
 * device's rate and publish permissions, catches duplicate message ids, records rejected
 * messages, publishes what it accepted through the exchanges (answering only once those are
 * safe in their queues), then merges the readings into the reported state, keeps recent
 * readings, marks the device online, and tells its room.
 *
 * It also holds the desired state (versioned, for optimistic concurrency), availability (run by
 * alarms), and the durable command outbox.
 */
import { DurableObject } from "cloudflare:workers";
import { publish } from "../queues/exchange";
import { recordSteps } from "../queues/history";
import { findExchange } from "../queues/topology";
import { availabilityTimeouts, readConfig } from "../shared/config";
import { secretMatches } from "../shared/credentials";
import { buildEnvelope } from "../shared/envelope";
import type { ErrorCode, Issue } from "../shared/error-codes";
import { derivedId, newMessageId } from "../shared/ids";
import { mayPublish } from "../shared/permissions";
import type { HubUpdate } from "../shared/schemas/live";
import { Envelope, type MessageType, SCHEMA_VERSION } from "../shared/schemas/message";
import type { CommandRequest, DocumentPatch } from "../shared/schemas/twin";
import { type Availability, type AvailabilityState, nextTransitionAt, statusBySilence } from "./availability";
import { type Command, CommandOutbox } from "./command-outbox";
import { hubName, hubStub } from "./live-hub";
import { roomStub } from "./room";
import { TokenBucket } from "./token-bucket";
import {
  computeDelta,
  documentProblem,
  type Json,
  type JsonObject,
  mergeDocument,
  mergeReadings,
  type ReportedReading,
} from "./twin-document";

/** What the registry tells a twin about its device. */
export interface TwinProfile {
  id: string;
  kind: "device" | "service";
  type: string;
  class: "mains" | "battery";
  room: string | null;
  publish: string[];
  rate: { per_second: number; burst: number };
  token_hash: string;
  /** The LAN agent that carries this device (registry `metadata.agent`): told of its commands and desired changes. */
  agent?: string | null;
}

export interface Rejection {
  index: number;
  id?: string;
  code: ErrorCode;
  issues: Issue[];
}

export interface IngestRequest {
  /** The device's secret, or null when the caller authenticated on its behalf (the LAN agent route). */
  secret: string | null;
  /**
   * Instead of the secret: the SHA-256 of the secret it was given, for an MQTT will published
   * after its connection ended (the session never stores a secret). A rotated token no longer matches.
   */
  credentialHash?: string;
  /** Every message of the request in order; positions named in `preRejected` hold null. */
  items: unknown[];
  /** Items the Worker could not even parse (NDJSON lines), rejected in the same answer. */
  preRejected: Rejection[];
  defaultType: MessageType;
  allowedTypes: MessageType[];
  exchange?: string;
  transport: "https" | "mqtt" | "agent";
}

export type Failure = { ok: false; code: ErrorCode; message: string; retryAfterSeconds?: number; issues?: Issue[] };

export type IngestOutcome =
  | {
      ok: true;
      accepted: number;
      duplicates: number;
      rejected: Rejection[];
      /** Per input position: the message id, or null when the message was rejected. */
      ids: (string | null)[];
      routed: Record<string, string[]>;
    }
  | Failure;

export type { StoredError, TwinView } from "../shared/api-types";

import type { Counters, StoredError, TwinView } from "../shared/api-types";
import { log } from "../shared/log";
import { flushMetrics, metrics } from "../shared/metrics";

export interface RecentReading {
  at: string;
  metric: string;
  value: number | boolean;
  unit: string | null;
  message_id: string;
}

const SCHEMA = `
  CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
  CREATE TABLE IF NOT EXISTS seen (id TEXT PRIMARY KEY, at INTEGER NOT NULL);
  CREATE INDEX IF NOT EXISTS seen_at ON seen (at);
  CREATE TABLE IF NOT EXISTS errors (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL, idx INTEGER NOT NULL,
    message_id TEXT, code TEXT NOT NULL, issues TEXT NOT NULL);
  CREATE TABLE IF NOT EXISTS recent (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, at INTEGER NOT NULL, metric TEXT NOT NULL,
    value REAL NOT NULL, is_bool INTEGER NOT NULL, unit TEXT, message_id TEXT NOT NULL);
  CREATE INDEX IF NOT EXISTS recent_metric_at ON recent (metric, at);
  CREATE TABLE IF NOT EXISTS outbound (id TEXT PRIMARY KEY, body TEXT NOT NULL, created INTEGER NOT NULL);
`;

const PRUNE_EVERY_MS = 10 * 60 * 1000;
const OUTBOUND_RETRY_MS = 5_000;
const MAX_WAIT_MS = 30_000;
/** Long polls held open at once per device; more just answer at once. */
const MAX_POLLERS = 8;

/**
 * The twin as callers see it over RPC. Its methods take and return plain data, which RPC
 * copies unchanged, so the class's own signatures are the honest types (the generated stub
 * types give up on recursive JSON documents).
 */
export type TwinApi = Pick<
  DeviceTwin,
  | "provision"
  | "configure"
  | "setCredential"
  | "deprovision"
  | "profile"
  | "ingest"
  | "recordRejection"
  | "errors"
  | "recent"
  | "twin"
  | "patchDesired"
  | "reportState"
  | "presence"
  | "signalPresence"
  | "enqueueCommand"
  | "awaitCommand"
  | "command"
  | "commands"
  | "pollCommands"
  | "takeCommands"
  | "completeCommand"
  | "checkSecret"
>;

export function twinStub(env: Env, deviceId: string): TwinApi {
  return env.DEVICE_TWIN.getByName(deviceId) as unknown as TwinApi;
}

const unauthorized: Failure = { ok: false, code: "unauthorized", message: "the device token is not valid" };

export class DeviceTwin extends DurableObject<Env> {
  #profile: TwinProfile | undefined;
  #bucket: TokenBucket | undefined;
  /**
   * Ids being published right now, with whether that publish succeeded. A concurrent request with
   * the same id waits for the outcome instead of calling it a duplicate of something that may
   * still fail: a 202 must only ever stand for a message that is in its queues.
   */
  #inFlight = new Map<string, Promise<boolean>>();
  #lastPrune = 0;
  #flushing = false;
  #readings: Record<string, ReportedReading> = {};
  #state: JsonObject = {};
  #desired: JsonObject = {};
  #version = 0;
  #lastSeen: number | null = null;
  #availability: AvailabilityState;
  #counters: Counters = { accepted: 0, duplicates: 0, rejected: 0 };
  #outboxStore: CommandOutbox | undefined;
  #commandWaiters = new Map<string, Set<(command: Command) => void>>();
  #pollWaiters = new Set<() => void>();

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.#availability = { status: "offline", since: new Date(0).toISOString(), reason: "never_seen" };
    // Tables are created when the registry provisions the device, never for an id someone merely
    // guessed in a token. SQLite calls are synchronous, so state loads before any call runs.
    const provisioned = ctx.storage.sql.exec("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'").toArray().length > 0;
    if (!provisioned) return;
    ctx.storage.sql.exec(SCHEMA);
    this.#profile = this.#meta<TwinProfile>("profile");
    this.#readings = this.#meta("readings") ?? {};
    this.#state = this.#meta("state") ?? {};
    this.#desired = this.#meta("desired") ?? {};
    this.#version = this.#meta("version") ?? 0;
    this.#lastSeen = this.#meta("last_seen") ?? null;
    this.#availability = this.#meta("availability") ?? this.#availability;
    this.#counters = this.#meta("counters") ?? this.#counters;
  }

  /** The command outbox; its table exists only once the device is provisioned. */
  get #outbox(): CommandOutbox {
    this.#outboxStore ??= new CommandOutbox(this.ctx.storage.sql);
    return this.#outboxStore;
  }

  #meta<T>(key: string): T | undefined {
    const row = this.ctx.storage.sql.exec<{ value: string }>("SELECT value FROM meta WHERE key = ?", key).toArray()[0];
    return row ? (JSON.parse(row.value) as T) : undefined;
  }

  #setMeta(key: string, value: unknown): void {
    this.ctx.storage.sql.exec("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", key, JSON.stringify(value));
  }

  async #authenticate(secret: string): Promise<TwinProfile | undefined> {
    const profile = this.#profile;
    return profile && (await secretMatches(secret, profile.token_hash)) ? profile : undefined;
  }

  #authenticateHash(hash: string): TwinProfile | undefined {
    const profile = this.#profile;
    if (!profile) return undefined;
    const presented = new TextEncoder().encode(hash);
    const stored = new TextEncoder().encode(profile.token_hash);
    return presented.byteLength === stored.byteLength && crypto.subtle.timingSafeEqual(presented, stored) ? profile : undefined;
  }

  /** The device's LAN agent, connected over its WebSocket (durable-objects/agent-link.ts), fetches at once. */
  #wakeAgent(reason: "commands" | "desired"): void {
    const agent = this.#profile?.agent;
    if (!agent || !this.#profile) return;
    const device = this.#profile.id;
    this.ctx.waitUntil(
      this.env.AGENT_LINK.getByName(agent)
        .wake(device, reason)
        .catch(() => undefined),
    );
  }

  /** Every device call costs from the same bucket as its messages, so none of them is free to flood. */
  async #authenticateCall(secret: string): Promise<{ ok: true; profile: TwinProfile } | Failure> {
    const profile = await this.#authenticate(secret);
    if (!profile) return unauthorized;
    this.#bucket ??= new TokenBucket(profile.rate.per_second, profile.rate.burst);
    const rate = this.#bucket.take(1);
    if (!rate.ok)
      return {
        ok: false,
        code: "rate_limited",
        message: `over ${profile.rate.per_second} calls/s`,
        retryAfterSeconds: rate.retryAfterSeconds,
      };
    return { ok: true, profile };
  }

  // ── Registry ────────────────────────────────────────────────────────────────────────────

  /** Creates the device's twin with its profile and credential hash (registry → twin). */
  async provision(profile: TwinProfile): Promise<void> {
    const first = this.#profile === undefined;
    if (first) this.ctx.storage.sql.exec(SCHEMA);
    this.#profile = profile;
    this.#setMeta("profile", profile);
    if (first) {
      this.#availability = { status: "offline", since: new Date().toISOString(), reason: "never_seen" };
      this.#setMeta("availability", this.#availability);
    }
    this.#bucket?.reconfigure(profile.rate.per_second, profile.rate.burst);
    await this.#schedule();
  }

  /**
   * Changes the profile but never the credential: a PATCH racing a rotation must not write an
   * old hash back (rotation has its own call).
   */
  async configure(profile: Omit<TwinProfile, "token_hash">): Promise<boolean> {
    const current = this.#profile;
    if (!current) return false;
    this.#profile = { ...profile, token_hash: current.token_hash };
    this.#setMeta("profile", this.#profile);
    this.#bucket?.reconfigure(profile.rate.per_second, profile.rate.burst);
    return true;
  }

  /** A new credential hash: from this call on, only the new token works. */
  async setCredential(tokenHash: string): Promise<boolean> {
    const current = this.#profile;
    if (!current) return false;
    this.#profile = { ...current, token_hash: tokenHash };
    this.#setMeta("profile", this.#profile);
    return true;
  }

  /** Forgets everything about the device: its credential stops working at once. */
  async deprovision(): Promise<void> {
    await this.ctx.storage.deleteAlarm();
    await this.ctx.storage.deleteAll();
    // Nothing of the old device may outlive it in memory either (a new device may take the id).
    this.#profile = undefined;
    this.#bucket = undefined;
    this.#readings = {};
    this.#state = {};
    this.#desired = {};
    this.#version = 0;
    this.#lastSeen = null;
    this.#availability = { status: "offline", since: new Date(0).toISOString(), reason: "never_seen" };
    this.#counters = { accepted: 0, duplicates: 0, rejected: 0 };
    this.#lastPrune = 0;
    this.#outboxStore = undefined;
    for (const wake of this.#pollWaiters) wake();
    this.#pollWaiters.clear();
    this.#commandWaiters.clear();
  }

  async profile(): Promise<TwinProfile | undefined> {
    return this.#profile;
  }

  /** Whether a secret is the device's current one (the MQTT gateway's CONNECT). */
  async checkSecret(secret: string): Promise<boolean> {
    return (await this.#authenticate(secret)) !== undefined;
  }

  // ── Ingest ──────────────────────────────────────────────────────────────────────────────

  async ingest(request: IngestRequest): Promise<IngestOutcome> {
    const profile =
      request.credentialHash !== undefined
        ? this.#authenticateHash(request.credentialHash)
        : request.secret === null
          ? this.#profile
          : await this.#authenticate(request.secret);
    if (!profile) return unauthorized;
    const config = readConfig(this.env);
    const now = Date.now();

    this.#bucket ??= new TokenBucket(profile.rate.per_second, profile.rate.burst, now);
    const count = request.items.length;
    if (count > profile.rate.burst) {
      // Waiting would never help: the bucket never holds more than the burst.
      return {
        ok: false,
        code: "batch_too_large",
        message: `${count} messages in one request; this device's burst is ${profile.rate.burst}: send smaller batches`,
      };
    }
    const rate = this.#bucket.take(count, now);
    if (!rate.ok) {
      return {
        ok: false,
        code: "rate_limited",
        message: `over ${profile.rate.per_second} messages/s (burst ${profile.rate.burst})`,
        retryAfterSeconds: rate.retryAfterSeconds,
      };
    }

    const rejected: Rejection[] = [...request.preRejected];
    const ids: (string | null)[] = new Array(count).fill(null);
    const accepted: Envelope[] = [];
    let duplicates = 0;
    const batchIds = new Set<string>();
    const preRejectedAt = new Set(request.preRejected.map((r) => r.index));
    const limits = { maxFutureSkewMs: config.MAX_FUTURE_SKEW_SECONDS * 1000, maxAgeMs: config.MAX_MESSAGE_AGE_DAYS * 86_400_000 };

    const candidates: Envelope[] = [];
    for (let index = 0; index < count; index++) {
      if (preRejectedAt.has(index)) continue;
      const item = request.items[index];
      const size = utf8Length(JSON.stringify(item) ?? "");
      if (size > config.MAX_MESSAGE_BYTES) {
        rejected.push({
          index,
          code: "message_too_large",
          issues: [{ path: "", message: `${size} bytes; the limit is ${config.MAX_MESSAGE_BYTES}` }],
        });
        continue;
      }
      const built = buildEnvelope(item, {
        principal: { id: profile.id, type: profile.type, room: profile.room, class: profile.class },
        defaultType: request.defaultType,
        allowedTypes: request.allowedTypes,
        exchange: request.exchange,
        now,
        limits,
        metadata: { transport: request.transport },
      });
      if (!built.ok) {
        rejected.push({ index, id: idOf(item), code: built.code, issues: built.issues });
        continue;
      }
      const message = built.envelope;
      if (!findExchange(message.exchange)) {
        rejected.push({
          index,
          id: message.id,
          code: "unknown_exchange",
          issues: [{ path: "exchange", message: `no exchange named "${message.exchange}"` }],
        });
        continue;
      }
      if (!mayPublish(profile.publish, message.exchange, message.routing_key)) {
        rejected.push({
          index,
          id: message.id,
          code: "forbidden",
          issues: [{ path: "routing_key", message: `"${profile.id}" may not publish ${message.exchange}:${message.routing_key}` }],
        });
        continue;
      }
      ids[index] = message.id;
      candidates.push(message);
    }

    // Ids another request is publishing right now: wait for how that ends first.
    for (;;) {
      const pending = candidates.flatMap((m) => this.#inFlight.get(m.id) ?? []);
      if (pending.length === 0) break;
      await Promise.all(pending);
    }
    // One query for the whole batch: the per-message lookups were the ingest path's main cost.
    const seen = this.#seenAmong(candidates.map((m) => m.id));
    for (const message of candidates) {
      if (batchIds.has(message.id) || seen.has(message.id)) {
        duplicates++;
        continue;
      }
      batchIds.add(message.id);
      accepted.push(message);
    }

    let routed: Record<string, string[]> = {};
    if (accepted.length > 0) {
      let settle: (published: boolean) => void = () => {};
      const outcome = new Promise<boolean>((resolve) => {
        settle = resolve;
      });
      for (const id of batchIds) this.#inFlight.set(id, outcome);
      let published = false;
      try {
        routed = Object.fromEntries((await publish(this.env, accepted)).map((r) => [r.id, r.queues]));
        this.ctx.storage.sql.exec(
          "INSERT OR IGNORE INTO seen (id, at) SELECT value, ? FROM json_each(?)",
          Date.now(),
          JSON.stringify([...batchIds]),
        );
        published = true;
      } catch (error) {
        log("error", "publish failed", { device: profile.id, message_ids: [...batchIds], error: String(error) });
        return { ok: false, code: "unavailable", message: "the message queues could not take the messages; retry", retryAfterSeconds: 5 };
      } finally {
        for (const id of batchIds) this.#inFlight.delete(id);
        settle(published);
      }
    }

    if (accepted.length > 0) {
      for (const message of accepted) {
        const queues = routed[message.id] ?? [];
        for (const queue of queues) metrics.inc("edgemesh_routed_messages_total", { queue });
        log("info", "routed", { correlation_id: message.correlation_id, message_id: message.id, device: profile.id, queues });
      }
      // Seed 002's message repository: accepted, and routed where; after the answer, never before it.
      this.ctx.waitUntil(
        recordSteps(
          this.env,
          accepted.map((message) => ({
            message,
            queue: "(edge)",
            step: "accepted" as const,
            detail: `routed to ${(routed[message.id] ?? []).join(", ")}`,
          })),
        ),
      );
    }
    this.#counters.accepted += accepted.length;
    this.#counters.duplicates += duplicates;
    this.#counters.rejected += rejected.length;
    this.#setMeta("counters", this.#counters);
    // Counted here, where every transport (HTTPS, MQTT, the agent) arrives.
    const transport = request.transport;
    metrics.inc("edgemesh_ingest_messages_total", { transport, outcome: "accepted" }, accepted.length);
    metrics.inc("edgemesh_ingest_messages_total", { transport, outcome: "duplicate" }, duplicates);
    metrics.inc("edgemesh_ingest_messages_total", { transport, outcome: "rejected" }, rejected.length);
    for (const r of rejected) metrics.inc("edgemesh_ingest_rejections_total", { code: r.code });
    this.ctx.waitUntil(flushMetrics(this.env.DB, config.METRICS_FLUSH_SECONDS));
    if (rejected.length > 0) this.#recordErrors(rejected, config.DEVICE_ERRORS_KEPT);
    if (accepted.length > 0 || duplicates > 0) {
      this.#absorb(accepted, config.RECENT_READINGS_KEPT);
      await this.#heard(now, "message");
    }
    this.#prune(now, config.DEDUPE_WINDOW_HOURS * 3_600_000, config.RECENT_READINGS_MINUTES * 60_000);
    rejected.sort((a, b) => a.index - b.index);
    return { ok: true, accepted: accepted.length, duplicates, rejected, ids, routed };
  }

  /** Records a request the Worker rejected whole (bad JSON, too large), if the secret is right. */
  async recordRejection(secret: string, rejection: Rejection): Promise<boolean> {
    const call = await this.#authenticateCall(secret);
    if (!call.ok) return call.code !== "unauthorized";
    this.#counters.rejected++;
    this.#setMeta("counters", this.#counters);
    this.#recordErrors([rejection], readConfig(this.env).DEVICE_ERRORS_KEPT);
    return true;
  }

  /** The device's most recent rejected messages, newest first (seed 003: errors are recorded). */
  async errors(limit = 50): Promise<StoredError[]> {
    if (!this.#profile) return [];
    return this.ctx.storage.sql
      .exec<{ at: string; idx: number; message_id: string | null; code: string; issues: string }>(
        "SELECT at, idx, message_id, code, issues FROM errors ORDER BY seq DESC LIMIT ?",
        Math.max(1, Math.min(limit, 1000)),
      )
      .toArray()
      .map((r) => ({ at: r.at, index: r.idx, message_id: r.message_id, code: r.code, issues: JSON.parse(r.issues) as Issue[] }));
  }

  /** Merges accepted readings into the reported state and the recent ring, and tells the room. */
  #absorb(messages: Envelope[], keep: number): void {
    const incoming: Record<string, ReportedReading> = {};
    const rows: [number, string, number, number, string | null, string][] = [];
    for (const message of messages) {
      if (message.type !== "telemetry" && message.type !== "metric") continue;
      for (const [metric, reading] of Object.entries(message.payload)) {
        const value = typeof reading === "object" ? reading.value : reading;
        const unit = typeof reading === "object" ? reading.unit : undefined;
        const at = message.timestamp;
        const previous = Object.hasOwn(incoming, metric) ? incoming[metric] : undefined;
        if (!previous || Date.parse(previous.at) <= Date.parse(at))
          incoming[metric] = unit === undefined ? { value, at } : { value, unit, at };
        rows.push([Date.parse(at), metric, Number(value), typeof value === "boolean" ? 1 : 0, unit ?? null, message.id]);
      }
    }
    if (rows.length > 0) {
      this.ctx.storage.sql.exec(
        `INSERT INTO recent (at, metric, value, is_bool, unit, message_id)
         SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4, value ->> 5 FROM json_each(?)`,
        JSON.stringify(rows),
      );
    }
    const changed = mergeReadings(this.#readings, incoming);
    if (changed.length === 0) return;
    this.#setMeta("readings", this.#readings);
    this.ctx.storage.sql.exec("DELETE FROM recent WHERE seq <= (SELECT MAX(seq) FROM recent) - ?", keep);
    const update = Object.fromEntries(changed.map((name) => [name, this.#readings[name] as ReportedReading]));
    const room = this.#profile?.room;
    const id = this.#profile?.id ?? "";
    if (room) {
      // The room's aggregates are a live view: they never hold up the device's answer.
      this.ctx.waitUntil(
        roomStub(this.env, room)
          .report(id, update)
          .catch((error: unknown) =>
            console.warn(JSON.stringify({ level: "warn", msg: "room update failed", room, device: id, error: String(error) })),
          ),
      );
    }
    const latest = messages.at(-1);
    this.#announce({
      stream: "twin",
      device: id,
      routing_key: latest?.routing_key,
      at: new Date().toISOString(),
      data: { readings: update },
    });
  }

  /** Tells the room's live hub, without holding up the caller; dashboards resync on reconnect. */
  #announce(...updates: HubUpdate[]): void {
    const profile = this.#profile;
    if (!profile || updates.length === 0) return;
    const name = hubName(profile.room);
    this.ctx.waitUntil(
      hubStub(this.env, name)
        .publish(updates)
        .catch((error: unknown) =>
          console.warn(
            JSON.stringify({ level: "warn", msg: "live hub update failed", hub: name, device: profile.id, error: String(error) }),
          ),
        ),
    );
  }

  #announceCommands(commands: Command[]): void {
    const at = new Date().toISOString();
    const device = this.#profile?.id;
    this.#announce(
      ...commands.map((c) => ({
        stream: "command" as const,
        device,
        at,
        data: { id: c.id, command: c.command, status: c.status, correlation_id: c.correlation_id },
      })),
    );
  }

  async recent(options: { metric?: string; sinceMs?: number; limit?: number } = {}): Promise<RecentReading[]> {
    if (!this.#profile) return [];
    const since = options.sinceMs ?? Date.now() - 3_600_000;
    const limit = Math.max(1, Math.min(options.limit ?? 1000, 10_000));
    const rows = options.metric
      ? this.ctx.storage.sql.exec<RecentRow>(
          "SELECT * FROM recent WHERE metric = ? AND at >= ? ORDER BY at, seq LIMIT ?",
          options.metric,
          since,
          limit,
        )
      : this.ctx.storage.sql.exec<RecentRow>("SELECT * FROM recent WHERE at >= ? ORDER BY at, seq LIMIT ?", since, limit);
    return rows.toArray().map((r) => ({
      at: new Date(r.at).toISOString(),
      metric: r.metric,
      value: r.is_bool ? r.value !== 0 : r.value,
      unit: r.unit,
      message_id: r.message_id,
    }));
  }

  // ── Twin documents ──────────────────────────────────────────────────────────────────────

  async twin(): Promise<TwinView | undefined> {
    const profile = this.#profile;
    if (!profile) return undefined;
    const view: JsonObject = { ...this.#state };
    for (const [name, reading] of Object.entries(this.#readings)) view[name] = reading.value;
    return {
      device: profile.id,
      version: this.#version,
      last_seen: this.#lastSeen === null ? null : new Date(this.#lastSeen).toISOString(),
      availability: this.#availability,
      reported: { readings: this.#readings, state: this.#state },
      desired: this.#desired,
      delta: computeDelta(this.#desired, view),
      counters: this.#counters,
    };
  }

  /**
   * Merges a patch into the desired state. With `ifMatch`, only when the version is still that
   * one (optimistic concurrency); the version counts changes of the desired state.
   */
  async patchDesired(patch: DocumentPatch, ifMatch?: number): Promise<{ ok: true; twin: TwinView } | Failure> {
    if (!this.#profile) return { ok: false, code: "not_found", message: "no such device" };
    if (ifMatch !== undefined && ifMatch !== this.#version) {
      return { ok: false, code: "precondition_failed", message: `the twin is at version ${this.#version}, not ${ifMatch}` };
    }
    const next = mergeDocument(this.#desired, patch as JsonObject);
    const problem = documentProblem(next);
    if (problem) return { ok: false, code: "invalid_payload", message: problem, issues: [{ path: "desired", message: problem }] };
    this.#desired = next;
    this.#version++;
    this.#setMeta("desired", this.#desired);
    this.#setMeta("version", this.#version);
    // A long poll (the LAN agent's) returns at once to carry the new desired state.
    for (const wake of this.#pollWaiters) wake();
    this.#pollWaiters.clear();
    this.#wakeAgent("desired");
    // A device subscribed over MQTT to its desired state hears of the change at once.
    this.ctx.waitUntil(
      this.env.MQTT_SESSION.getByName(this.#profile.id)
        .desiredChanged()
        .catch(() => undefined),
    );
    return { ok: true, twin: (await this.twin()) as TwinView };
  }

  /** A device reports state that is not a reading (its configuration, firmware, schedule). */
  async reportState(secret: string, patch: DocumentPatch): Promise<{ ok: true; twin: TwinView } | Failure> {
    const call = await this.#authenticateCall(secret);
    if (!call.ok) return call;
    const next = mergeDocument(this.#state, patch as JsonObject);
    const problem = documentProblem(next);
    if (problem) return { ok: false, code: "invalid_payload", message: problem, issues: [{ path: "reported", message: problem }] };
    this.#state = next;
    this.#setMeta("state", this.#state);
    await this.#heard(Date.now(), "report");
    return { ok: true, twin: (await this.twin()) as TwinView };
  }

  // ── Availability ────────────────────────────────────────────────────────────────────────

  /** Explicit presence: a connect, a disconnect, or a last will reported by a gateway or agent. */
  async presence(
    secret: string,
    status: "online" | "offline",
    reason: string,
  ): Promise<{ ok: true; availability: AvailabilityState } | Failure> {
    const call = await this.#authenticateCall(secret);
    if (!call.ok) return call;
    await this.signalPresence(status, reason);
    return { ok: true, availability: this.#availability };
  }

  /** The same, for callers inside the edge that authenticated the device already (MQTT gateway). */
  async signalPresence(status: "online" | "offline", reason: string): Promise<void> {
    const now = Date.now();
    if (status === "online") await this.#heard(now, reason);
    else {
      await this.#transition("offline", reason, now);
      await this.#schedule();
    }
  }

  /** When the registry's last_seen was last written (memory only: a restarted twin writes it once more). */
  #registrySeen = 0;
  /** The same for the registry's last_rejected_at. */
  #registryRejected = 0;

  async #heard(now: number, reason: string): Promise<void> {
    this.#lastSeen = now;
    this.#setMeta("last_seen", now);
    // The registry's last_seen (device lists) trails this by under 50 s: one D1 write per device per 50 s at most.
    const registryBehind = now - this.#registrySeen >= 50_000;
    if (registryBehind || this.#availability.status !== "online") this.#registrySeen = now;
    if (this.#availability.status !== "online") await this.#transition("online", reason, now);
    else if (registryBehind)
      this.ctx.waitUntil(
        this.env.DB.prepare("UPDATE devices SET last_seen = ? WHERE id = ?")
          .bind(new Date(now).toISOString(), this.#profile?.id ?? "")
          .run()
          .catch(() => undefined),
      );
    await this.#schedule();
  }

  async #transition(status: Availability, reason: string, now: number): Promise<void> {
    const profile = this.#profile;
    const previous = this.#availability;
    if (!profile || previous.status === status) return;
    const at = new Date(now).toISOString();
    // Computed before any state is written: no await may separate the state from its event.
    const id = await derivedId(profile.id, "availability", at, status);
    this.#availability = { status, since: at, reason };
    this.#setMeta("availability", this.#availability);
    this.#announce({
      stream: "availability",
      device: profile.id,
      at: this.#availability.since,
      data: { status, previous: previous.status, reason },
    });
    const room = profile.room ?? "unassigned";
    this.#enqueueOutbound({
      id,
      correlation_id: id,
      source: profile.id,
      type: "event",
      exchange: "home.events",
      routing_key: `home.${room}.${profile.id}.state_changed`,
      timestamp: at,
      received_at: at,
      payload: { event_type: "state_changed", previous_state: previous.status, current_state: status, reason },
      metadata: { origin: "twin" },
      schema_version: SCHEMA_VERSION,
    });
    // The registry's copy serves "devices by availability" queries; it may lag by a moment.
    this.ctx.waitUntil(
      this.env.DB.prepare("UPDATE devices SET availability = ?, last_seen = ? WHERE id = ?")
        .bind(status, this.#lastSeen === null ? null : new Date(this.#lastSeen).toISOString(), profile.id)
        .run()
        .catch((error: unknown) =>
          console.warn(
            JSON.stringify({ level: "warn", msg: "registry availability not updated", device: profile.id, error: String(error) }),
          ),
        ),
    );
    await this.#flushOutbound();
  }

  // ── Outbound events (at least once) ─────────────────────────────────────────────────────

  #enqueueOutbound(message: Envelope): void {
    this.ctx.storage.sql.exec(
      "INSERT OR IGNORE INTO outbound (id, body, created) VALUES (?, ?, ?)",
      message.id,
      JSON.stringify(message),
      Date.now(),
    );
  }

  async #flushOutbound(): Promise<void> {
    // One flush at a time: an alarm and a request could otherwise publish the same rows twice.
    if (this.#flushing) return;
    this.#flushing = true;
    try {
      const rows = this.ctx.storage.sql
        .exec<{ id: string; body: string }>("SELECT id, body FROM outbound ORDER BY created LIMIT 100")
        .toArray();
      if (rows.length === 0) return;
      const messages: Envelope[] = [];
      for (const row of rows) {
        const parsed = Envelope.safeParse(JSON.parse(row.body));
        if (parsed.success) messages.push(parsed.data);
        else {
          // A row written by an older version that no longer validates must not block the rest.
          console.error(
            JSON.stringify({
              level: "error",
              msg: "unpublishable twin event dropped",
              device: this.#profile?.id,
              id: row.id,
              body: row.body.slice(0, 2000),
            }),
          );
          this.ctx.storage.sql.exec("DELETE FROM outbound WHERE id = ?", row.id);
        }
      }
      await publish(this.env, messages);
      for (const m of messages) this.ctx.storage.sql.exec("DELETE FROM outbound WHERE id = ?", m.id);
    } catch (error) {
      // Kept in storage; the alarm tries again shortly.
      console.warn(
        JSON.stringify({ level: "warn", msg: "twin events not published yet", device: this.#profile?.id, error: String(error) }),
      );
    } finally {
      this.#flushing = false;
    }
  }

  // ── Commands ────────────────────────────────────────────────────────────────────────────

  async enqueueCommand(request: CommandRequest): Promise<{ ok: true; command: Command } | Failure> {
    if (!this.#profile) return { ok: false, code: "not_found", message: "no such device" };
    const config = readConfig(this.env);
    if (this.#outbox.pendingCount() >= config.MAX_PENDING_COMMANDS) {
      return {
        ok: false,
        code: "outbox_full",
        message: `the device has ${config.MAX_PENDING_COMMANDS} pending commands; wait for them to finish or expire`,
      };
    }
    const ttlMs = Math.min(request.ttl_s, config.COMMAND_TTL_MAX_SECONDS) * 1000;
    const id = newMessageId();
    const command = this.#outbox.add(
      { id, command: request.command, parameters: request.parameters, correlation_id: request.correlation_id ?? id, ttlMs },
      Date.now(),
    );
    this.#announceCommands([command]);
    for (const wake of this.#pollWaiters) wake();
    this.#pollWaiters.clear();
    this.#wakeAgent("commands");
    // A device connected over MQTT hears of it at once (durable-objects/mqtt-session.ts).
    this.ctx.waitUntil(
      this.env.MQTT_SESSION.getByName(this.#profile.id)
        .commandsWaiting()
        .catch(() => undefined),
    );
    await this.#schedule();
    return { ok: true, command };
  }

  /** Waits until the command finishes or `waitMs` passes; returns it as it is then. */
  async awaitCommand(id: string, waitMs: number): Promise<Command | undefined> {
    if (!this.#profile) return undefined;
    const current = this.#outbox.get(id);
    if (!current || waitMs <= 0 || ["succeeded", "failed", "expired"].includes(current.status)) return current;
    return new Promise((resolve) => {
      const waiters = this.#commandWaiters.get(id) ?? new Set();
      const done = (command: Command) => {
        clearTimeout(timer);
        waiters.delete(done);
        resolve(command);
      };
      const timer = setTimeout(
        () => {
          waiters.delete(done);
          resolve(this.#outbox.get(id));
        },
        Math.min(waitMs, MAX_WAIT_MS),
      );
      waiters.add(done);
      this.#commandWaiters.set(id, waiters);
    });
  }

  async command(id: string): Promise<Command | undefined> {
    if (!this.#profile) return undefined;
    return this.#outbox.get(id);
  }

  async commands(limit = 50, status?: Command["status"]): Promise<Command[]> {
    if (!this.#profile) return [];
    return this.#outbox.list(Math.max(1, Math.min(limit, 500)), status);
  }

  /** The device asks for its commands (HTTPS long poll, or a gateway on its behalf). */
  async pollCommands(secret: string, waitMs: number): Promise<{ ok: true; commands: Command[] } | Failure> {
    const call = await this.#authenticateCall(secret);
    if (!call.ok) return call;
    return { ok: true, commands: await this.takeCommands(waitMs) };
  }

  /**
   * Delivers due commands to an already-authenticated caller, waiting up to `waitMs` for one (or
   * for a change of the desired state). `fromDevice` false: the LAN agent asks on the device's
   * behalf, which says nothing about whether the device is alive.
   */
  async takeCommands(waitMs: number, fromDevice = true): Promise<Command[]> {
    if (fromDevice) await this.#heard(Date.now(), "poll");
    let due = this.#outbox.takeDue(Date.now());
    if (due.length === 0 && waitMs > 0 && this.#pollWaiters.size < MAX_POLLERS) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(
          () => {
            this.#pollWaiters.delete(wake);
            resolve();
          },
          Math.min(waitMs, MAX_WAIT_MS),
        );
        const wake = () => {
          clearTimeout(timer);
          resolve();
        };
        this.#pollWaiters.add(wake);
      });
      due = this.#outbox.takeDue(Date.now());
    }
    this.#announceCommands(due);
    return due;
  }

  /** The device answers a command; the result is recorded once and published as a message. */
  async completeCommand(
    secret: string | null,
    id: string,
    outcome: { status: "succeeded" | "failed"; result?: Json; error?: string },
  ): Promise<{ ok: true; command: Command } | Failure> {
    if (secret !== null) {
      const call = await this.#authenticateCall(secret);
      if (!call.ok) return call;
    }
    const profile = this.#profile;
    if (!profile) return unauthorized;
    const before = this.#outbox.get(id);
    if (!before) return { ok: false, code: "not_found", message: `no command "${id}" for this device` };
    if (before.status === "expired")
      return { ok: false, code: "command_finished", message: "the command expired before its result arrived" };
    if (before.status === "succeeded" || before.status === "failed") return { ok: true, command: before };
    const now = Date.now();
    const resultId = await derivedId(profile.id, id, "result");
    const command = this.#outbox.complete(id, outcome, now) as Command;
    this.#announceCommands([command]);
    this.#enqueueResult(profile, command, resultId, now, { status: outcome.status, result: outcome.result, error: outcome.error });
    for (const wake of this.#commandWaiters.get(id) ?? []) wake(command);
    this.#commandWaiters.delete(id);
    await this.#heard(now, "command_result");
    await this.#flushOutbound();
    return { ok: true, command };
  }

  /** A command's outcome as a `command_result` message, carrying the command's correlation id. */
  #enqueueResult(
    profile: TwinProfile,
    command: Command,
    id: string,
    now: number,
    outcome: { status: "succeeded" | "failed" | "expired"; result?: Json; error?: string },
  ): void {
    const at = new Date(now).toISOString();
    this.#enqueueOutbound({
      id,
      correlation_id: command.correlation_id,
      causation_id: command.id,
      source: profile.id,
      type: "command_result",
      exchange: "home.events",
      routing_key: `home.${profile.room ?? "unassigned"}.${profile.id}.command_result`,
      timestamp: at,
      received_at: at,
      payload: {
        command_id: command.id,
        status: outcome.status,
        ...(outcome.result !== undefined && { result: outcome.result }),
        ...(outcome.error !== undefined && { error: outcome.error }),
      },
      metadata: { origin: "twin", command: command.command },
      schema_version: SCHEMA_VERSION,
    });
  }

  // ── Alarms ──────────────────────────────────────────────────────────────────────────────

  /** Sets the alarm for the earliest of: the next availability change, a command expiry, a retry of unsent events. */
  async #schedule(): Promise<void> {
    if (!this.#profile) return;
    const config = readConfig(this.env);
    const candidates: number[] = [];
    if (this.#lastSeen !== null) {
      const next = nextTransitionAt(this.#availability.status, this.#lastSeen, availabilityTimeouts(config, this.#profile.class));
      if (next !== undefined) candidates.push(next);
    }
    const expiry = this.#outbox.nextExpiry();
    if (expiry !== undefined) candidates.push(expiry);
    if (this.ctx.storage.sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM outbound").one().n > 0)
      candidates.push(Date.now() + OUTBOUND_RETRY_MS);
    if (candidates.length === 0) return;
    const at = Math.min(...candidates);
    const current = await this.ctx.storage.getAlarm();
    if (current === null || current > at || current < Date.now()) await this.ctx.storage.setAlarm(at);
  }

  override async alarm(): Promise<void> {
    const profile = this.#profile;
    if (!profile) return;
    const now = Date.now();
    const config = readConfig(this.env);
    if (this.#lastSeen !== null && this.#availability.status !== "offline") {
      const due = statusBySilence(this.#lastSeen, now, availabilityTimeouts(config, profile.class));
      if (due !== this.#availability.status && due !== "online") await this.#transition(due, "timeout", now);
    }
    const due = this.#outbox.dueToExpire(now);
    // Result ids first: no await may come between expiring a command and queueing its result.
    const resultIds = await Promise.all(due.map((id) => derivedId(profile.id, id, "result")));
    const expired = this.#outbox.expire(now);
    this.#announceCommands(expired);
    for (const command of expired) {
      const index = due.indexOf(command.id);
      const resultId = resultIds[index] ?? (await derivedId(profile.id, command.id, "result"));
      // Automations waiting on the correlation id hear that nothing came.
      this.#enqueueResult(profile, command, resultId, now, {
        status: "expired",
        error: "the command's TTL ran out before the device answered",
      });
      for (const wake of this.#commandWaiters.get(command.id) ?? []) wake(command);
      this.#commandWaiters.delete(command.id);
    }
    this.#outbox.prune(now - 7 * 86_400_000);
    await this.#flushOutbound();
    await this.#schedule();
  }

  // ── Housekeeping ────────────────────────────────────────────────────────────────────────

  #seenAmong(ids: string[]): Set<string> {
    if (ids.length === 0) return new Set();
    const rows = this.ctx.storage.sql.exec<{ id: string }>(
      "SELECT id FROM seen WHERE id IN (SELECT value FROM json_each(?))",
      JSON.stringify(ids),
    );
    return new Set(rows.toArray().map((r) => r.id));
  }

  #recordErrors(rejected: Rejection[], keep: number): void {
    const at = new Date().toISOString();
    for (const r of rejected) {
      this.ctx.storage.sql.exec(
        "INSERT INTO errors (at, idx, message_id, code, issues) VALUES (?, ?, ?, ?, ?)",
        at,
        r.index,
        r.id ?? null,
        r.code,
        JSON.stringify(r.issues),
      );
    }
    this.ctx.storage.sql.exec("DELETE FROM errors WHERE seq <= (SELECT MAX(seq) FROM errors) - ?", keep);
    // The registry's last_rejected_at (the dashboard's "rejecting messages"): at most one D1 write per device per minute.
    if (Date.now() - this.#registryRejected >= 60_000 && this.#profile) {
      this.#registryRejected = Date.now();
      this.ctx.waitUntil(
        this.env.DB.prepare("UPDATE devices SET last_rejected_at = ? WHERE id = ?")
          .bind(at, this.#profile.id)
          .run()
          .catch(() => undefined),
      );
    }
  }

  #prune(now: number, dedupeWindowMs: number, recentWindowMs: number): void {
    if (now - this.#lastPrune < PRUNE_EVERY_MS) return;
    this.#lastPrune = now;
    this.ctx.storage.sql.exec("DELETE FROM seen WHERE at < ?", now - dedupeWindowMs);
    this.ctx.storage.sql.exec("DELETE FROM recent WHERE at < ?", now - recentWindowMs);
  }
}

type RecentRow = {
  at: number;
  metric: string;
  value: number;
  is_bool: number;
  unit: string | null;
  message_id: string;
};

const encoder = new TextEncoder();

/** Limits are in bytes, as the platform's are; a string's length counts UTF-16 units. */
function utf8Length(text: string): number {
  return encoder.encode(text).byteLength;
}

function idOf(item: unknown): string | undefined {
  if (typeof item === "object" && item !== null && "id" in item && typeof item.id === "string") return item.id.slice(0, 128);
  return undefined;
}
