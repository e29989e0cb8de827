/**
 * The shapes of what the edge's Durable Objects answer — twins, commands, room aggregates — as
 * the types of their zod schemas (shared/schemas/api/), so the Worker, the objects, the dashboard
 * (web/), the CLI and the agent share one definition instead of keeping copies that drift.
 */
export type {
  Availability,
  AvailabilityState,
  CommandStatus,
  Json,
  JsonObject,
} from "./schemas/api/common.ts";
export type { Command, Counters, MetricAggregate, ReportedReading, StoredError, TwinView } from "./schemas/api/twin.ts";
