/**
 * LiveHub: fans live updates out to dashboards over hibernatable WebSockets. One hub per room
 * (`room:<id>`) and one for system streams (`system`), so no single object carries every socket
 * or every update. Protocol: docs/live.md.
 *
 * Every update gets the hub's next sequence number and is kept in a bounded ring, so a client
 * that reconnects resumes without gaps while the hub still has what it missed. The hub keeps the
 * latest state of each device for snapshots. Both live in memory and are persisted lazily, at
 * most every PERSIST_MS: one row for the updates since the last time (a ring of BLOCK_SLOTS
 * block rows, reused: no delete) and one per device that changed — no row per update. After a
 * restart the sequence goes on after the numbers the hub reserved (`meta.seq`, written once per
 * SEQ_RESERVE updates), never reusing one: a client resuming from a number the hub handed out
 * but had not persisted gets a snapshot, never a gap. A client that stops acknowledging is not sent
 * more than LIVE_WINDOW updates ahead: the hub coalesces to the latest update per device and
 * stream, and closes it (4008) if it stays behind; other clients never wait for it.
 */
import { DurableObject } from "cloudflare:workers";
import { readConfig } from "../shared/config";
import { toIssues } from "../shared/error-codes";
import { log } from "../shared/log";
import { type HubUpdate, LiveClientMessage, type LiveStream, type LiveUpdate } from "../shared/schemas/live";
import { matchesPattern } from "../shared/topics";
import { roomStub } from "./stubs";
import { mergeReadings, type ReportedReading } from "./twin-document";

/** A twin's changed readings for its room's aggregates, carried by the same call as its live update. */
export interface RoomReport {
  room: string;
  device: string;
  readings: Record<string, ReportedReading>;
}

/** Room reports are gathered this long and handed to the room actors in one call per room. */
const ROOM_REPORT_MS = 1_000;

export const CLOSE = { tokenExpired: 4001, forbidden: 4003, tooSlow: 4008, internal: 1011 } as const;
const ALL_STREAMS: LiveStream[] = ["twin", "availability", "command", "dead_letter", "alert"];

interface Attachment {
  sub: string;
  role: string;
  /** Token expiry, seconds since the epoch; 0 never. */
  exp: number;
  devices: string[];
  patterns: string[];
  streams: LiveStream[];
  /** Set once the client subscribed: until then it gets nothing. */
  subscribed: boolean;
  acked: number;
  /** When the socket fell behind (ms), or 0. */
  behindSince: number;
}

/** Per-socket state that changes with every update, kept in memory (see #state). */
interface Flow {
  sent: number;
  /** What the client acknowledged; persisted only when the socket's behind-state changes. */
  acked: number;
  pending: Map<string, LiveUpdate> | undefined;
}

const SCHEMA = `
  CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
  CREATE TABLE IF NOT EXISTS update_blocks (slot INTEGER PRIMARY KEY, last INTEGER NOT NULL, body TEXT NOT NULL);
  CREATE TABLE IF NOT EXISTS devices (
    device TEXT PRIMARY KEY, readings TEXT NOT NULL DEFAULT '{}', availability TEXT, routing_key TEXT);
`;

/** Updates and device state reach storage at most this long after they happen. */
const PERSIST_MS = 5_000;
/** Block rows of updates kept (a ring): after a restart, at most this many persists' worth, and LIVE_REPLAY_KEPT. */
const BLOCK_SLOTS = 64;
/** Sequence numbers reserved in storage at a time (one row per this many updates). */
const SEQ_RESERVE = 10_000;

interface DeviceState {
  readings: Record<string, unknown>;
  availability: unknown;
  routing_key: string | null;
}

