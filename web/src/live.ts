/**
 * The live client (docs/live.md): one WebSocket per hub the dashboard shows — each room, the
 * `unassigned` devices, and `system` for dead letters. Per socket it subscribes, resumes after a
 * reconnect from the last sequence number it handled, acknowledges (every ACK_EVERY updates or
 * every ACK_INTERVAL_MS), keeps the socket alive with pings, and reconnects with jittered
 * exponential backoff, reacting to the hub's close codes:
 *
 *   4001 token expired → refresh the access token, reconnect at once, resume
 *   4003 forbidden     → stop; the dashboard shows the login screen
 *   4008 too slow      → reconnect and take a fresh snapshot (no resume)
 *   1011 hub failed, 1006 gone, anything else → reconnect with backoff, resume
 *   1001 going away   → reconnect soon, resume
 *
 * Nothing here touches the DOM: sockets, clocks and randomness are injected, so the tests drive
 * it with fakes (test/browser/live.test.ts).
 */
import type { Availability, LiveStream, LiveUpdate, Reading } from "./types.ts";

export type ConnectionState = "connecting" | "live" | "reconnecting" | "offline";

export interface Selection {
  devices?: string[];
  patterns?: string[];
  streams?: LiveStream[];
}

export interface SnapshotDevice {
  readings?: Record<string, Reading>;
  availability?: Availability | null;
}

export interface Snapshot {
  type: "snapshot";
  seq: number;
  devices: Record<string, SnapshotDevice>;
}

/** One update as the hub sends it (shared/schemas/api/live.ts: the hub's own HubUpdate plus its seq). */
export type Update = LiveUpdate;

export interface HubEvents {
  /** The current state of the hub's devices; after a reconnect it replaces what was known. */
  snapshot(hub: string, snapshot: Snapshot): void;
  /** One update, in seq order. `replayed`: it happened while the socket was away. */
  update(hub: string, update: Update, replayed: boolean): void;
  state?(hub: string, state: ConnectionState): void;
  error?(hub: string, error: { code: string; message: string }): void;
}

/** The part of a browser WebSocket this client uses. */
export interface SocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((event: unknown) => void) | null;
  onmessage: ((event: { data: unknown }) => void) | null;
  onclose: ((event: { code: number; reason: string }) => void) | null;
  onerror: ((event: unknown) => void) | null;
}

export type SocketFactory = (url: string, protocols: string[]) => SocketLike;

export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export interface HubSocketOptions {
  /** ws:// or wss:// URL of /v1/live, without the hub parameter. */
  url: string;
  hub: string;
  /** A valid access token (refreshed by the caller when close to expiry). Rejects when the user must log in again. */
  accessToken(): Promise<string>;
  /** A new access token now (after 4001). Rejects when the user must log in again. */
  refreshToken(): Promise<string>;
  /** The session is over (4003, or no token can be had): the dashboard shows the login screen. */
  unauthorized(reason: string): void;
  /**
   * Awaited before reconnecting after an attempt that never opened: a refused upgrade (401, a
   * revoked token) looks like a network failure to a browser, so the app asks over HTTP. Rejects
   * with an auth failure when the session is over; anything else just lets the backoff go on.
   */
  checkAuth?(): Promise<void>;
  events: HubEvents;
  selection?: Selection;
  createSocket?: SocketFactory;
  clock?: Clock;
  random?: () => number;
  backoff?: { initialMs: number; maxMs: number };
  ackEvery?: number;
  ackIntervalMs?: number;
  pingIntervalMs?: number;
  /** The state reads `offline` rather than `reconnecting` once more than this many attempts in a row failed. */
  offlineAfter?: number;
}

export const CLOSE = { tokenExpired: 4001, forbidden: 4003, tooSlow: 4008, internal: 1011, goingAway: 1001 } as const;
const SUBPROTOCOL = "edgemesh.v1";
const OPEN = 1;

const realClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
};

