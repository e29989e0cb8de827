/**
 * Shapes of what the edge answers (docs/api.md, docs/live.md), as the dashboard reads them: the
 * types of the answer schemas in shared/schemas/api/, the one source every client shares.
 */
import type { AvailabilityState, JsonObject } from "../../shared/schemas/api/common.ts";
import type { Device as ApiDevice, RoomListItem } from "../../shared/schemas/api/device.ts";
import type { ReportedReading, TwinView } from "../../shared/schemas/api/twin.ts";

export type {
  Availability as AvailabilityStatus,
  CommandStatus,
  Json,
  JsonObject,
  Role,
} from "../../shared/schemas/api/common.ts";
export { TERMINAL_COMMAND_STATUSES } from "../../shared/schemas/api/common.ts";
export type { DeadLetter } from "../../shared/schemas/api/dead-letter.ts";
export type { RoomView } from "../../shared/schemas/api/device.ts";
export type { LiveStream, LiveUpdate } from "../../shared/schemas/api/live.ts";
export type { Command, MetricAggregate, StoredError } from "../../shared/schemas/api/twin.ts";

/** A reading as the dashboard shows it (live updates may carry a null unit). */
export type Reading = Omit<ReportedReading, "unit"> & { unit?: string | null };
export type Twin = Omit<TwinView, "reported"> & { reported: { readings: Record<string, Reading>; state: JsonObject } };

/** A device's availability as the dashboard keeps it: a live update may carry the status alone. */
export type Availability = Pick<AvailabilityState, "status"> & Partial<Omit<AvailabilityState, "status">>;

/** The part of a device the dashboard shows. */
export type Device = Pick<ApiDevice, "id" | "kind" | "name" | "type" | "class" | "room" | "metadata" | "availability" | "last_seen">;

/** The part of a room (GET /v1/rooms) the dashboard shows. */
export type Room = Pick<RoomListItem, "id" | "name" | "devices">;
