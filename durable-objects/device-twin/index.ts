/**
 * DeviceTwin: one Durable Object per device (and per service principal) — its actor and its
 * twin, in one strongly consistent place (seed 002). This file is its RPC surface; the parts
 * live beside it: ingest.ts (checking a request's messages), outbox.ts (one durable row per
 * request, flushed to the queues as packs), dedupe.ts (seen ids), state.ts (reported state kept
 * in memory, persisted lazily), commands.ts, availability.ts.
 *
 * On the ingest path it is the only hop: it verifies the credential's hash, enforces the
 * device's rate and publish permissions, catches duplicate message ids, records rejected
 * messages, writes what it accepted to its outbox — and answers once that one row is written —
 * then merges the readings into the reported state, marks the device online, and tells the
 * live hub. The outbox goes to the queues within each queue's pack window.
 */
import { DurableObject } from "cloudflare:workers";
import type { StoredError, TwinView } from "../../shared/api-types";
import { availabilityTimeouts, readConfig } from "../../shared/config";
import type { Issue } from "../../shared/error-codes";
import { derivedId, newMessageId } from "../../shared/ids";
import { log } from "../../shared/log";
import { flushMetrics, metrics } from "../../shared/metrics";
import type { Envelope } from "../../shared/schemas/message";
import type { CommandRequest, DocumentPatch } from "../../shared/schemas/twin";
import { type AvailabilityState, statusBySilence } from "../availability";
import type { Command } from "../command-outbox";
import { sessionStub } from "../stubs";
import { TokenBucket } from "../token-bucket";
import { computeDelta, documentProblem, type Json, type JsonObject, mergeDocument } from "../twin-document";
import { TwinCore } from "./core";
import { routeOf, screen } from "./ingest";
import { STATE_SCHEMA } from "./state";
import {
  type Failure,
  type IngestOutcome,
  type IngestRequest,
  type RecentReading,
  type Rejection,
  type TwinProfile,
  unauthorized,
} from "./types";

export type { StoredError, TwinView } from "../../shared/api-types";
export type { Failure, IngestOutcome, IngestRequest, RecentReading, Rejection, TwinProfile } from "./types";

