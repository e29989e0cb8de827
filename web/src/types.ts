/**
 * Shapes of what the edge answers (docs/api.md, docs/live.md). What the edge's objects build is
 * shared with them (shared/api-types.ts); the rest is as far as the dashboard reads it.
 */
import type { JsonObject, MetricAggregate, ReportedReading, TwinView } from "../../shared/api-types.ts";

export type { Command, CommandStatus, Json, JsonObject, MetricAggregate, StoredError } from "../../shared/api-types.ts";

import type { CommandStatus } from "../../shared/api-types.ts";
/** A reading as the dashboard shows it (live updates may carry a null unit). */
export type Reading = Omit<ReportedReading, "unit"> & { unit?: string | null };
export type Twin = Omit<TwinView, "reported"> & { reported: { readings: Record<string, Reading>; state: JsonObject } };

export type Role = "viewer" | "operator" | "admin";
export type AvailabilityStatus = "online" | "stale" | "offline";
export type LiveStream = "twin" | "availability" | "command" | "dead_letter" | "alert";

export interface Availability {
  status: AvailabilityStatus;
  since?: string;
  reason?: string;
}

export interface Device {
  id: string;
  kind: "device" | "service";
  name: string | null;
  type: string;
  class: "mains" | "battery";
  room: string | null;
  metadata: Record<string, unknown>;
  availability: AvailabilityStatus;
  last_seen: string | null;
}

export interface Room {
  id: string;
  name: string | null;
  devices: number;
}

export interface RoomView {
  room: { id: string; name: string | null };
  devices: Device[];
  aggregates: MetricAggregate[];
}

export interface DeadLetter {
  id: number;
  message_id: string;
  queue: string;
  exchange: string;
  routing_key: string;
  error: { code: string; message: string };
  attempts: number;
  failed_at: string;
  status: "pending" | "replayed";
  replayed_at: string | null;
  message: { source?: string; type?: string; payload?: unknown } & Record<string, unknown>;
}

export const TERMINAL_COMMAND_STATUSES: readonly CommandStatus[] = ["succeeded", "failed", "expired"];
