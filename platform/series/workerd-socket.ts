/**
 * A TCP socket for postgres.js on workerd (its `socket` option), over `cloudflare:sockets`.
 *
 * postgres.js ships its own socket polyfill for Workers, but that one rejects a promise nobody
 * can catch every time a connection closes (porsager/postgres#1202, #1196): its read loop emits
 * 'error' after the client removed its listeners. That leaves one unhandled rejection per request
 * in production and fails vitest runs. This socket reports the end of a connection it was asked
 * to close as a plain close, and an error only to a listener that is there to hear it.
 *
 * Plain TCP only: a Worker talks to Hyperdrive, which holds the TLS connection to the database.
 */
import { connect } from "cloudflare:sockets";

type Listener = (...args: unknown[]) => void;

/** The part of Node's EventEmitter postgres.js uses on a socket. */
class Emitter {
  #listeners = new Map<string, { fn: Listener; once: boolean }[]>();

  on(event: string, fn: Listener): this {
    this.#listeners.set(event, [...(this.#listeners.get(event) ?? []), { fn, once: false }]);
    return this;
  }

  once(event: string, fn: Listener): this {
    this.#listeners.set(event, [...(this.#listeners.get(event) ?? []), { fn, once: true }]);
    return this;
  }

  removeListener(event: string, fn: Listener): this {
    this.#listeners.set(
      event,
      (this.#listeners.get(event) ?? []).filter((l) => l.fn !== fn),
    );
    return this;
  }

  removeAllListeners(event?: string): this {
    if (event === undefined) this.#listeners.clear();
    else this.#listeners.delete(event);
    return this;
  }

  listenerCount(event: string): number {
    return this.#listeners.get(event)?.length ?? 0;
  }

  emit(event: string, ...args: unknown[]): boolean {
    const listeners = this.#listeners.get(event) ?? [];
    this.#listeners.set(
      event,
      listeners.filter((l) => !l.once),
    );
    for (const l of listeners) l.fn(...args);
    return listeners.length > 0;
  }
}

/** nodejs_compat's Buffer: postgres.js reads its protocol messages with Buffer methods. */
function toBuffer(bytes: Uint8Array): Uint8Array {
  const NodeBuffer = (globalThis as { Buffer?: { from(bytes: Uint8Array): Uint8Array } }).Buffer;
  if (!NodeBuffer) throw new Error("postgres.js needs Buffer: enable the nodejs_compat compatibility flag in wrangler.toml");
  return NodeBuffer.from(bytes);
}

export class WorkerdSocket extends Emitter {
  readyState: "open" | "closed" = "open";
  readonly #raw: Socket;
  readonly #writer: WritableStreamDefaultWriter<Uint8Array>;
  #closing = false;

  constructor(raw: Socket) {
    super();
    this.#raw = raw;
    this.#writer = raw.writable.getWriter();
    void this.#read(raw.readable.getReader());
  }

  async #read(reader: ReadableStreamDefaultReader<Uint8Array>): Promise<void> {
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        this.emit("data", toBuffer(value));
      }
      this.#finish();
    } catch (error) {
      this.#finish(error);
    }
  }

  #finish(error?: unknown): void {
    if (this.readyState === "closed") return;
    this.readyState = "closed";
    const failed = error !== undefined && !this.#closing;
    if (failed && this.listenerCount("error") > 0) this.emit("error", error);
    this.emit("close", failed);
  }

  #shut(): void {
    this.#closing = true;
    this.#raw.close().catch(() => {});
  }

  write(data: Uint8Array, callback?: () => void): boolean {
    this.#writer.write(data).then(
      () => callback?.(),
      (error: unknown) => this.#finish(error),
    );
    return true;
  }

  end(data?: Uint8Array): void {
    this.#closing = true;
    const shut = () => this.#shut();
    (data ? this.#writer.write(data) : Promise.resolve()).then(shut, shut);
  }

  destroy(): void {
    this.#shut();
    this.#finish();
  }

  // Back-pressure for COPY streams, which the series store does not use.
  pause(): void {}
  resume(): void {}
}

/** postgres.js's `socket` option: connects before it answers, as the option requires. */
export async function workerdSocket(options: { host: readonly string[]; port: readonly number[]; ssl?: unknown }): Promise<WorkerdSocket> {
  if (options.ssl) throw new Error("the workerd socket speaks plain TCP to Hyperdrive; remove sslmode from the connection string");
  const hostname = options.host[0];
  const port = options.port[0];
  if (!hostname || !port) throw new Error("the Postgres connection string names no host and port");
  const raw = connect({ hostname, port });
  raw.closed.catch(() => {});
  await raw.opened;
  return new WorkerdSocket(raw);
}

/** postgres.js's options do not type `socket`; this adds it where a client is made on workerd. */
export function withWorkerdSocket<T extends object>(options: T): T {
  return { ...options, socket: workerdSocket };
}