export class DeviceTwin extends DurableObject<Env> {
  readonly #core: TwinCore;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    // SQLite calls are synchronous, so state loads (and is rebuilt) before any call runs.
    // Its ctx and env are read at each use: the metered ones once the metering subclass set them.
    const self = this;
    this.#core = new TwinCore({
      get ctx() {
        return self.ctx;
      },
      get env() {
        return self.env;
      },
    });
  }

  // ── Registry ────────────────────────────────────────────────────────────────────────────

  /** Creates the device's twin with its profile and credential hash (registry → twin). */
  async provision(profile: TwinProfile): Promise<void> {
    const first = this.#core.s.profile === undefined;
    if (first) {
      this.ctx.storage.sql.exec(STATE_SCHEMA);
      this.#core.open();
    }
    this.#core.s.profile = profile;
    this.#core.s.set("profile", profile);
    if (first) {
      this.#core.s.availability = { status: "offline", since: new Date().toISOString(), reason: "never_seen" };
      this.#core.s.set("availability", this.#core.s.availability);
    }
    this.#core.bucket?.reconfigure(profile.rate.per_second, profile.rate.burst);
    await this.#core.schedule();
  }

  /** Changes the profile but never the credential: a PATCH racing a rotation must not write an old hash back. */
  async configure(profile: Omit<TwinProfile, "token_hash">): Promise<boolean> {
    const current = this.#core.s.profile;
    if (!current) return false;
    this.#core.s.profile = { ...profile, token_hash: current.token_hash };
    this.#core.s.set("profile", this.#core.s.profile);
    this.#core.bucket?.reconfigure(profile.rate.per_second, profile.rate.burst);
    return true;
  }

  /** A new credential hash: from this call on, only the new token works. */
  async setCredential(tokenHash: string): Promise<boolean> {
    const current = this.#core.s.profile;
    if (!current) return false;
    this.#core.s.profile = { ...current, token_hash: tokenHash };
    this.#core.s.set("profile", this.#core.s.profile);
    return true;
  }

  /** Forgets everything about the device: its credential stops working at once. */
  async deprovision(): Promise<void> {
    await this.ctx.storage.deleteAlarm();
    await this.ctx.storage.deleteAll();
    // Nothing of the old device may outlive it in memory either (a new device may take the id).
    this.#core.s.reset();
    this.#core.bucket = undefined;
    this.#core.lastPrune = 0;
    this.#core.outboxRows?.forget();
    this.#core.outboxRows = undefined;
    this.#core.seenIds = undefined;
    this.#core.commandStore = undefined;
    this.#core.alarmAt = null;
    if (this.#core.snapshotTimer !== undefined) clearTimeout(this.#core.snapshotTimer);
    this.#core.snapshotTimer = undefined;
    this.#core.waiters.clear();
    this.#core.hub.forget();
  }

  async profile(): Promise<TwinProfile | undefined> {
    return this.#core.s.profile;
  }

  /** Whether a secret is the device's current one (the MQTT gateway's CONNECT). */
  async checkSecret(secret: string): Promise<boolean> {
    return (await this.#core.authenticate(secret)) !== undefined;
  }

  // ── Ingest ──────────────────────────────────────────────────────────────────────────────

  async ingest(request: IngestRequest): Promise<IngestOutcome> {
    const profile =
      request.credentialHash !== undefined
        ? this.#core.authenticateHash(request.credentialHash)
        : request.secret === null
          ? this.#core.s.profile
          : await this.#core.authenticate(request.secret);
    if (!profile) return unauthorized;
    const config = readConfig(this.env);
    const now = Date.now();
    if (!this.#core.outbox.hasRoom) {
      // Backpressure: every slot of the ring holds a row the queues have not taken yet (they fail,
      // or the device sends faster than they drain). Nothing of this request was kept; retry later.
      return {
        ok: false,
        code: "unavailable",
        message: `the device's outbox holds ${this.#core.outbox.pendingRows} requests the queues have not taken yet; retry later`,
        retryAfterSeconds: 5,
      };
    }

    this.#core.bucket ??= new TokenBucket(profile.rate.per_second, profile.rate.burst, now);
    const count = request.items.length;
    if (count > profile.rate.burst) {
      // Waiting would never help: the bucket never holds more than the burst.
      return {
        ok: false,
        code: "batch_too_large",
        message: `${count} messages in one request; this device's burst is ${profile.rate.burst}: send smaller batches`,
      };
    }
    const rate = this.#core.bucket.take(count, now);
    if (!rate.ok) {
      return {
        ok: false,
        code: "rate_limited",
        message: `over ${profile.rate.per_second} messages/s (burst ${profile.rate.burst})`,
        retryAfterSeconds: rate.retryAfterSeconds,
      };
    }

    // From here to the outbox row no await: a concurrent request with the same id sees this one's row.
    const { candidates, rejected, ids } = screen(request, profile, config, now);
    const dedupeSince = now - config.DEDUPE_WINDOW_HOURS * 3_600_000;
    const seen = this.#core.seen.seenAmong(
      candidates.map((m) => m.id),
      dedupeSince,
    );
    const accepted: Envelope[] = [];
    const batchIds = new Set<string>();
    let duplicates = 0;
    for (const message of candidates) {
      if (batchIds.has(message.id) || seen.has(message.id)) {
        duplicates++;
        continue;
      }
      batchIds.add(message.id);
      accepted.push(message);
    }
    const routes = accepted.map(routeOf);
    const routed: Record<string, string[]> = Object.fromEntries(accepted.map((m, i) => [m.id, routes[i] as string[]]));
    if (accepted.length > 0) {
      // The one durable write of the request: the answer waits for it (the output gate), not for the queues.
      const seq = this.#core.outbox.nextSeq(now);
      this.#core.outbox.append(seq, { m: accepted, r: routes, c: [accepted.length, duplicates, rejected.length], h: 1 });
      this.#core.seen.add([...batchIds], seq);
    }
    this.#core.s.counters.accepted += accepted.length;
    this.#core.s.counters.duplicates += duplicates;
    this.#core.s.counters.rejected += rejected.length;
    this.#core.s.dirty = true;
    // Counted here, where every transport (HTTPS, MQTT, the agent) arrives.
    const transport = request.transport;
    metrics.inc("edgemesh_ingest_messages_total", { transport, outcome: "accepted" }, accepted.length);
    metrics.inc("edgemesh_ingest_messages_total", { transport, outcome: "duplicate" }, duplicates);
    metrics.inc("edgemesh_ingest_messages_total", { transport, outcome: "rejected" }, rejected.length);
    for (const r of rejected) metrics.inc("edgemesh_ingest_rejections_total", { code: r.code });
    this.ctx.waitUntil(flushMetrics(this.env.DB, config.METRICS_FLUSH_SECONDS));
    if (rejected.length > 0) this.#core.recordErrors(rejected, config.DEVICE_ERRORS_KEPT);
    if (accepted.length > 0 || duplicates > 0) {
      const recentSince = now - config.RECENT_READINGS_MINUTES * 60_000;
      const update = this.#core.s.absorb(accepted, config.RECENT_READINGS_KEPT, recentSince);
      if (Object.keys(update).length > 0) this.#core.announceReadings(update, accepted.at(-1)?.routing_key);
      this.#core.s.lastSeen = now;
    }
    this.#core.persistSoon(now);
    if (accepted.length > 0 || duplicates > 0) await this.#core.heard(now, "message");
    this.#core.prune(now, config.DEDUPE_WINDOW_HOURS * 3_600_000);
    rejected.sort((a, b) => a.index - b.index);
    log("debug", "ingested", { device: profile.id, accepted: accepted.length, duplicates, rejected: rejected.length });
    return { ok: true, accepted: accepted.length, duplicates, rejected, ids, routed };
  }

  /** Records a request the Worker rejected whole (bad JSON, too large), if the secret is right. */
  async recordRejection(secret: string, rejection: Rejection): Promise<boolean> {
    const call = await this.#core.authenticateCall(secret);
    if (!call.ok) return call.code !== "unauthorized";
    this.#core.s.counters.rejected++;
    this.#core.s.dirty = true;
    this.#core.recordErrors([rejection], readConfig(this.env).DEVICE_ERRORS_KEPT);
    this.#core.persistSoon(Date.now());
    return true;
  }

  /** The device's most recent rejected messages, newest first (seed 003: errors are recorded). */
  async errors(limit = 50): Promise<StoredError[]> {
    if (!this.#core.s.profile) return [];
    return this.ctx.storage.sql
      .exec<{ at: string; idx: number; message_id: string | null; code: string; issues: string }>(
        "SELECT at, idx, message_id, code, issues FROM errors ORDER BY seq DESC LIMIT ?",
        Math.max(1, Math.min(limit, 1000)),
      )
      .toArray()
      .map((r) => ({ at: r.at, index: r.idx, message_id: r.message_id, code: r.code, issues: JSON.parse(r.issues) as Issue[] }));
  }

  async recent(options: { metric?: string; sinceMs?: number; limit?: number } = {}): Promise<RecentReading[]> {
    if (!this.#core.s.profile) return [];
    const config = readConfig(this.env);
    return this.#core.s.recent({
      metric: options.metric,
      since: Math.max(options.sinceMs ?? Date.now() - 3_600_000, Date.now() - config.RECENT_READINGS_MINUTES * 60_000),
      limit: Math.max(1, Math.min(options.limit ?? 1000, 10_000)),
      keep: config.RECENT_READINGS_KEPT,
    });
  }

  // ── Twin documents ──────────────────────────────────────────────────────────────────────

  async twin(): Promise<TwinView | undefined> {
    const s = this.#core.s;
    const profile = s.profile;
    if (!profile) return undefined;
    const view: JsonObject = { ...s.state };
    for (const [name, reading] of Object.entries(s.readings)) view[name] = reading.value;
    return {
      device: profile.id,
      version: s.version,
      last_seen: s.lastSeen === null ? null : new Date(s.lastSeen).toISOString(),
      availability: s.availability,
      reported: { readings: s.readings, state: s.state },
      desired: s.desired,
      delta: computeDelta(s.desired, view),
      counters: s.counters,
    };
  }

  /**
   * Merges a patch into the desired state. With `ifMatch`, only when the version is still that
   * one (optimistic concurrency); the version counts changes of the desired state.
   */
  async patchDesired(patch: DocumentPatch, ifMatch?: number): Promise<{ ok: true; twin: TwinView } | Failure> {
    const s = this.#core.s;
    if (!s.profile) return { ok: false, code: "not_found", message: "no such device" };
    if (ifMatch !== undefined && ifMatch !== s.version) {
      return { ok: false, code: "precondition_failed", message: `the twin is at version ${s.version}, not ${ifMatch}` };
    }
    const next = mergeDocument(s.desired, patch as JsonObject);
    const problem = documentProblem(next);
    if (problem) return { ok: false, code: "invalid_payload", message: problem, issues: [{ path: "desired", message: problem }] };
    s.desired = next;
    s.version++;
    s.set("desired", s.desired);
    s.set("version", s.version);
    // A long poll (the LAN agent's) returns at once to carry the new desired state.
    this.#core.waiters.wakePolls();
    this.#core.wakeAgent("desired");
    // A device subscribed over MQTT to its desired state hears of the change at once.
    this.ctx.waitUntil(
      sessionStub(this.env, s.profile.id)
        .desiredChanged()
        .catch(() => undefined),
    );
    return { ok: true, twin: (await this.twin()) as TwinView };
  }

  /** A device reports state that is not a reading (its configuration, firmware, schedule). */
  async reportState(secret: string, patch: DocumentPatch): Promise<{ ok: true; twin: TwinView } | Failure> {
    const call = await this.#core.authenticateCall(secret);
    if (!call.ok) return call;
    const next = mergeDocument(this.#core.s.state, patch as JsonObject);
    const problem = documentProblem(next);
    if (problem) return { ok: false, code: "invalid_payload", message: problem, issues: [{ path: "reported", message: problem }] };
    this.#core.s.state = next;
    this.#core.s.set("state", next);
    await this.#core.heard(Date.now(), "report");
    return { ok: true, twin: (await this.twin()) as TwinView };
  }

  // ── Availability ────────────────────────────────────────────────────────────────────────

  /** Explicit presence: a connect, a disconnect, or a last will reported by a gateway or agent. */
  async presence(
    secret: string,
    status: "online" | "offline",
    reason: string,
  ): Promise<{ ok: true; availability: AvailabilityState } | Failure> {
    const call = await this.#core.authenticateCall(secret);
    if (!call.ok) return call;
    await this.signalPresence(status, reason);
    return { ok: true, availability: this.#core.s.availability };
  }

  /** The same, for callers inside the edge that authenticated the device already (MQTT gateway). */
  async signalPresence(status: "online" | "offline", reason: string): Promise<void> {
    const now = Date.now();
    if (status === "online") await this.#core.heard(now, reason);
    else {
      await this.#core.transition("offline", reason, now);
      await this.#core.schedule();
    }
  }

  // ── Commands ────────────────────────────────────────────────────────────────────────────

  async enqueueCommand(request: CommandRequest): Promise<{ ok: true; command: Command } | Failure> {
    const profile = this.#core.s.profile;
    if (!profile) return { ok: false, code: "not_found", message: "no such device" };
    const config = readConfig(this.env);
    if (this.#core.commands.pendingCount() >= config.MAX_PENDING_COMMANDS) {
      return {
        ok: false,
        code: "outbox_full",
        message: `the device has ${config.MAX_PENDING_COMMANDS} pending commands; wait for them to finish or expire`,
      };
    }
    const ttlMs = Math.min(request.ttl_s, config.COMMAND_TTL_MAX_SECONDS) * 1000;
    const id = newMessageId();
    const command = this.#core.commands.add(
      { id, command: request.command, parameters: request.parameters, correlation_id: request.correlation_id ?? id, ttlMs },
      Date.now(),
    );
    this.#core.announceCommands([command]);
    this.#core.waiters.wakePolls();
    this.#core.wakeAgent("commands");
    // A device connected over MQTT hears of it at once (durable-objects/mqtt/).
    this.ctx.waitUntil(
      sessionStub(this.env, profile.id)
        .commandsWaiting()
        .catch(() => undefined),
    );
    await this.#core.schedule();
    return { ok: true, command };
  }

  /** Waits until the command finishes or `waitMs` passes; returns it as it is then. */
  async awaitCommand(id: string, waitMs: number): Promise<Command | undefined> {
    if (!this.#core.s.profile) return undefined;
    const current = this.#core.commands.get(id);
    if (!current || waitMs <= 0 || ["succeeded", "failed", "expired"].includes(current.status)) return current;
    return this.#core.waiters.awaitCommand(id, waitMs, () => this.#core.commands.get(id));
  }

  async command(id: string): Promise<Command | undefined> {
    if (!this.#core.s.profile) return undefined;
    return this.#core.commands.get(id);
  }

  async commands(limit = 50, status?: Command["status"]): Promise<Command[]> {
    if (!this.#core.s.profile) return [];
    return this.#core.commands.list(Math.max(1, Math.min(limit, 500)), status);
  }

  /** The device asks for its commands (HTTPS long poll, or a gateway on its behalf). */
  async pollCommands(secret: string, waitMs: number): Promise<{ ok: true; commands: Command[] } | Failure> {
    const call = await this.#core.authenticateCall(secret);
    if (!call.ok) return call;
    return { ok: true, commands: await this.takeCommands(waitMs) };
  }

  /**
   * Delivers due commands to an already-authenticated caller, waiting up to `waitMs` for one (or
   * for a change of the desired state). `fromDevice` false: the LAN agent asks on the device's
   * behalf, which says nothing about whether the device is alive.
   */
  async takeCommands(waitMs: number, fromDevice = true): Promise<Command[]> {
    if (fromDevice) await this.#core.heard(Date.now(), "poll");
    let due = this.#core.commands.takeDue(Date.now());
    if (due.length === 0 && (await this.#core.waiters.poll(waitMs))) due = this.#core.commands.takeDue(Date.now());
    this.#core.announceCommands(due);
    return due;
  }

  /** The device answers a command; the result is recorded once and published as a message. */
  async completeCommand(
    secret: string | null,
    id: string,
    outcome: { status: "succeeded" | "failed"; result?: Json; error?: string },
  ): Promise<{ ok: true; command: Command } | Failure> {
    if (secret !== null) {
      const call = await this.#core.authenticateCall(secret);
      if (!call.ok) return call;
    }
    const profile = this.#core.s.profile;
    if (!profile) return unauthorized;
    const before = this.#core.commands.get(id);
    if (!before) return { ok: false, code: "not_found", message: `no command "${id}" for this device` };
    if (before.status === "expired")
      return { ok: false, code: "command_finished", message: "the command expired before its result arrived" };
    if (before.status === "succeeded" || before.status === "failed") return { ok: true, command: before };
    const now = Date.now();
    const resultId = await derivedId(profile.id, id, "result");
    const command = this.#core.commands.complete(id, outcome, now) as Command;
    this.#core.announceCommands([command]);
    this.#core.enqueueResult(profile, command, resultId, now, { status: outcome.status, result: outcome.result, error: outcome.error });
    this.#core.waiters.finished(command);
    await this.#core.heard(now, "command_result");
    return { ok: true, command };
  }

  override async alarm(): Promise<void> {
    this.#core.alarmAt = null;
    const profile = this.#core.s.profile;
    if (!profile) return;
    const now = Date.now();
    const config = readConfig(this.env);
    const s = this.#core.s;
    if (s.lastSeen !== null && s.availability.status !== "offline") {
      const due = statusBySilence(s.lastSeen, now, availabilityTimeouts(config, profile.class));
      if (due !== s.availability.status && due !== "online") await this.#core.transition(due, "timeout", now);
    }
    const due = this.#core.commands.dueToExpire(now);
    // Result ids first: no await may come between expiring a command and queueing its result.
    const resultIds = await Promise.all(due.map((id) => derivedId(profile.id, id, "result")));
    const expired = this.#core.commands.expire(now);
    this.#core.announceCommands(expired);
    for (const command of expired) {
      const index = due.indexOf(command.id);
      const resultId = resultIds[index] ?? (await derivedId(profile.id, command.id, "result"));
      // Automations waiting on the correlation id hear that nothing came.
      this.#core.enqueueResult(profile, command, resultId, now, {
        status: "expired",
        error: "the command's TTL ran out before the device answered",
      });
      this.#core.waiters.finished(command);
    }
    this.#core.commands.prune(now - 7 * 86_400_000);
    // The safety net: whatever the in-process timers did not send (an eviction, a failed send) goes now.
    await this.#core.outbox.flush(true);
    this.#core.snapshot(Date.now());
    await this.#core.schedule();
  }
}
