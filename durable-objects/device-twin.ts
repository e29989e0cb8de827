/**
 * DeviceTwin: one Durable Object per device (and per service principal). On the ingest path it
 * is the only hop: it holds the credential's hash and verifies it, enforces the device's rate
 * and publish permissions, catches duplicate message ids, records rejected messages, and
 * publishes what it accepted through the exchanges — answering only once those are safe in
 * their queues.
 */
import { DurableObject } from "cloudflare:workers";
import { publish } from "../queues/exchange";
import { findExchange } from "../queues/topology";
import { readConfig } from "../shared/config";
import { secretMatches } from "../shared/credentials";
import { buildEnvelope } from "../shared/envelope";
import type { ErrorCode, Issue } from "../shared/error-codes";
import { mayPublish } from "../shared/permissions";
import type { Envelope, MessageType } from "../shared/schemas/message";
import { TokenBucket } from "./token-bucket";

/** What the registry tells a twin about its device. */
export interface TwinProfile {
  id: string;
  kind: "device" | "service";
  type: string;
  room: string | null;
  publish: string[];
  rate: { per_second: number; burst: number };
  token_hash: string;
}

export interface Rejection {
  index: number;
  id?: string;
  code: ErrorCode;
  issues: Issue[];
}

export interface IngestRequest {
  secret: string;
  /** Every message of the request in order; positions named in `preRejected` hold null. */
  items: unknown[];
  /** Items the Worker could not even parse (NDJSON lines), rejected in the same answer. */
  preRejected: Rejection[];
  defaultType: MessageType;
  allowedTypes: MessageType[];
  exchange?: string;
  transport: "https" | "mqtt" | "agent";
}

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
  | { ok: false; code: ErrorCode; message: string; retryAfterSeconds?: number };

export interface StoredError {
  at: string;
  index: number;
  message_id: string | null;
  code: string;
  issues: Issue[];
}

const SCHEMA = `
  CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
  CREATE TABLE IF NOT EXISTS seen (id TEXT PRIMARY KEY, at INTEGER NOT NULL);
  CREATE INDEX IF NOT EXISTS seen_at ON seen (at);
  CREATE TABLE IF NOT EXISTS errors (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL, idx INTEGER NOT NULL,
    message_id TEXT, code TEXT NOT NULL, issues TEXT NOT NULL);
`;

const PRUNE_EVERY_MS = 10 * 60 * 1000;