/** Full-jitter exponential backoff: a random delay up to min(max, initial × 2^attempt), never under a tenth of initial. */
export function backoffDelay(attempt: number, random: () => number, initialMs = 500, maxMs = 8000): number {
  const ceiling = Math.min(maxMs, initialMs * 2 ** Math.max(0, attempt));
  return Math.max(initialMs / 10, Math.round(random() * ceiling));
}

export function liveUrl(base: string, hub: string): string {
  const url = new URL(base);
  url.searchParams.set("hub", hub);
  return url.toString();
}

/** One socket to one hub, reconnecting until stopped. */
export class HubSocket {
  readonly hub: string;
  #options: HubSocketOptions;
  #clock: Clock;
  #random: () => number;
  #socket: SocketLike | undefined;
  #state: ConnectionState = "connecting";
  #stopped = false;
  #attempt = 0;
  #neverOpened = 0;
  #everLive = false;
  #reconnectTimer: unknown;
  #ackTimer: unknown;
  #pingTimer: unknown;
  /** Highest update seq handled (updates and coalesced batches). */
  #lastUpdateSeq = -1;
  /** Seq of the last snapshot of this connection. */
  #snapshotSeq = -1;
  /** Resume from here on the next connection; undefined takes a fresh snapshot only. */
  #resumeAfter: number | undefined;
  #unacked = 0;
  #lastMessageAt = 0;

  constructor(options: HubSocketOptions) {
    this.hub = options.hub;
    this.#options = options;
    this.#clock = options.clock ?? realClock;
    this.#random = options.random ?? Math.random;
  }

  get state(): ConnectionState {
    return this.#state;
  }

