/**
 * Reads a local edge's counters (D1 `metric_counters`, shared/metrics.ts) straight from its D1
 * SQLite file, read-only, so that reading them costs the edge nothing: a scrape of GET /metrics
 * would itself read D1 and call the live hubs, and land in the very counts being measured. A
 * `GET /` (no binding touched) makes the Worker flush its tally when the flush interval is 0.
 */
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";

/** `kind="x",source="app"` → {kind: "x", source: "app"} (shared/metrics.ts's labelText form). */
function parseLabelText(text: string): Record<string, string> {
  return Object.fromEntries([...text.matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)].map((m) => [m[1], m[2]]));
}

export interface Counters {
  /** edgemesh_billable_ops_total{source="app"} by kind. */
  billable: Record<string, number>;
  /** The meter's own D1 writes (source="metering"). */
  metering: number;
  /** edgemesh_ingest_messages_total by outcome, summed over transports. */
  ingest: Record<string, number>;
  /** Sink outcomes (delivered, retried, dead_lettered), summed over queues. */
  sink: Record<string, number>;
  /** Messages the twins' outboxes sent to each queue (edgemesh_routed_messages_total by queue). */
  routed: Record<string, number>;
  /** The D1 database's size: page_count × page_size. */
  d1Bytes: number;
}

function findSqlite(dir: string): string | undefined {
  let entries: string[];
  try {
    entries = readdirSync(dir);
  } catch {
    return undefined;
  }
  for (const name of entries) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) {
      const found = findSqlite(path);
      if (found) return found;
    } else if (name.endsWith(".sqlite") && !name.startsWith("metadata")) return path;
  }
  return undefined;
}

export class EdgeCounters {
  readonly #db: DatabaseSync;
  constructor(persistDir: string) {
    const file = findSqlite(join(persistDir, "v3", "d1"));
    if (!file) throw new Error(`no D1 database under ${persistDir}/v3/d1`);
    this.#db = new DatabaseSync(file, { readOnly: true });
  }

  read(): Counters {
    const rows = this.#db.prepare("SELECT name, labels, value FROM metric_counters").all() as {
      name: string;
      labels: string;
      value: number;
    }[];
    const out: Counters = { billable: {}, metering: 0, ingest: {}, sink: {}, routed: {}, d1Bytes: 0 };
    const add = (into: Record<string, number>, key: string, value: number) => {
      into[key] = (into[key] ?? 0) + value;
    };
    for (const r of rows) {
      const labels = parseLabelText(r.labels);
      if (r.name === "edgemesh_billable_ops_total") {
        if (labels.source === "metering") out.metering += r.value;
        else add(out.billable, labels.kind ?? "", r.value);
      } else if (r.name === "edgemesh_ingest_messages_total") add(out.ingest, labels.outcome ?? "", r.value);
      else if (r.name === "edgemesh_sink_messages_total") add(out.sink, labels.outcome ?? "", r.value);
      else if (r.name === "edgemesh_routed_messages_total") add(out.routed, labels.queue ?? "", r.value);
    }
    const pages = this.#db.prepare("PRAGMA page_count").get() as { page_count: number };
    const size = this.#db.prepare("PRAGMA page_size").get() as { page_size: number };
    out.d1Bytes = pages.page_count * size.page_size;
    return out;
  }

  close(): void {
    this.#db.close();
  }
}

/** b − a, key by key. */
export function delta(a: Record<string, number>, b: Record<string, number>): Record<string, number> {
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
  return Object.fromEntries([...keys].map((k) => [k, (b[k] ?? 0) - (a[k] ?? 0)]));
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Waits until the edge is idle: its billable counters unchanged over `stableReads` reads, each
 * after a flush-triggering `GET /`. Returns how many of those requests it made (each is one
 * Worker invocation the caller subtracts).
 */
export async function waitIdle(url: string, counters: EdgeCounters, stableReads = 3, timeoutMs = 60_000): Promise<number> {
  let pings = 0;
  let last = "";
  let stable = 0;
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    await fetch(`${url}/`).then((r) => r.arrayBuffer());
    pings++;
    await sleep(250);
    const now = counters.read();
    // The pings themselves are Worker invocations: everything else must stand still.
    const { worker_invocations: _, ...work } = now.billable;
    const key = JSON.stringify([work, now.ingest, now.sink, now.routed]);
    stable = key === last ? stable + 1 : 0;
    last = key;
    if (stable >= stableReads) return pings;
  }
  throw new Error(`the edge did not go idle within ${timeoutMs / 1000} s`);
}

/**
 * The bytes of one archived envelope of the kind whose payload names `field` (a JSON line in a
 * pack), read from a twin's outbox in the local Durable Object files; undefined when none is found.
 */
export function envelopeBytes(persistDir: string, field: string): number | undefined {
  const files: string[] = [];
  const walk = (dir: string) => {
    let entries: string[];
    try {
      entries = readdirSync(dir);
    } catch {
      return;
    }
    for (const name of entries) {
      const path = join(dir, name);
      if (statSync(path).isDirectory()) walk(path);
      else if (name.endsWith(".sqlite") && !name.startsWith("metadata")) files.push(path);
    }
  };
  walk(join(persistDir, "v3", "do"));
  for (const file of files) {
    try {
      const db = new DatabaseSync(file, { readOnly: true });
      try {
        const row = db.prepare("SELECT body FROM outbox WHERE body LIKE ? LIMIT 1").get(`%${field}%`) as { body: string } | undefined;
        const envelope = row && (JSON.parse(row.body) as { m?: unknown[] }).m?.[0];
        if (envelope) return Buffer.byteLength(JSON.stringify(envelope)) + 1;
      } finally {
        db.close();
      }
    } catch {
      // Not a twin's file (no outbox table): the next one.
    }
  }
  return undefined;
}