export class LiveHub extends DurableObject<Env> {
  #seq: number;
  /** Resumes from after this (exclusive) up to #floor may have seen updates lost in a restart: snapshot instead. */
  #persisted: number;
  #floor: number;
  /** The replay ring, oldest first, at most LIVE_REPLAY_KEPT. */
  #ring: LiveUpdate[] = [];
  /** Updates not yet in a block row. */
  #unpersisted: LiveUpdate[] = [];
  #devices = new Map<string, DeviceState>();
  #dirty = new Set<string>();
  #persistTimer: ReturnType<typeof setTimeout> | undefined;
  #nextSlot = 0;
  /** Sequence numbers up to this are reserved in storage (`meta.seq`). */
  #reserved: number;
  #flows = new Map<WebSocket, Flow>();
  /** Room → device → its newest readings not yet handed to the room actor. */
  #roomReports = new Map<string, Map<string, Record<string, ReportedReading>>>();
  #roomTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    const sql = ctx.storage.sql;
    sql.exec(SCHEMA);
    const kept = readConfig(env).LIVE_REPLAY_KEPT;
    let newestSlot = -1;
    let newest = 0;
    for (const row of sql.exec<{ slot: number; last: number; body: string }>("SELECT slot, last, body FROM update_blocks ORDER BY last")) {
      for (const item of JSON.parse(row.body) as LiveUpdate[]) this.#ring.push(item);
      if (row.last > newest) {
        newest = row.last;
        newestSlot = row.slot;
      }
    }
    this.#nextSlot = (newestSlot + 1) % BLOCK_SLOTS;
    // Versions before the blocks kept a row per update (and `meta.seq`): read once, kept as one block.
    const legacy = sql.exec("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'updates'").toArray().length > 0;
    if (legacy) {
      const rows = sql.exec<{ body: string }>("SELECT body FROM updates ORDER BY seq").toArray();
      for (const row of rows) this.#ring.push(JSON.parse(row.body) as LiveUpdate);
      this.#unpersisted = rows.map((r) => JSON.parse(r.body) as LiveUpdate);
    }
    const reserved = Number(sql.exec<{ value: string }>("SELECT value FROM meta WHERE key = 'seq'").toArray()[0]?.value ?? 0);
    this.#ring = this.#ring.slice(-kept);
    this.#persisted = Math.max(this.#ring.at(-1)?.seq ?? 0, newest);
    // Numbers in (persisted, reserved] may have been handed out and lost: none is used again.
    this.#seq = Math.max(this.#persisted, reserved);
    this.#reserved = this.#seq;
    this.#floor = this.#seq;
    for (const row of sql.exec<{ device: string; readings: string; availability: string | null; routing_key: string | null }>(
      "SELECT * FROM devices",
    ))
      this.#devices.set(row.device, {
        readings: JSON.parse(row.readings) as Record<string, unknown>,
        availability: row.availability ? JSON.parse(row.availability) : null,
        routing_key: row.routing_key,
      });
    if (legacy) {
      this.#persist();
      sql.exec("DROP TABLE updates");
    }
    // Answered by the runtime without waking the hub from hibernation.
    ctx.setWebSocketAutoResponse(new WebSocketRequestResponsePair('{"type":"ping"}', '{"type":"pong"}'));
  }

  /** The upgrade, forwarded by the Worker after it checked the token, role and origin. */
  override async fetch(request: Request): Promise<Response> {
    if (request.headers.get("upgrade")?.toLowerCase() !== "websocket") return new Response("expected a WebSocket upgrade", { status: 426 });
    const pair = new WebSocketPair();
    const [client, server] = [pair[0], pair[1]];
    this.ctx.acceptWebSocket(server);
    const attachment: Attachment = {
      sub: request.headers.get("x-edgemesh-sub") ?? "unknown",
      role: request.headers.get("x-edgemesh-role") ?? "viewer",
      exp: Number(request.headers.get("x-edgemesh-exp") ?? 0),
      devices: [],
      patterns: [],
      streams: ALL_STREAMS,
      subscribed: false,
      acked: this.#seq,
      behindSince: 0,
    };
    server.serializeAttachment(attachment);
    this.#flows.set(server, { sent: this.#seq, acked: this.#seq, pending: undefined });
    await this.#scheduleChecks();
    return new Response(null, { status: 101, webSocket: client, headers: { "sec-websocket-protocol": "edgemesh.v1" } });
  }

  /**
   * Publishers (twins, the dead-letter store) hand updates in; each gets the next sequence number.
   * A twin's changed readings come along for its room's aggregates: the hub hands those to the
   * room actor within ROOM_REPORT_MS, one call per room (the twin makes one call, not two).
   */
  async publish(updates: HubUpdate[], report?: RoomReport): Promise<number> {
    if (report) this.#gather(report);
    const config = readConfig(this.env);
    const sequenced: LiveUpdate[] = [];
    if (this.#seq + updates.length > this.#reserved) {
      // Reserved before use: a restart (even before the next persist) goes on after them.
      this.#reserved = this.#seq + updates.length + SEQ_RESERVE;
      this.ctx.storage.sql.exec("INSERT OR REPLACE INTO meta (key, value) VALUES ('seq', ?)", String(this.#reserved));
    }
    for (const update of updates) {
      const item: LiveUpdate = { ...update, seq: ++this.#seq };
      sequenced.push(item);
      this.#ring.push(item);
      this.#unpersisted.push(item);
      this.#remember(item);
    }
    if (this.#ring.length > config.LIVE_REPLAY_KEPT * 2) this.#ring = this.#ring.slice(-config.LIVE_REPLAY_KEPT);
    this.#persistSoon();
    let behind = false;
    for (const ws of this.ctx.getWebSockets()) {
      const attachment = ws.deserializeAttachment() as Attachment;
      if (!attachment.subscribed) continue;
      for (const item of sequenced)
        if (matches(attachment, item)) behind = this.#deliver(ws, attachment, item, config.LIVE_WINDOW) || behind;
    }
    if (behind) await this.#scheduleChecks();
    return this.#seq;
  }

  #gather(report: RoomReport): void {
    const devices = this.#roomReports.get(report.room) ?? new Map<string, Record<string, ReportedReading>>();
    this.#roomReports.set(report.room, devices);
    const readings = devices.get(report.device) ?? {};
    mergeReadings(readings, report.readings);
    devices.set(report.device, readings);
    this.#roomTimer ??= setTimeout(() => {
      this.#roomTimer = undefined;
      const reports = this.#roomReports;
      this.#roomReports = new Map();
      for (const [room, byDevice] of reports) {
        // The aggregates are a live view: a lost report is mended by the device's next reading.
        roomStub(this.env, room)
          .reportAll(Object.fromEntries(byDevice))
          .catch((error: unknown) => log("warn", "room update failed", { room, error: String(error) }));
      }
    }, ROOM_REPORT_MS);
  }

  override async webSocketMessage(ws: WebSocket, raw: string | ArrayBuffer): Promise<void> {
    let value: unknown;
    try {
      value = JSON.parse(typeof raw === "string" ? raw : new TextDecoder().decode(raw));
    } catch {
      send(ws, { type: "error", code: "invalid_json", message: "messages are JSON text" });
      return;
    }
    const parsed = LiveClientMessage.safeParse(value);
    if (!parsed.success) {
      const issues = toIssues(parsed.error.issues);
      send(ws, {
        type: "error",
        code: "invalid_payload",
        message: issues.map((i) => `${i.path || "message"}: ${i.message}`).join("; "),
        issues,
      });
      return;
    }
    const message = parsed.data;
    const attachment = ws.deserializeAttachment() as Attachment;
    switch (message.type) {
      case "subscribe": {
        attachment.devices = union(attachment.devices, message.devices);
        attachment.patterns = union(attachment.patterns, message.patterns);
        if (message.streams) attachment.streams = attachment.subscribed ? union(attachment.streams, message.streams) : message.streams;
        attachment.subscribed = true;
        this.#save(ws, attachment);
        return this.#snapshot(ws, attachment);
      }
      case "unsubscribe": {
        attachment.devices = attachment.devices.filter((d) => !message.devices?.includes(d));
        attachment.patterns = attachment.patterns.filter((p) => !message.patterns?.includes(p));
        if (message.streams) attachment.streams = attachment.streams.filter((s) => !message.streams?.includes(s));
        return this.#save(ws, attachment);
      }
      case "resume":
        return this.#resume(ws, attachment, message.after);
      case "ack": {
        // Acks are most of a quiet hub's work: kept in memory, written only when the socket's
        // behind-state changes (after hibernation, the last written value is a safe floor).
        const flow = this.#flow(ws, attachment);
        flow.acked = Math.max(flow.acked, Math.min(message.seq, this.#seq));
        if (attachment.behindSince > 0) {
          attachment.acked = flow.acked;
          attachment.behindSince = 0;
          if (flow.pending) {
            const updates = [...flow.pending.values()].sort((a, b) => a.seq - b.seq);
            send(ws, { type: "coalesced", seq: this.#seq, updates });
          } else {
            // The hub hibernated while the client was behind: what it missed is not in memory.
            this.#snapshot(ws, attachment);
          }
          flow.pending = undefined;
          flow.sent = this.#seq;
          this.#save(ws, attachment);
        }
        return;
      }
      case "ping":
        send(ws, { type: "pong" });
        return;
    }
  }

  override async webSocketClose(ws: WebSocket, code: number): Promise<void> {
    this.#flows.delete(ws);
    try {
      ws.close(code === 1005 ? 1000 : code, "closed");
    } catch {
      // Already closed.
    }
  }

  override async webSocketError(ws: WebSocket): Promise<void> {
    this.#flows.delete(ws);
  }

  /** Closes sockets whose token expired (4001) and sockets that stayed behind too long (4008). */
  override async alarm(): Promise<void> {
    const config = readConfig(this.env);
    const now = Date.now();
    for (const ws of this.ctx.getWebSockets()) {
      const a = ws.deserializeAttachment() as Attachment;
      if (a.exp > 0 && a.exp * 1000 <= now) this.#close(ws, CLOSE.tokenExpired, "token expired");
      else if (a.behindSince > 0 && now - a.behindSince > config.LIVE_STALL_SECONDS * 1000)
        this.#close(ws, CLOSE.tooSlow, "cannot keep up");
    }
    await this.#scheduleChecks();
  }

  /** Test and operations view: sockets and their state. */
  async stats(): Promise<{ sockets: number; seq: number; behind: number }> {
    const sockets = this.ctx.getWebSockets();
    return {
      sockets: sockets.length,
      seq: this.#seq,
      behind: sockets.filter((ws) => (ws.deserializeAttachment() as Attachment).behindSince > 0).length,
    };
  }

  #flow(ws: WebSocket, attachment: Attachment): Flow {
    let flow = this.#flows.get(ws);
    if (!flow) {
      // After hibernation the in-memory state is gone; what the client acked is the safe floor.
      flow = { sent: attachment.acked, acked: attachment.acked, pending: undefined };
      this.#flows.set(ws, flow);
    }
    return flow;
  }

  /** Sends an update, or coalesces it when the socket is too far behind. Returns whether it is behind. */
  #deliver(ws: WebSocket, attachment: Attachment, item: LiveUpdate, window: number): boolean {
    const flow = this.#flow(ws, attachment);
    if (attachment.behindSince === 0 && flow.sent - flow.acked < window) {
      if (send(ws, { type: "update", ...item })) flow.sent = item.seq;
      return false;
    }
    if (attachment.behindSince === 0) {
      attachment.behindSince = Date.now();
      attachment.acked = flow.acked;
      this.#save(ws, attachment);
    }
    flow.pending ??= new Map();
    flow.pending.set(`${item.stream}:${item.device ?? item.seq}`, item);
    return true;
  }

  #snapshot(ws: WebSocket, attachment: Attachment): void {
    const devices: Record<string, unknown> = {};
    for (const device of [...this.#devices.keys()].sort()) {
      const state = this.#devices.get(device) as DeviceState;
      if (!selects(attachment, device, state.routing_key ?? undefined)) continue;
      devices[device] = { readings: state.readings, availability: state.availability ?? null };
    }
    const flow = this.#flow(ws, attachment);
    flow.sent = this.#seq;
    send(ws, { type: "snapshot", seq: this.#seq, devices });
  }

  #resume(ws: WebSocket, attachment: Attachment, after: number): void {
    const kept = readConfig(this.env).LIVE_REPLAY_KEPT;
    if (this.#ring.length > kept) this.#ring = this.#ring.slice(-kept);
    const oldest = this.#ring[0]?.seq ?? null;
    // Across a restart: numbers between what storage held and the skipped-to sequence may have been lost.
    const lost = after > this.#persisted && after < this.#floor;
    const complete = !lost && (after >= this.#seq || (oldest !== null && oldest <= after + 1));
    if (!complete || after > this.#seq) {
      this.#snapshot(ws, attachment);
      return;
    }
    for (const item of this.#ring) {
      if (item.seq > after && matches(attachment, item)) send(ws, { type: "update", ...item });
    }
    this.#flow(ws, attachment).sent = this.#seq;
    send(ws, { type: "resumed", seq: this.#seq });
  }

  /** Keeps each device's latest state for snapshots (in memory; persisted lazily). */
  #remember(item: LiveUpdate): void {
    if (!item.device) return;
    const state = this.#devices.get(item.device) ?? { readings: {}, availability: null, routing_key: null };
    if (item.stream === "twin") {
      state.readings = { ...state.readings, ...((item.data.readings as Record<string, unknown>) ?? {}) };
      state.routing_key = item.routing_key ?? state.routing_key;
    } else if (item.stream === "availability") {
      state.availability = { status: item.data.status, since: item.at, reason: item.data.reason };
    } else return;
    this.#devices.set(item.device, state);
    this.#dirty.add(item.device);
  }

  #persistSoon(): void {
    this.#persistTimer ??= setTimeout(() => {
      this.#persistTimer = undefined;
      this.#persist();
    }, PERSIST_MS);
  }

  /** One block row for the updates since the last persist, one row per device that changed. */
  #persist(): void {
    const sql = this.ctx.storage.sql;
    if (this.#unpersisted.length > 0) {
      const block = this.#unpersisted.slice(-readConfig(this.env).LIVE_REPLAY_KEPT);
      sql.exec(
        `INSERT INTO update_blocks (slot, last, body) VALUES (?, ?, ?)
         ON CONFLICT (slot) DO UPDATE SET last = excluded.last, body = excluded.body`,
        this.#nextSlot,
        (block.at(-1) as LiveUpdate).seq,
        JSON.stringify(block),
      );
      this.#nextSlot = (this.#nextSlot + 1) % BLOCK_SLOTS;
      this.#persisted = (block.at(-1) as LiveUpdate).seq;
      this.#unpersisted = [];
    }
    for (const device of this.#dirty) {
      const state = this.#devices.get(device);
      if (!state) continue;
      sql.exec(
        `INSERT INTO devices (device, readings, availability, routing_key) VALUES (?, ?, ?, ?)
         ON CONFLICT (device) DO UPDATE SET readings = excluded.readings, availability = excluded.availability,
           routing_key = excluded.routing_key`,
        device,
        JSON.stringify(state.readings),
        state.availability === null ? null : JSON.stringify(state.availability),
        state.routing_key,
      );
    }
    this.#dirty.clear();
  }

  #save(ws: WebSocket, attachment: Attachment): void {
    ws.serializeAttachment(attachment);
  }

  #close(ws: WebSocket, code: number, reason: string): void {
    this.#flows.delete(ws);
    try {
      ws.close(code, reason);
    } catch {
      // Already closing.
    }
  }

  async #scheduleChecks(): Promise<void> {
    const config = readConfig(this.env);
    let next = Number.POSITIVE_INFINITY;
    for (const ws of this.ctx.getWebSockets()) {
      const a = ws.deserializeAttachment() as Attachment;
      if (a.exp > 0) next = Math.min(next, a.exp * 1000);
      if (a.behindSince > 0) next = Math.min(next, a.behindSince + config.LIVE_STALL_SECONDS * 1000 + 100);
    }
    if (!Number.isFinite(next)) return;
    const current = await this.ctx.storage.getAlarm();
    if (current === null || current > next) await this.ctx.storage.setAlarm(Math.max(next, Date.now() + 10));
  }
}

/** Whether a device (with its routing key) is within a socket's subscription. */
function selects(a: Attachment, device: string | undefined, routingKey: string | undefined): boolean {
  if (a.devices.length === 0 && a.patterns.length === 0) return true;
  if (device !== undefined && a.devices.includes(device)) return true;
  return routingKey !== undefined && a.patterns.some((p) => matchesPattern(p, routingKey));
}

function matches(a: Attachment, item: LiveUpdate): boolean {
  if (!a.streams.includes(item.stream)) return false;
  if (item.stream === "dead_letter") return true;
  return selects(a, item.device, item.routing_key);
}

function union<T extends string>(a: T[], b: T[] | undefined): T[] {
  return b ? [...new Set([...a, ...b])] : a;
}

/** Sends JSON; a socket that fails is closed with 1011 and skipped (partyserver's rule). */
function send(ws: WebSocket, message: unknown): boolean {
  if (ws.readyState !== WebSocket.OPEN) return false;
  try {
    ws.send(JSON.stringify(message));
    return true;
  } catch {
    try {
      ws.close(CLOSE.internal, "send failed");
    } catch {}
    return false;
  }
}
