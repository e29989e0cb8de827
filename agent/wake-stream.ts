/**
 * The agent's WebSocket to the edge (`GET /v1/agent/stream`): the edge says which device has
 * commands or a new desired state, and the downlink fetches them at once. While it is connected
 * the per-device long polls stop; when it drops they take over again, so the socket only ever
 * saves requests and latency — a wake-up lost with it costs nothing but the next poll's delay.
 */
import { AgentWake } from "../shared/schemas/agent.ts";
import { backoffMs } from "./edge-client.ts";
import type { Logger } from "./log.ts";

export interface WakeHandlers {
  /** The socket opened: every device may have missed wake-ups. */
  connected(): void;
  disconnected(): void;
  wake(device: string, reason: "commands" | "desired"): void;
}

/** Keeps NAT and proxy timers from closing an idle socket; the edge answers without waking up. */
const PING_MS = 30_000;

export class WakeStream {
  #socket: WebSocket | undefined;
  #connected = false;
  #running = false;
  #attempt = 0;
  #ping: NodeJS.Timeout | undefined;
  #retry: NodeJS.Timeout | undefined;
  readonly #url: string;
  readonly #token: string;
  readonly #handlers: WakeHandlers;
  readonly #log: Logger;
  readonly #retryInitialMs: number;
  readonly #retryMaxMs: number;

  constructor(edgeUrl: string, token: string, handlers: WakeHandlers, log: Logger, retry: { retryInitialMs: number; retryMaxMs: number }) {
    this.#url = `${edgeUrl.replace(/^http/, "ws").replace(/\/+$/, "")}/v1/agent/stream`;
    this.#token = token;
    this.#handlers = handlers;
    this.#log = log;
    this.#retryInitialMs = retry.retryInitialMs;
    this.#retryMaxMs = retry.retryMaxMs;
  }

  get connected(): boolean {
    return this.#connected;
  }

  start(): void {
    this.#running = true;
    this.#open();
  }

  stop(): void {
    this.#running = false;
    clearTimeout(this.#retry);
    clearInterval(this.#ping);
    this.#socket?.close(1000, "agent stopping");
  }

  #open(): void {
    // Node's WebSocket (undici) takes headers: the agent token travels as on every other route.
    const socket = new WebSocket(this.#url, { headers: { authorization: `Bearer ${this.#token}` } } as unknown as string[]);
    this.#socket = socket;
    socket.addEventListener("message", (event) => {
      const frame = AgentWake.safeParse(parse(String(event.data)));
      if (!frame.success) return;
      if (frame.data.type === "hello") {
        this.#attempt = 0;
        this.#connected = true;
        this.#log.info("wake-up stream to the edge open");
        this.#handlers.connected();
      } else this.#handlers.wake(frame.data.device, frame.data.reason);
    });
    socket.addEventListener("open", () => {
      clearInterval(this.#ping);
      this.#ping = setInterval(() => socket.readyState === WebSocket.OPEN && socket.send("ping"), PING_MS);
    });
    socket.addEventListener("close", (event) => {
      clearInterval(this.#ping);
      const was = this.#connected;
      this.#connected = false;
      if (was) this.#handlers.disconnected();
      if (!this.#running) return;
      const delay = backoffMs(this.#attempt++, this.#retryInitialMs, this.#retryMaxMs);
      this.#log.warn("wake-up stream closed; commands are long-polled until it is back", { code: event.code, retry_ms: delay });
      this.#retry = setTimeout(() => this.#open(), delay);
    });
    // An error is followed by close, which reconnects.
    socket.addEventListener("error", () => {});
  }
}

function parse(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
