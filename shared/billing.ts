/**
 * Billable-operation metering: counts, where they happen, the operations Cloudflare bills for —
 * queue operations, D1 and Durable Object SQLite rows, Durable Object requests, R2 operations —
 * by wrapping the bindings ONCE at each entry point (the Worker's fetch/queue/scheduled in
 * functions/index.ts, every Durable Object's constructor through meterDurableObject in
 * shared/billing-do.ts), so no call site changes.
 *
 * The counts go to this isolate's metrics tally (shared/metrics.ts) as
 * `edgemesh_billable_ops_total{kind, source="app"}` and are written with the existing metrics
 * flush; the flush's own D1 writes are counted under `source="metering"` (they are billed too,
 * but they are the meter's, not the pipeline's). Hot-path cost: a Proxy per binding (cached per
 * env object), a closure per statement, one Map update per counted operation.
 *
 * What each kind means and how it is priced: docs/cost.md; the price table is shared/billing-prices.ts.
 */
import { labelText, metrics } from "./metrics";

/** Every kind counted; docs/metrics.md and docs/cost.md describe each. */
export const BILLABLE_KINDS = [
  "worker_invocations",
  "queue_messages_sent",
  "queue_write_ops",
  "queue_read_ops",
  "queue_delete_ops",
  "d1_queries",
  "d1_rows_read",
  "d1_rows_written",
  "do_requests",
  "do_ws_messages_in",
  "do_rows_read",
  "do_rows_written",
  "r2_class_a",
  "r2_class_b",
  "ws_frames_out",
] as const;
export type BillableKind = (typeof BILLABLE_KINDS)[number];

export const BILLABLE_FAMILY = "edgemesh_billable_ops_total";

/** The label text of each kind, computed once (the hot path only looks it up). */
const LABELS = new Map<string, string>();
function labelsOf(kind: BillableKind, source: "app" | "metering"): string {
  const key = `${kind}:${source}`;
  let text = LABELS.get(key);
  if (text === undefined) {
    text = labelText({ kind, source });
    LABELS.set(key, text);
  }
  return text;
}

/** Adds to one kind of this isolate's tally. */
export function countBillable(kind: BillableKind, by = 1, source: "app" | "metering" = "app"): void {
  if (by > 0) metrics.add(BILLABLE_FAMILY, labelsOf(kind, source), by);
}

/** Queues bill per 64 KB of a message, written, read and deleted. */
const QUEUE_UNIT = 64 * 1024;
export function queueUnits(body: unknown): number {
  if (typeof body === "string") return Math.max(1, Math.ceil(body.length / QUEUE_UNIT));
  if (body instanceof ArrayBuffer || ArrayBuffer.isView(body)) return Math.max(1, Math.ceil(body.byteLength / QUEUE_UNIT));
  try {
    return Math.max(1, Math.ceil((JSON.stringify(body)?.length ?? 0) / QUEUE_UNIT));
  } catch {
    return 1;
  }
}

/** The unwrapped binding behind a metered one (the metrics flush writes through it). */
export const UNMETERED = Symbol.for("edgemesh.unmetered");

type AnyFn = (...args: unknown[]) => unknown;

/** A Proxy that forwards everything to `target` (methods bound to it) except what `own` answers. */
function forward<T extends object>(target: T, own: (prop: string | symbol) => unknown): T {
  return new Proxy(target, {
    get(t, prop) {
      if (prop === UNMETERED) return t;
      const mine = own(prop);
      if (mine !== undefined) return mine;
      const value = Reflect.get(t, prop, t);
      return typeof value === "function" ? (value as AnyFn).bind(t) : value;
    },
  });
}

// ---- D1 ------------------------------------------------------------------------------------

function countD1(result: { meta?: { rows_read?: number; rows_written?: number } } | undefined): void {
  countBillable("d1_queries");
  countBillable("d1_rows_read", result?.meta?.rows_read ?? 0);
  countBillable("d1_rows_written", result?.meta?.rows_written ?? 0);
}

const STATEMENT = Symbol("edgemesh.statement");

