/**
 * Seed 003's dashboard flow (GET /api/dashboard, docs/dashboard.md): the saved layout a person
 * may change, and the one answer that carries it with the device status and the active alerts.
 */
import { z } from "zod";
import { DeviceId } from "./message";

export const DASHBOARD_SECTIONS = ["alerts", "attention", "rooms"] as const;

/** What a person arranges on the home screen: which sections, in which order, and pinned devices. */
export const DashboardLayout = z.strictObject({
  sections: z
    .array(z.enum(DASHBOARD_SECTIONS))
    .max(DASHBOARD_SECTIONS.length)
    .refine((s) => new Set(s).size === s.length, { message: "each section at most once" }),
  pinned: z
    .array(DeviceId)
    .max(50)
    .refine((s) => new Set(s).size === s.length, { message: "each device at most once" }),
});
export type DashboardLayout = z.infer<typeof DashboardLayout>;

export const DEFAULT_LAYOUT: DashboardLayout = { sections: ["alerts", "attention", "rooms"], pinned: [] };

export const DeviceStatus = z.object({
  id: z.string(),
  name: z.string().nullable(),
  type: z.string(),
  room: z.string().nullable(),
  availability: z.enum(["online", "stale", "offline"]),
  last_seen: z.string().nullable(),
  /** When a message of the device was last rejected (the registry's copy, written at most once a minute). */
  last_rejected_at: z.string().nullable(),
  /** A message was rejected within the last hour: it needs attention. */
  rejecting: z.boolean(),
});
export type DeviceStatus = z.infer<typeof DeviceStatus>;

/** GET /api/dashboard. `alerts.active` are the alert records of docs/alerts.md. */
export const DashboardAnswer = z.object({
  user: z.object({ sub: z.string(), role: z.enum(["viewer", "operator", "admin"]) }),
  config: z.object({ layout: DashboardLayout, saved: z.boolean(), updated_at: z.string().nullable() }),
  devices: z.object({
    total: z.number().int(),
    online: z.number().int(),
    stale: z.number().int(),
    offline: z.number().int(),
    rejecting: z.number().int(),
    /** Devices needing attention first (offline, then stale, then rejecting messages), then the rest; at most 1000. */
    items: z.array(DeviceStatus),
  }),
  rooms: z.array(z.object({ id: z.string(), name: z.string().nullable(), devices: z.number().int(), online: z.number().int() })),
  alerts: z.object({ active: z.array(z.record(z.string(), z.unknown())), count: z.number().int() }),
  generated_at: z.string(),
});
export type DashboardAnswer = z.infer<typeof DashboardAnswer>;