export class DeviceTwin extends DurableObject<Env> {
  #profile: TwinProfile | undefined;
  #bucket: TokenBucket | undefined;
  /** Ids being published right now: a concurrent duplicate must not pass while the first is in flight. */
  #inFlight = new Set<string>();
  #lastPrune = 0;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    // SQLite calls are synchronous, so the schema exists before any RPC method can run.
    ctx.storage.sql.exec(SCHEMA);
    const row = ctx.storage.sql.exec<{ value: string }>("SELECT value FROM meta WHERE key = 'profile'").toArray()[0];
    this.#profile = row ? (JSON.parse(row.value) as TwinProfile) : undefined;
  }

  /** Creates or replaces the device's profile and credential hash (registry → twin). */
  async provision(profile: TwinProfile): Promise<void> {
    this.ctx.storage.sql.exec("INSERT OR REPLACE INTO meta (key, value) VALUES ('profile', ?)", JSON.stringify(profile));
    this.#profile = profile;
    this.#bucket?.reconfigure(profile.rate.per_second, profile.rate.burst);
  }

  /** Forgets everything about the device: its credential stops working at once. */
  async deprovision(): Promise<void> {
    this.#profile = undefined;
    this.#bucket = undefined;
    await this.ctx.storage.deleteAll();
    this.ctx.storage.sql.exec(SCHEMA);
  }

  async profile(): Promise<TwinProfile | undefined> {
    return this.#profile;
  }

  async ingest(request: IngestRequest): Promise<IngestOutcome> {
    const profile = this.#profile;
    if (!profile || !(await secretMatches(request.secret, profile.token_hash))) {
      return { ok: false, code: "unauthorized", message: "the device token is not valid" };
    }
    const config = readConfig(this.env);
    const now = Date.now();

    this.#bucket ??= new TokenBucket(profile.rate.per_second, profile.rate.burst, now);
    const count = request.items.length;
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

    for (let index = 0; index < count; index++) {
      if (preRejectedAt.has(index)) continue;
      const item = request.items[index];
      const size = JSON.stringify(item)?.length ?? 0;
      if (size > config.MAX_MESSAGE_BYTES) {
        rejected.push({
          index,
          code: "message_too_large",
          issues: [{ path: "", message: `${size} bytes; the limit is ${config.MAX_MESSAGE_BYTES}` }],
        });
        continue;
      }
      const built = buildEnvelope(item, {
        principal: { id: profile.id, type: profile.type, room: profile.room },
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
      if (batchIds.has(message.id) || this.#inFlight.has(message.id) || this.#seen(message.id)) {
        duplicates++;
        continue;
      }
      batchIds.add(message.id);
      accepted.push(message);
    }

    let routed: Record<string, string[]> = {};
    if (accepted.length > 0) {
      for (const id of batchIds) this.#inFlight.add(id);
      try {
        routed = Object.fromEntries((await publish(this.env, accepted)).map((r) => [r.id, r.queues]));
        const at = Date.now();
        for (const message of accepted) this.ctx.storage.sql.exec("INSERT OR IGNORE INTO seen (id, at) VALUES (?, ?)", message.id, at);
      } catch (error) {
        console.error(JSON.stringify({ level: "error", msg: "publish failed", device: profile.id, error: String(error) }));
        return { ok: false, code: "unavailable", message: "the message queues could not take the messages; retry", retryAfterSeconds: 5 };
      } finally {
        for (const id of batchIds) this.#inFlight.delete(id);
      }
    }

    if (rejected.length > 0) this.#recordErrors(rejected, config.DEVICE_ERRORS_KEPT);
    this.#pruneSeen(now, config.DEDUPE_WINDOW_HOURS * 3_600_000);
    rejected.sort((a, b) => a.index - b.index);
    return { ok: true, accepted: accepted.length, duplicates, rejected, ids, routed };
  }

  /** Records a request the Worker rejected whole (bad JSON, too large), if the secret is right. */
  async recordRejection(secret: string, rejection: Rejection): Promise<boolean> {
    const profile = this.#profile;
    if (!profile || !(await secretMatches(secret, profile.token_hash))) return false;
    this.#recordErrors([rejection], readConfig(this.env).DEVICE_ERRORS_KEPT);
    return true;
  }

  /** The device's most recent rejected messages, newest first (seed 003: errors are recorded). */
  async errors(limit = 50): Promise<StoredError[]> {
    return this.ctx.storage.sql
      .exec<{ at: string; idx: number; message_id: string | null; code: string; issues: string }>(
        "SELECT at, idx, message_id, code, issues FROM errors ORDER BY seq DESC LIMIT ?",
        Math.max(1, Math.min(limit, 1000)),
      )
      .toArray()
      .map((r) => ({ at: r.at, index: r.idx, message_id: r.message_id, code: r.code, issues: JSON.parse(r.issues) as Issue[] }));
  }

  #seen(id: string): boolean {
    return this.ctx.storage.sql.exec("SELECT 1 FROM seen WHERE id = ?", id).toArray().length > 0;
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
  }

  #pruneSeen(now: number, windowMs: number): void {
    if (now - this.#lastPrune < PRUNE_EVERY_MS) return;
    this.#lastPrune = now;
    this.ctx.storage.sql.exec("DELETE FROM seen WHERE at < ?", now - windowMs);
  }
}

function idOf(item: unknown): string | undefined {
  if (typeof item === "object" && item !== null && "id" in item && typeof item.id === "string") return item.id.slice(0, 128);
  return undefined;
}