/** A prepared statement whose every execution is counted (first() and raw() run as all()). */
class MeteredStatement {
  readonly [STATEMENT]: D1PreparedStatement;
  constructor(statement: D1PreparedStatement) {
    this[STATEMENT] = statement;
  }
  bind(...values: unknown[]): MeteredStatement {
    return new MeteredStatement(this[STATEMENT].bind(...values));
  }
  async run<T>(): Promise<D1Result<T>> {
    const result = await this[STATEMENT].run<T>();
    countD1(result);
    return result;
  }
  async all<T>(): Promise<D1Result<T>> {
    const result = await this[STATEMENT].all<T>();
    countD1(result);
    return result;
  }
  /** D1's first() runs the whole statement too; all() gives the rows and the meta. */
  async first<T>(column?: string): Promise<T | null> {
    const { results } = await this.all<Record<string, unknown>>();
    const row = results[0];
    if (row === undefined) return null;
    if (column === undefined) return row as T;
    if (!(column in row)) throw new Error(`D1_COLUMN_NOTFOUND: Column not found (${column})`);
    return row[column] as T;
  }
  async raw<T = unknown[]>(options?: { columnNames?: boolean }): Promise<T[]> {
    const { results } = await this.all<Record<string, unknown>>();
    const rows = results.map((r) => Object.values(r));
    if (options?.columnNames) return [Object.keys(results[0] ?? {}), ...rows] as T[];
    return rows as T[];
  }
}

function realStatement(statement: unknown): D1PreparedStatement {
  return statement instanceof MeteredStatement ? statement[STATEMENT] : (statement as D1PreparedStatement);
}

function meterD1Like<T extends { prepare(q: string): D1PreparedStatement; batch(s: D1PreparedStatement[]): Promise<D1Result[]> }>(
  db: T,
): T {
  return forward(db, (prop) => {
    if (prop === "prepare") return (query: string) => new MeteredStatement(db.prepare(query));
    if (prop === "batch")
      return async (statements: unknown[]) => {
        const results = await db.batch(statements.map(realStatement));
        for (const r of results) countD1(r);
        return results;
      };
    if (prop === "withSession" && typeof (db as unknown as D1Database).withSession === "function")
      return (constraint?: string) => meterD1Like((db as unknown as D1Database).withSession(constraint as D1SessionConstraint));
    return undefined;
  });
}

// ---- Queues, R2, Durable Object stubs ----------------------------------------------------------

function meterQueue(queue: Queue): Queue {
  return forward(queue, (prop) => {
    if (prop === "send")
      return (body: unknown, options?: QueueSendOptions) => {
        countBillable("queue_messages_sent");
        countBillable("queue_write_ops", queueUnits(body));
        return queue.send(body, options);
      };
    if (prop === "sendBatch")
      return (messages: Iterable<MessageSendRequest>, options?: QueueSendBatchOptions) => {
        const list = [...messages];
        countBillable("queue_messages_sent", list.length);
        countBillable(
          "queue_write_ops",
          list.reduce((n, m) => n + queueUnits(m.body), 0),
        );
        return queue.sendBatch(list, options);
      };
    return undefined;
  });
}

const R2_CLASS_A = new Set(["put", "list", "createMultipartUpload", "resumeMultipartUpload"]);
const R2_CLASS_B = new Set(["get", "head"]);

function meterR2(bucket: R2Bucket): R2Bucket {
  return forward(bucket, (prop) => {
    if (typeof prop !== "string") return undefined;
    const kind = R2_CLASS_A.has(prop) ? "r2_class_a" : R2_CLASS_B.has(prop) ? "r2_class_b" : undefined;
    if (!kind || prop === "resumeMultipartUpload") return undefined;
    const method = (bucket as unknown as Record<string, AnyFn>)[prop] as AnyFn;
    return (...args: unknown[]) => {
      countBillable(kind);
      return method.apply(bucket, args);
    };
  });
}

/** Properties of a stub that are not calls into the object. */
const STUB_PLAIN = new Set<string | symbol>(["then", "id", "name", "constructor", "toString", "toJSON", Symbol.toPrimitive]);

/** Every call on a stub is one billed Durable Object request (an RPC session or a fetch). */
function meterStub<T extends object>(stub: T): T {
  return new Proxy(stub, {
    get(t, prop) {
      if (prop === UNMETERED) return t;
      const value = Reflect.get(t, prop, t);
      if (typeof value !== "function" || STUB_PLAIN.has(prop) || typeof prop === "symbol") return value;
      return (...args: unknown[]) => {
        countBillable("do_requests");
        return Reflect.apply(value as AnyFn, t, args);
      };
    },
  });
}

function meterNamespace(ns: DurableObjectNamespace): DurableObjectNamespace {
  return forward(ns, (prop) => {
    if (prop === "get") return (id: DurableObjectId, options?: unknown) => meterStub(ns.get(id, options as never));
    if (prop === "getByName" && typeof (ns as { getByName?: unknown }).getByName === "function")
      return (name: string, options?: unknown) =>
        meterStub((ns as unknown as { getByName(n: string, o?: unknown): object }).getByName(name, options));
    if (prop === "jurisdiction") return (j: DurableObjectJurisdiction) => meterNamespace(ns.jurisdiction(j));
    return undefined;
  });
}

