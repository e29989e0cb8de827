/**
 * Seed 003's dashboard flow: GET /api/dashboard answers the person's saved layout, the device
 * status and the active alerts in one answer, read from D1 in one batch. A failed read is logged
 * and retried (3 attempts in all, each bounded in time); then 503 with Retry-After, which the
 * dashboard shows as a friendly error with a retry button. PUT /api/dashboard/layout saves the
 * layout of the token's subject.
 *
 * LOCAL_FAULTS=on (local tests only; never set in wrangler.toml) adds PUT /api/dashboard/faults,
 * an admin switch that makes the dashboard's store reads fail for real: while it is down each
 * attempt queries a table that does not exist, so D1 itself answers the error.
 */
import { Hono } from "hono";
import { z } from "zod";
import { log } from "../../shared/log";
import { type DashboardAnswer, DashboardLayout, DEFAULT_LAYOUT, type DeviceStatus } from "../../shared/schemas/dashboard";
import { ApiError } from "../errors";
import { type AppEnv, requireRole } from "../middleware/auth";
import { jsonBody, parseWith } from "../validate";

export const DASHBOARD_ATTEMPTS = 3;
const ATTEMPT_TIMEOUT_MS = 3000;
const BACKOFF_MS = [100, 300];

/** The local fault switch's state (one isolate serves wrangler dev). */
let storeDown = false;

const faultsAllowed = (env: Env) => (env as unknown as { LOCAL_FAULTS?: string }).LOCAL_FAULTS === "on";

interface LayoutRow {
  layout: string;
  updated_at: string;
}
interface RoomRow {
  id: string;
  name: string | null;
  devices: number;
  online: number;
}
interface AlertRow {
  body: string;
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => {
    if (timer !== undefined) clearTimeout(timer);
  });
}

/** A device that had a message rejected within this long needs attention. */
export const REJECTING_WINDOW_MS = 60 * 60_000;

async function readOnce(env: Env, sub: string) {
  const since = new Date(Date.now() - REJECTING_WINDOW_MS).toISOString();
  if (storeDown) await env.DB.prepare("SELECT 1 FROM dashboard_store_switched_off").all();
  const [layout, devices, rooms, alerts] = await env.DB.batch([
    env.DB.prepare("SELECT layout, updated_at FROM dashboard_layouts WHERE sub = ?").bind(sub),
    env.DB.prepare(
      `SELECT id, name, type, room, availability, last_seen, last_rejected_at, coalesce(last_rejected_at > ?, 0) AS rejecting FROM devices
       ORDER BY CASE WHEN availability = 'offline' THEN 0 WHEN availability = 'stale' THEN 1 WHEN last_rejected_at > ? THEN 2 ELSE 3 END, id
       LIMIT 1000`,
    ).bind(since, since),
    env.DB.prepare(
      `SELECT r.id, r.name, count(d.id) AS devices, coalesce(sum(d.availability = 'online'), 0) AS online
       FROM rooms r LEFT JOIN devices d ON d.room = r.id GROUP BY r.id ORDER BY r.id`,
    ),
    env.DB.prepare("SELECT body FROM alerts WHERE status = 'active' ORDER BY started_at DESC, id DESC LIMIT 100"),
  ]);
  return {
    layout: (layout?.results[0] as LayoutRow | undefined) ?? null,
    devices: ((devices?.results ?? []) as (Omit<DeviceStatus, "rejecting"> & { rejecting: number })[]).map(
      (d): DeviceStatus => ({ ...d, rejecting: d.rejecting === 1 }),
    ),
    rooms: (rooms?.results ?? []) as RoomRow[],
    alerts: ((alerts?.results ?? []) as AlertRow[]).map((r) => JSON.parse(r.body) as Record<string, unknown>),
  };
}

/** Three attempts, each logged when it fails; then 503 with Retry-After. */
async function readDashboard(env: Env, sub: string) {
  let last: unknown;
  for (let attempt = 1; attempt <= DASHBOARD_ATTEMPTS; attempt++) {
    try {
      return await withTimeout(readOnce(env, sub), ATTEMPT_TIMEOUT_MS);
    } catch (error) {
      last = error;
      log("error", "dashboard read failed", { attempt, of: DASHBOARD_ATTEMPTS, error: String(error) });
      const pause = BACKOFF_MS[attempt - 1];
      if (attempt < DASHBOARD_ATTEMPTS && pause) await new Promise((r) => setTimeout(r, pause));
    }
  }
  log("error", "dashboard unavailable", { attempts: DASHBOARD_ATTEMPTS, error: String(last) });
  throw new ApiError("unavailable", `the dashboard's data could not be read after ${DASHBOARD_ATTEMPTS} attempts; retry in a moment`, {
    headers: { "retry-after": "5" },
  });
}

export const dashboardRoutes = new Hono<AppEnv>()
  .get("/", requireRole("viewer"), async (c) => {
    const principal = c.get("principal");
    const data = await readDashboard(c.env, principal.sub);
    const count = (status: string) => data.devices.filter((d) => d.availability === status).length;
    const answer: DashboardAnswer = {
      user: { sub: principal.sub, role: principal.role },
      config: {
        layout: data.layout ? DashboardLayout.catch(DEFAULT_LAYOUT).parse(JSON.parse(data.layout.layout)) : DEFAULT_LAYOUT,
        saved: data.layout !== null,
        updated_at: data.layout?.updated_at ?? null,
      },
      devices: {
        total: data.devices.length,
        online: count("online"),
        stale: count("stale"),
        offline: count("offline"),
        rejecting: data.devices.filter((d) => d.rejecting).length,
        items: data.devices,
      },
      rooms: data.rooms.map((r) => ({ ...r, devices: Number(r.devices), online: Number(r.online) })),
      alerts: { active: data.alerts, count: data.alerts.length },
      generated_at: new Date().toISOString(),
    };
    c.header("cache-control", "no-store");
    return c.json(answer);
  })
  .put("/layout", requireRole("viewer"), async (c) => {
    const layout = parseWith(DashboardLayout, await jsonBody(c.req.raw));
    const updated_at = new Date().toISOString();
    await c.env.DB.prepare(
      "INSERT INTO dashboard_layouts (sub, layout, updated_at) VALUES (?, ?, ?) ON CONFLICT (sub) DO UPDATE SET layout = excluded.layout, updated_at = excluded.updated_at",
    )
      .bind(c.get("principal").sub, JSON.stringify(layout), updated_at)
      .run();
    return c.json({ layout, saved: true, updated_at });
  })
  .put("/faults", requireRole("admin"), async (c) => {
    if (!faultsAllowed(c.env)) throw new ApiError("not_found", "no route PUT /api/dashboard/faults");
    const { store } = parseWith(z.strictObject({ store: z.enum(["down", "up"]) }), await jsonBody(c.req.raw));
    storeDown = store === "down";
    return c.json({ store });
  });
