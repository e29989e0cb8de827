/**
 * Metering inside a Durable Object (shared/billing.ts has the rest): `meterDurableObject(Class)`
 * returns a subclass whose constructor hands the object a metered `ctx` (its SQLite cursor
 * counts `rowsRead`/`rowsWritten`) and a metered `env` (D1, queues, R2 and the stubs of other
 * objects), and whose `alarm()` and `webSocketMessage()` count as Durable Object requests (an
 * incoming WebSocket message is billed 1/20 of a request: counted as `do_ws_messages_in`).
 * RPC calls and fetches are counted by the caller's metered stub, once per call, as Cloudflare
 * bills them. functions/index.ts exports the metered classes under the classes' own names.
 */
import { countBillable, meterEnv, UNMETERED } from "./billing";
import { setLogLevel } from "./log";

type AnyFn = (...args: unknown[]) => unknown;

/** Counts a cursor's rows as far as it has run: now (a write runs at exec) and after each read of it. */
function meterCursor<T extends Record<string, SqlStorageValue>>(cursor: SqlStorageCursor<T>): SqlStorageCursor<T> {
  let read = 0;
  let written = 0;
  const settle = () => {
    const r = cursor.rowsRead;
    const w = cursor.rowsWritten;
    if (r > read) countBillable("do_rows_read", r - read);
    if (w > written) countBillable("do_rows_written", w - written);
    read = r;
    written = w;
  };
  settle();
  const after =
    (fn: AnyFn) =>
    (...args: unknown[]) => {
      try {
        return Reflect.apply(fn, cursor, args);
      } finally {
        settle();
      }
    };
  const proxy: SqlStorageCursor<T> = new Proxy(cursor, {
    get(t, prop) {
      if (prop === UNMETERED) return t;
      const value = Reflect.get(t, prop, t);
      if (typeof value !== "function") return value;
      if (prop === Symbol.iterator) return () => proxy;
      if (prop === "raw")
        return (...args: unknown[]) => {
          const iterator = Reflect.apply(value as AnyFn, t, args) as IterableIterator<unknown> & { toArray?: AnyFn };
          const wrapped: IterableIterator<unknown> & { toArray?: AnyFn } = {
            next: after(iterator.next.bind(iterator) as AnyFn) as () => IteratorResult<unknown>,
            [Symbol.iterator]: () => wrapped,
          };
          if (typeof iterator.toArray === "function") wrapped.toArray = after(iterator.toArray.bind(iterator));
          return wrapped;
        };
      if (prop === "next" || prop === "toArray" || prop === "one") return after(value as AnyFn);
      return (value as AnyFn).bind(t);
    },
  });
  return proxy;
}

/** The objects whose SQLite cursor is metered already (an object is constructed again after an eviction). */
const meteredSql = new WeakSet<object>();

/**
 * Meters the object's own `ctx.storage.sql.exec`, in place, before its constructor runs: every
 * part of the object — including what its constructor hands the real `ctx` to (a core, an outbox)
 * — then counts its rows. (A metered copy of `ctx` would reach only code that reads `this.ctx`
 * later, and the runtime's base class takes only the real state.)
 */
function meterSqlInPlace(ctx: DurableObjectState): void {
  const sql = ctx.storage.sql;
  if (meteredSql.has(sql)) return;
  const exec = sql.exec.bind(sql);
  Object.defineProperty(sql, "exec", {
    value: (query: string, ...bindings: SqlStorageValue[]) => meterCursor(exec(query, ...bindings)),
    configurable: true,
    writable: true,
  });
  meteredSql.add(sql);
}

// biome-ignore lint/suspicious/noExplicitAny: a Durable Object class of any constructor shape
type DurableObjectClass = abstract new (ctx: DurableObjectState, env: any) => object;

/** The class, metered: same name, same methods; see the module comment. */
export function meterDurableObject<C extends DurableObjectClass>(Base: C): C {
  const Concrete = Base as unknown as new (ctx: DurableObjectState, env: object) => object;
  class Metered extends Concrete {
    constructor(ctx: DurableObjectState, env: object) {
      // Metered before the object's own constructor runs, so that what it keeps of `ctx` and
      // `env` (a core, an outbox, stubs of other objects) is metered too: its queue sends, its
      // calls to other objects and its SQLite rows all count.
      meterSqlInPlace(ctx);
      const metered = meterEnv(env);
      super(ctx, metered);
      setLogLevel((env as { LOG_LEVEL?: unknown }).LOG_LEVEL);
      Object.defineProperty(this, "env", { value: metered, writable: false, configurable: true, enumerable: false });
    }
  }
  const proto = Base.prototype as Record<string, unknown>;
  const own = Metered.prototype as unknown as Record<string, unknown>;
  const alarm = proto.alarm;
  if (typeof alarm === "function")
    own.alarm = function (this: unknown, ...args: unknown[]) {
      countBillable("do_requests");
      return Reflect.apply(alarm as AnyFn, this, args);
    };
  const onMessage = proto.webSocketMessage;
  if (typeof onMessage === "function")
    own.webSocketMessage = function (this: unknown, ...args: unknown[]) {
      countBillable("do_ws_messages_in");
      return Reflect.apply(onMessage as AnyFn, this, args);
    };
  Object.defineProperty(Metered, "name", { value: Base.name });
  return Metered as unknown as C;
}
