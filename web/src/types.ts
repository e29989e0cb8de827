/** Shapes of what the edge answers (docs/api.md, docs/live.md), as far as the dashboard reads them. */

export type Role = "viewer" | "operator" | "admin";
export type AvailabilityStatus = "online" | "stale" | "offline";
export type LiveStream = "twin" | "availability" | "command" | "dead_letter";
export type CommandStatus = "queued" | "delivered" | "succeeded" | "failed" | "expired";

export interface Reading {
  value: number | boolean;
  unit?: string | null;
  /** Device time, ISO 8601. */
  at: string;
}

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

export interface MetricAggregate {
  metric: string;
  unit: string | null;
  devices: number;
  latest: { device: string; value: number | boolean; at: string };
  min?: number;
  max?: number;
  mean?: number;
}

export interface RoomView {
  room: { id: string; name: string | null };
  devices: Device[];
  aggregates: MetricAggregate[];
}

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type JsonObject = { [key: string]: Json };

export interface Twin {
  device: string;
  version: number;
  last_seen: string | null;
  availability: Availability;
  reported: { readings: Record<string, Reading>; state: JsonObject };
  desired: JsonObject;
  delta: JsonObject;
  counters: { accepted: number; duplicates: number; rejected: number };
}

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

export interface StoredError {
  at: string;
  index: number;
  message_id: string | null;
  code: string;
  issues: { path: string; message: string }[];
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