  /** The highest seq this client has handled (what it would resume after). */
  get seq(): number {
    return Math.max(this.#lastUpdateSeq, this.#snapshotSeq);
  }

  start(): void {
    this.#stopped = false;
    void this.#connect();
  }

  stop(): void {
    this.#stopped = true;
    this.#clearTimers();
    const socket = this.#socket;
    this.#socket = undefined;
    if (socket) {
      socket.onclose = null;
      socket.onmessage = null;
      try {
        socket.close(1000, "bye");
      } catch {}
    }
    this.#setState("offline");
  }

  /** Skips the backoff wait (the browser came back online, the user clicked retry). */
  reconnectNow(): void {
    if (this.#stopped || this.#socket) return;
    this.#clock.clearTimeout(this.#reconnectTimer);
    this.#reconnectTimer = undefined;
    void this.#connect();
  }

  async #connect(): Promise<void> {
    if (this.#stopped) return;
    if (!this.#everLive && this.#attempt === 0) this.#setState("connecting");
    let token: string;
    try {
      token = await this.#options.accessToken();
    } catch (error) {
      if (isAuthFailure(error)) {
        this.#options.unauthorized("no access token");
        this.stop();
      } else this.#scheduleReconnect();
      return;
    }
    if (this.#stopped) return;
    if (this.#neverOpened > 0 && this.#options.checkAuth) {
      try {
        await this.#options.checkAuth();
      } catch (error) {
        if (isAuthFailure(error)) {
          this.#options.unauthorized("the edge no longer accepts this session");
          this.stop();
          return;
        }
      }
      if (this.#stopped) return;
    }
    let socket: SocketLike;
    try {
      socket = (this.#options.createSocket ?? browserSocket)(liveUrl(this.#options.url, this.hub), [SUBPROTOCOL, `bearer.${token}`]);
    } catch {
      this.#scheduleReconnect();
      return;
    }
    this.#socket = socket;
    let opened = false;
    socket.onopen = () => {
      opened = true;
      this.#neverOpened = 0;
      this.#lastMessageAt = this.#clock.now();
      this.#snapshotSeq = -1;
      this.#send({ type: "subscribe", ...(this.#options.selection ?? {}) });
      if (this.#resumeAfter !== undefined && this.#resumeAfter >= 0) this.#send({ type: "resume", after: this.#resumeAfter });
      this.#schedulePing();
    };
    socket.onmessage = (event) => this.#onMessage(event.data);
    socket.onerror = () => {};
    socket.onclose = (event) => {
      if (this.#socket !== socket) return;
      this.#socket = undefined;
      this.#clearTimers();
      if (!opened) this.#neverOpened++;
      this.#onClose(event.code);
    };
  }

  #onClose(code: number): void {
    if (this.#stopped) return;
    // Whatever happens next, resume from what was handled (4008 says otherwise below).
    if (this.seq >= 0) this.#resumeAfter = this.seq;
    switch (code) {
      case CLOSE.tokenExpired:
        this.#setState("reconnecting");
        this.#options.refreshToken().then(
          () => void this.#connect(),
          (error: unknown) => {
            if (isAuthFailure(error)) {
              this.#options.unauthorized("the session expired");
              this.stop();
            } else this.#scheduleReconnect();
          },
        );
        return;
      case CLOSE.forbidden:
        this.#options.unauthorized("the hub refused this token");
        this.stop();
        return;
      case CLOSE.tooSlow:
        this.#resumeAfter = undefined;
        this.#attempt = 0;
        this.#scheduleReconnect();
        return;
      case CLOSE.goingAway:
        this.#attempt = 0;
        this.#scheduleReconnect();
        return;
      default:
        this.#scheduleReconnect();
    }
  }

  #scheduleReconnect(): void {
    if (this.#stopped) return;
    const delay = backoffDelay(this.#attempt, this.#random, this.#options.backoff?.initialMs, this.#options.backoff?.maxMs);
    this.#attempt++;
    this.#setState(this.#attempt > (this.#options.offlineAfter ?? 3) ? "offline" : "reconnecting");
    this.#clock.clearTimeout(this.#reconnectTimer);
    this.#reconnectTimer = this.#clock.setTimeout(() => {
      this.#reconnectTimer = undefined;
      void this.#connect();
    }, delay);
  }

  #onMessage(raw: unknown): void {
    this.#lastMessageAt = this.#clock.now();
    let message: { type?: string } & Record<string, unknown>;
    try {
      message = JSON.parse(typeof raw === "string" ? raw : String(raw));
    } catch {
      return;
    }
    const events = this.#options.events;
    switch (message.type) {
      case "snapshot": {
        const snapshot = message as unknown as Snapshot;
        this.#snapshotSeq = snapshot.seq;
        this.#live();
        events.snapshot(this.hub, snapshot);
        this.#ackSoon(true);
        return;
      }
      case "update":
        this.#handleUpdate(message as unknown as Update);
        this.#ackSoon(false);
        return;
      case "coalesced": {
        const updates = (message.updates as Update[] | undefined) ?? [];
        for (const update of updates) this.#handleUpdate(update);
        this.#lastUpdateSeq = Math.max(this.#lastUpdateSeq, Number(message.seq) || 0);
        this.#ackSoon(true);
        return;
      }
      case "resumed":
        this.#live();
        if (typeof message.seq === "number") this.#lastUpdateSeq = Math.max(this.#lastUpdateSeq, message.seq);
        this.#ackSoon(true);
        return;
      case "error":
        events.error?.(this.hub, { code: String(message.code), message: String(message.message) });
        return;
      default:
        return; // pong and anything newer
    }
  }

  #handleUpdate(update: Update): void {
    if (update.seq <= this.#lastUpdateSeq) return; // seen already
    this.#lastUpdateSeq = update.seq;
    // Replayed after a reconnect: the snapshot already has the devices' state; events still count.
    const replayed = update.seq <= this.#snapshotSeq;
    if (replayed && (update.stream === "twin" || update.stream === "availability")) return;
    this.#options.events.update(this.hub, update, replayed);
  }

  #live(): void {
    this.#attempt = 0;
    this.#everLive = true;
    this.#setState("live");
  }

  #ackSoon(now: boolean): void {
    this.#unacked++;
    if (now || this.#unacked >= (this.#options.ackEvery ?? 100)) {
      this.#ack();
      return;
    }
    if (this.#ackTimer === undefined) {
      this.#ackTimer = this.#clock.setTimeout(() => {
        this.#ackTimer = undefined;
        this.#ack();
      }, this.#options.ackIntervalMs ?? 5000);
    }
  }

  #ack(): void {
    this.#clock.clearTimeout(this.#ackTimer);
    this.#ackTimer = undefined;
    if (this.#unacked === 0 || this.seq < 0) return;
    this.#unacked = 0;
    this.#send({ type: "ack", seq: this.seq });
  }

  #schedulePing(): void {
    const every = this.#options.pingIntervalMs ?? 20_000;
    this.#pingTimer = this.#clock.setTimeout(() => {
      const socket = this.#socket;
      if (!socket) return;
      if (this.#clock.now() - this.#lastMessageAt > every * 2) {
        // Nothing heard for two pings: the connection is dead without having said so.
        socket.onclose = null;
        this.#socket = undefined;
        try {
          socket.close(4000, "no answer to ping");
        } catch {}
        this.#clearTimers();
        this.#onClose(1006);
        return;
      }
      this.#send({ type: "ping" });
      this.#schedulePing();
    }, every);
  }

  #send(message: unknown): void {
    const socket = this.#socket;
    if (!socket || socket.readyState !== OPEN) return;
    try {
      socket.send(JSON.stringify(message));
    } catch {}
  }

  #clearTimers(): void {
    this.#clock.clearTimeout(this.#reconnectTimer);
    this.#clock.clearTimeout(this.#ackTimer);
    this.#clock.clearTimeout(this.#pingTimer);
    this.#reconnectTimer = this.#ackTimer = this.#pingTimer = undefined;
  }

  #setState(state: ConnectionState): void {
    if (state === this.#state) return;
    this.#state = state;
    this.#options.events.state?.(this.hub, state);
  }
}

