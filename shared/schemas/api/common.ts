/**
 * The small shapes every answer of the edge's HTTP API is built from, as zod schemas: the only
 * source of their types for the Worker, the dashboard (web/), the CLI, the agent, the simulator
 * and the tests. Answers are read leniently (`z.object`, extra keys kept) so a client keeps
 * working when the edge adds a field.
 */
import { z } from "zod";

export const Json = z.json();
export type Json = z.infer<typeof Json>;
export const JsonObject = z.record(z.string(), Json);
export type JsonObject = z.infer<typeof JsonObject>;

/** A device's availability (seed 003), as the twin decides it. */
export const Availability = z.enum(["online", "stale", "offline"]);
export type Availability = z.infer<typeof Availability>;

export const AvailabilityState = z.object({ status: Availability, since: z.string(), reason: z.string() });
export type AvailabilityState = z.infer<typeof AvailabilityState>;

/** What a dashboard user may do: read, send commands, administer. */
export const Role = z.enum(["viewer", "operator", "admin"]);
export type Role = z.infer<typeof Role>;

export const CommandStatus = z.enum(["queued", "delivered", "succeeded", "failed", "expired"]);
export type CommandStatus = z.infer<typeof CommandStatus>;
export const TERMINAL_COMMAND_STATUSES: readonly CommandStatus[] = ["succeeded", "failed", "expired"];

/** One problem with one field: `path` is dot-joined (`payload.temperature`), empty for the whole. */
export const Issue = z.object({ path: z.string(), message: z.string() });
export type Issue = z.infer<typeof Issue>;
