/**
 * Many live subscribers (docs/live.md) in one process, for the fan-out benchmark: each socket
 * connects with the `edgemesh.v1` and `bearer.<jwt>` subprotocols (as the dashboard does),
 * subscribes, waits for its snapshot, and then acknowledges as the dashboard does (every 100
 * updates, or every second). Every update and coalesced batch is handed to `onUpdate` with the
 * moment it was received. Node's built-in WebSocket client (undici).
 */

import type { LiveServerMessage, LiveUpdate } from "../../shared/schemas/api/live.ts";

export type { LiveUpdate };

export interface PoolOptions {
  /** ws://127.0.0.1:port/v1/live */
  url: string;
  hub: string;
  token: string;
  count: number;
  /** Sockets being opened at once. */
  connectConcurrency?: number;
  streams?: string[];
  onUpdate(update: LiveUpdate, receivedAt: number, coalesced: boolean): void;
}

interface Subscriber {
  ws: WebSocket;
  lastSeq: number;
  unacked: number;
}

/** Milliseconds on the clock every part of the benchmark shares. */
export const now = () => performance.timeOrigin + performance.now();

export class SubscriberPool {
  readonly options: PoolOptions;
  readonly subscribers: Subscriber[] = [];
  readonly closes = new Map<number, number>();
  updates = 0;
  coalescedMessages = 0;
  errors = 0;
  #ackTimer: ReturnType<typeof setInterval> | undefined;
  #closing = false;

  constructor(options: PoolOptions) {
    this.options = options;
  }

  /** Opens every socket (bounded concurrency) and resolves when each has its snapshot. */
  async open(timeoutMs = 60_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    const concurrency = this.options.connectConcurrency ?? 50;
    let next = 0;
    const worker = async () => {
      while (next < this.options.count) {
        next++;
        if (Date.now() > deadline) throw new Error(`opening ${this.options.count} sockets took longer than ${timeoutMs} ms`);
        this.subscribers.push(await this.#connect(Math.max(1000, deadline - Date.now())));
      }
    };
    await Promise.all(Array.from({ length: Math.min(concurrency, this.options.count) }, worker));
    this.#ackTimer = setInterval(() => {
      for (const s of this.subscribers) this.#ack(s);
    }, 1000);
  }

  #connect(timeoutMs: number): Promise<Subscriber> {
    const url = new URL(this.options.url);
    url.searchParams.set("hub", this.options.hub);
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, ["edgemesh.v1", `bearer.${this.options.token}`]);
      const subscriber: Subscriber = { ws, lastSeq: 0, unacked: 0 };
      let ready = false;
      const timer = setTimeout(() => {
        ws.close();
        reject(new Error(`socket ${this.subscribers.length + 1} got no snapshot within ${timeoutMs} ms`));
      }, timeoutMs);
      ws.onopen = () => ws.send(JSON.stringify({ type: "subscribe", streams: this.options.streams ?? ["twin"] }));
      ws.onerror = () => {
        this.errors++;
        if (!ready) {
          clearTimeout(timer);
          reject(new Error(`socket ${this.subscribers.length + 1} failed to connect to ${url}`));
        }
      };
      ws.onclose = (event) => {
        if (!this.#closing) this.closes.set(event.code, (this.closes.get(event.code) ?? 0) + 1);
      };
      ws.onmessage = (event) => {
        const receivedAt = now();
        const message = JSON.parse(String(event.data)) as LiveServerMessage;
        switch (message.type) {
          case "snapshot":
            subscriber.lastSeq = message.seq ?? 0;
            if (!ready) {
              ready = true;
              clearTimeout(timer);
              resolve(subscriber);
            }
            return;
          case "update":
            this.updates++;
            this.options.onUpdate(message, receivedAt, false);
            this.#handled(subscriber, message.seq);
            return;
          case "coalesced":
            this.coalescedMessages++;
            for (const update of message.updates ?? []) this.options.onUpdate(update, receivedAt, true);
            this.#handled(subscriber, message.seq ?? subscriber.lastSeq);
            return;
          default:
            return;
        }
      };
    });
  }

  #handled(s: Subscriber, seq: number): void {
    s.lastSeq = Math.max(s.lastSeq, seq);
    if (++s.unacked >= 100) this.#ack(s);
  }

  #ack(s: Subscriber): void {
    if (s.unacked === 0 || s.ws.readyState !== WebSocket.OPEN) return;
    s.unacked = 0;
    s.ws.send(JSON.stringify({ type: "ack", seq: s.lastSeq }));
  }

  close(): void {
    this.#closing = true;
    clearInterval(this.#ackTimer);
    for (const s of this.subscribers) {
      try {
        s.ws.close(1000, "done");
      } catch {}
    }
  }
}