/** An error that means "log in again" (the session module throws one). */
export function isAuthFailure(error: unknown): boolean {
  return typeof error === "object" && error !== null && (error as { authRequired?: boolean }).authRequired === true;
}

function browserSocket(url: string, protocols: string[]): SocketLike {
  return new WebSocket(url, protocols) as unknown as SocketLike;
}

/** The worst state wins: one hub reconnecting makes the whole dashboard "reconnecting". */
export function combinedState(states: Iterable<ConnectionState>): ConnectionState {
  let result: ConnectionState | undefined;
  const rank: Record<ConnectionState, number> = { live: 0, connecting: 1, reconnecting: 2, offline: 3 };
  for (const state of states) if (result === undefined || rank[state] > rank[result]) result = state;
  return result ?? "offline";
}

export type LiveOptions = Omit<HubSocketOptions, "hub" | "events"> & {
  events: Omit<HubEvents, "state"> & { state?(state: ConnectionState): void };
};

/** Every hub the dashboard watches, with one combined connection state. */
export class LiveConnection {
  #options: LiveOptions;
  #sockets = new Map<string, HubSocket>();
  #state: ConnectionState = "offline";

  constructor(options: LiveOptions) {
    this.#options = options;
  }

  get state(): ConnectionState {
    return this.#state;
  }

  get hubs(): string[] {
    return [...this.#sockets.keys()];
  }

  socket(hub: string): HubSocket | undefined {
    return this.#sockets.get(hub);
  }

  /** Opens sockets for new hubs and closes those no longer wanted. */
  setHubs(hubs: Iterable<string>): void {
    const wanted = new Set(hubs);
    for (const [hub, socket] of this.#sockets) {
      if (!wanted.has(hub)) {
        socket.stop();
        this.#sockets.delete(hub);
      }
    }
    for (const hub of wanted) {
      if (this.#sockets.has(hub)) continue;
      const socket = new HubSocket({
        ...this.#options,
        hub,
        events: { ...this.#options.events, state: () => this.#update() },
      });
      this.#sockets.set(hub, socket);
      socket.start();
    }
    this.#update();
  }

  reconnectNow(): void {
    for (const socket of this.#sockets.values()) socket.reconnectNow();
  }

  stop(): void {
    for (const socket of this.#sockets.values()) socket.stop();
    this.#sockets.clear();
    this.#update();
  }

  #update(): void {
    const state = combinedState([...this.#sockets.values()].map((s) => s.state));
    if (state === this.#state) return;
    this.#state = state;
    this.#options.events.state?.(state);
  }
}
