/**
 * Helpers of the series suite, which runs in both projects: against D1 in "workers" and against
 * PostgreSQL through Hyperdrive in "workers-postgres" (the store is chosen by the HYPERDRIVE
 * binding, as in production).
 */
import { env } from "cloudflare:workers";
import postgres from "postgres";
import { openSeriesStore } from "../../../platform/series/open";
import { withWorkerdSocket } from "../../../platform/series/workerd-socket";
import type { Envelope } from "../../../shared/schemas/message";
import { type SeriesStore, seriesBackend } from "../../../shared/series/store";
import { HOUR_MS } from "../../../shared/series/time";

export const backend = seriesBackend(env);
export const label = backend === "postgres" ? "PostgreSQL through Hyperdrive" : "D1";

export async function withStore<T>(fn: (store: SeriesStore) => Promise<T>): Promise<T> {
  const store = openSeriesStore(env);
  try {
    return await fn(store);
  } finally {
    await store.close();
  }
}

/** A client of its own (with the store's workerd socket), ended after one use. */
async function withClient<T>(hyperdrive: Hyperdrive, fn: (sql: postgres.Sql) => Promise<T>): Promise<T> {
  const sql = postgres(hyperdrive.connectionString, withWorkerdSocket({ max: 1, fetch_types: false, onnotice: () => {} }));
  try {
    return await fn(sql);
  } finally {
    await sql.end();
  }
}

/** Rows stored per message id of a device, read with plain SQL rather than through the store. */
export async function rowsPerMessage(device: string): Promise<Record<string, number>> {
  if (env.HYPERDRIVE) {
    const rows = await withClient(
      env.HYPERDRIVE,
      (sql) => sql<{ message_id: string; n: number }[]>`
        SELECT message_id, count(*)::int AS n FROM readings WHERE device = ${device} GROUP BY message_id`,
    );
    return Object.fromEntries(rows.map((r) => [r.message_id, r.n]));
  }
  const { results } = await env.DB.prepare("SELECT message_id, count(*) AS n FROM readings WHERE device = ? GROUP BY message_id")
    .bind(device)
    .all<{ message_id: string; n: number }>();
  return Object.fromEntries(results.map((r) => [r.message_id, r.n]));
}

/** Plain SQL on the series database, for the view and the seed's queries. */
export async function seriesSql<T>(pgQuery: (sql: postgres.Sql) => Promise<T>, d1Query: (db: D1Database) => Promise<T>): Promise<T> {
  return env.HYPERDRIVE ? withClient(env.HYPERDRIVE, pgQuery) : d1Query(env.DB);
}

/** Whole hours in the past, so rollups and queries see complete hours. */
export function hoursAgo(hours: number, now = Date.now()): number {
  return Math.floor(now / HOUR_MS) * HOUR_MS - hours * HOUR_MS;
}

export function metric(
  id: string,
  source: string,
  payload: Envelope["payload"],
  options: { routing_key?: string; time?: number; metadata?: Record<string, string> } = {},
): Envelope {
  const time = new Date(options.time ?? Date.now()).toISOString();
  return {
    id,
    correlation_id: id,
    source,
    type: "metric",
    exchange: "metrics",
    routing_key: options.routing_key ?? "metrics.sensors.temperature.living_room",
    timestamp: time,
    received_at: time,
    payload: payload as Record<string, number>,
    metadata: options.metadata ?? {},
    schema_version: 1,
  } as Envelope;
}

/** Stops or starts the workers-postgres project's server (test/global/postgres.ts). */
export async function postgresServer(action: "stop" | "start"): Promise<void> {
  if (!env.PG_CONTROL_URL) throw new Error("PG_CONTROL_URL is not bound: this runs in the workers-postgres project only");
  const res = await fetch(`${env.PG_CONTROL_URL}/${action}`, { method: "POST" });
  if (!res.ok) throw new Error(`could not ${action} PostgreSQL: ${res.status} ${await res.text()}`);
}