// ---- env ------------------------------------------------------------------------------------

function isFn(value: unknown, ...names: string[]): boolean {
  return typeof value === "object" && value !== null && names.every((n) => typeof (value as Record<string, unknown>)[n] === "function");
}

/** The metered form of one binding, or the binding itself when it is nothing billed. */
function meterBinding(value: unknown): unknown {
  if (isFn(value, "prepare", "batch", "exec")) return meterD1Like(value as D1Database);
  if (isFn(value, "send", "sendBatch")) return meterQueue(value as Queue);
  if (isFn(value, "idFromName", "get")) return meterNamespace(value as DurableObjectNamespace);
  if (isFn(value, "put", "get", "head", "list", "createMultipartUpload")) return meterR2(value as R2Bucket);
  return value;
}

const METERED_ENVS = new WeakMap<object, object>();

/** env with every billed binding metered; the same object for the same env (cached). */
export function meterEnv<E extends object>(env: E): E {
  if ((env as Record<symbol, unknown>)[UNMETERED]) return env;
  const cached = METERED_ENVS.get(env);
  if (cached) return cached as E;
  const bindings = new Map<string | symbol, unknown>();
  const metered = new Proxy(env, {
    get(t, prop) {
      if (prop === UNMETERED) return t;
      if (bindings.has(prop)) return bindings.get(prop);
      const value = meterBinding(Reflect.get(t, prop, t));
      bindings.set(prop, value);
      return value;
    },
  });
  METERED_ENVS.set(env, metered);
  return metered;
}

/** The binding behind a metered one (itself when it is not metered). */
export function unmetered<T>(binding: T): T {
  return ((binding as Record<symbol, unknown>)?.[UNMETERED] as T | undefined) ?? binding;
}

// ---- the queue consumer entry ---------------------------------------------------------------

/**
 * Counts a delivered batch: one read per 64 KB of each message, one delete per 64 KB of each
 * message acknowledged (explicitly, by ackAll, or by the handler returning); a retried message is
 * read again on its next delivery and deleted only then.
 */
export async function meterQueueBatch<B extends MessageBatch<unknown>>(batch: B, run: (batch: B) => Promise<void>): Promise<void> {
  countBillable("worker_invocations");
  const units = new Map<Message<unknown>, number>();
  const decided = new Map<Message<unknown>, "ack" | "retry">();
  for (const m of batch.messages) units.set(m, queueUnits(m.body));
  countBillable(
    "queue_read_ops",
    [...units.values()].reduce((a, b) => a + b, 0),
  );
  const decide = (m: Message<unknown>, how: "ack" | "retry") => {
    if (!decided.has(m)) decided.set(m, how);
  };
  const messages = batch.messages.map((m) =>
    forward(m, (prop) => {
      if (prop === "ack")
        return () => {
          decide(m, "ack");
          m.ack();
        };
      if (prop === "retry")
        return (options?: QueueRetryOptions) => {
          decide(m, "retry");
          m.retry(options);
        };
      return undefined;
    }),
  );
  const wrapped = forward(batch, (prop) => {
    if (prop === "messages") return messages;
    if (prop === "ackAll")
      return () => {
        for (const m of batch.messages) decide(m, "ack");
        batch.ackAll();
      };
    if (prop === "retryAll")
      return (options?: QueueRetryOptions) => {
        for (const m of batch.messages) decide(m, "retry");
        batch.retryAll(options);
      };
    return undefined;
  });
  let ok = false;
  try {
    await run(wrapped);
    ok = true;
  } finally {
    let deletes = 0;
    for (const [m, n] of units) if ((decided.get(m) ?? (ok ? "ack" : "retry")) === "ack") deletes += n;
    countBillable("queue_delete_ops", deletes);
  }
}

// ---- outgoing WebSocket frames ---------------------------------------------------------------

/** Counts every frame this isolate sends on a WebSocket (the live hub, MQTT sessions, agent links). */
function meterWebSocketSend(): void {
  const proto = (globalThis as { WebSocket?: { prototype: { send?: AnyFn } } }).WebSocket?.prototype;
  const send = proto?.send;
  if (!proto || typeof send !== "function" || (send as { metered?: boolean }).metered) return;
  const metered = function (this: unknown, ...args: unknown[]) {
    countBillable("ws_frames_out");
    return Reflect.apply(send, this, args);
  };
  (metered as { metered?: boolean }).metered = true;
  try {
    proto.send = metered;
  } catch {
    // A runtime whose WebSocket cannot be patched: frames are not counted (docs/metrics.md).
  }
}
meterWebSocketSend();
