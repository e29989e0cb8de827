/** Helpers for tests that run inside workerd against the real Worker, DOs, D1 and Queues. */
import { runInDurableObject } from "cloudflare:test";
import { exports } from "cloudflare:workers";
import { expect } from "vitest";
import { BILLABLE_FAMILY } from "../../shared/billing";
import { metrics, parseLabelText } from "../../shared/metrics";
import type { Envelope } from "../../shared/schemas/message";

export const ADMIN = { authorization: "Bearer test-admin-token" };

let counter = 0;
/** A device id no other test uses, so tests never share a Durable Object. */
export function uniqueId(prefix = "dev"): string {
  counter++;
  return `${prefix}-${Date.now().toString(36)}-${counter}-${Math.random().toString(36).slice(2, 6)}`;
}

/** A client address of its own per test, so failed-auth rate limits never cross tests. */
export function uniqueIp(): string {
  return `10.${Math.floor(Math.random() * 250)}.${Math.floor(Math.random() * 250)}.${Math.floor(Math.random() * 250)}`;
}

export function call(path: string, init: RequestInit = {}): Promise<Response> {
  return exports.default.fetch(new Request(`https://edge.test${path}`, init));
}

export async function json<T = Record<string, unknown>>(res: Response): Promise<T> {
  return (await res.json()) as T;
}

export interface Created {
  device: { id: string; publish: string[] };
  token: string;
}

export async function createDevice(body: Record<string, unknown>): Promise<Created> {
  const res = await call("/v1/devices", {
    method: "POST",
    headers: { ...ADMIN, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  expect(res.status, await res.clone().text()).toBe(201);
  return json<Created>(res);
}

export function post(path: string, token: string, body: unknown, headers: Record<string, string> = {}): Promise<Response> {
  return call(path, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json", "cf-connecting-ip": uniqueIp(), ...headers },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
}

/** Polls until `check` returns a value (not undefined) or the time is up. */
export async function eventually<T>(check: () => Promise<T | undefined>, timeoutMs = 10_000, what = "condition"): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** An access token for a person with this role, issued the way an admin would. */
export async function tokenFor(role: "viewer" | "operator" | "admin", sub = `${role}-${uniqueId("p")}`): Promise<string> {
  const issued = await call("/v1/auth/token", {
    method: "POST",
    headers: { ...ADMIN, "content-type": "application/json" },
    body: JSON.stringify({ grant_type: "issue", sub, role }),
  });
  expect(issued.status, await issued.clone().text()).toBe(201);
  const { refresh_token } = await json<{ refresh_token: string }>(issued);
  const res = await call("/v1/auth/token", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ grant_type: "refresh_token", refresh_token }),
  });
  expect(res.status).toBe(200);
  return (await json<{ access_token: string }>(res)).access_token;
}

/** A valid system metric envelope (metrics.system.nas) for the consumer tests: one shape, not one per file. */
export function metricEnvelope(id: string, options: { correlation?: string; source?: string } = {}): Envelope {
  const now = new Date().toISOString();
  return {
    id,
    correlation_id: options.correlation ?? id,
    source: options.source ?? "tester",
    type: "metric",
    exchange: "metrics",
    routing_key: "metrics.system.nas",
    timestamp: now,
    received_at: now,
    payload: { cpu: 1 },
    metadata: {},
    schema_version: 1,
  };
}

/** Counts the rows every SQL statement of this storage writes from now on (a Durable Object's, in its own context). */
export function countWrites(sql: SqlStorage): () => number {
  const cursors: { rowsWritten: number }[] = [];
  const target = sql as unknown as { exec: SqlStorage["exec"] };
  const original = sql.exec.bind(sql);
  target.exec = ((query: string, ...bindings: unknown[]) => {
    const cursor = original(query, ...(bindings as SqlStorageValue[]));
    cursors.push(cursor);
    return cursor;
  }) as SqlStorage["exec"];
  return () => cursors.reduce((n, c) => n + c.rowsWritten, 0);
}

/** countWrites for an object named by its stub: the rows it writes from now on. */
export async function countRowsOf(stub: DurableObjectStub): Promise<() => number> {
  return runInDurableObject(stub, async (_i, state) => countWrites(state.storage.sql));
}

/** What the billing meter counted since the last call (it drains the tally), by kind: the pipeline's own, not the meter's flush. */
export function countedBillable(): Record<string, number> {
  const out: Record<string, number> = {};
  for (const e of metrics.drain()) {
    if (e.name !== BILLABLE_FAMILY) continue;
    const { kind, source } = parseLabelText(e.labels);
    if (source === "app" && kind) out[kind] = (out[kind] ?? 0) + e.value;
  }
  return out;
}
