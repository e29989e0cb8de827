/**
 * The shapes of what the edge's Durable Objects answer — twins, commands, room aggregates —
 * defined once, with no platform types, so the Worker, the objects and the dashboard (web/)
 * share them instead of keeping copies that drift. Message types are the zod schemas in
 * shared/schemas/; these are answers built from storage, not messages.
 */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type JsonObject = { [key: string]: Json };

export type Availability = "online" | "stale" | "offline";

export interface AvailabilityState {
  status: Availability;
  since: string;
  reason: string;
}

export interface ReportedReading {
  value: number | boolean;
  unit?: string;
  /** Device time of the reading, ISO 8601. */
  at: string;
}

export interface Counters {
  accepted: number;
  duplicates: number;
  rejected: number;
}

export interface TwinView {
  device: string;
  version: number;
  last_seen: string | null;
  availability: AvailabilityState;
  reported: { readings: Record<string, ReportedReading>; state: JsonObject };
  desired: JsonObject;
  delta: JsonObject;
  counters: Counters;
}

export type CommandStatus = "queued" | "delivered" | "succeeded" | "failed" | "expired";

export interface Command {
  id: string;
  command: string;
  parameters: Record<string, unknown>;
  status: CommandStatus;
  correlation_id: string;
  created_at: string;
  expires_at: string;
  attempts: number;
  result: unknown;
  error: string | null;
  history: { status: CommandStatus; at: string }[];
}

export interface MetricAggregate {
  metric: string;
  unit: string | null;
  devices: number;
  latest: { device: string; value: number | boolean; at: string };
  min?: number;
  max?: number;
  mean?: number;
}

export interface StoredError {
  at: string;
  index: number;
  message_id: string | null;
  code: string;
  issues: { path: string; message: string }[];
}
