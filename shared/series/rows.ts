/**
 * From a metric or telemetry message to the rows the series store keeps: one row per reading.
 * Pure, so the sink, the benchmark and the tests share it.
 */
import type { Envelope } from "../schemas/message";
import type { SeriesRow } from "../schemas/series";

/** The unit a boolean reading is stored with (as 1 or 0): a query can tell it from a count. */
export const BOOL_UNIT = "bool";

/** The routing keys' placeholder for a device with no room; stored as no room. */
const NO_ROOM = "unassigned";

/**
 * The room a reading belongs to: `metadata.room` (ingest sets it from the device's room) when
 * there is one, else the location level of a sensor routing key (`sensors.<type>.<room>`, or the
 * transformer's `metrics.sensors.<type>.<room>`). System and application metrics name hosts and
 * services there, not rooms, so they have none unless the metadata says so.
 */
export function roomOf(message: Pick<Envelope, "routing_key" | "metadata">): string | null {
  const fromMetadata = message.metadata.room;
  if (typeof fromMetadata === "string" && fromMetadata !== "") return fromMetadata === NO_ROOM ? null : fromMetadata.slice(0, 64);
  const levels = message.routing_key.split(".");
  let room: string | undefined;
  if (levels[0] === "sensors") room = levels[2];
  else if (levels[0] === "metrics" && levels[1] === "sensors") room = levels[3];
  return room === undefined || room === NO_ROOM ? null : room;
}

export class NotReadings extends Error {
  override name = "NotReadings";
}

/** The rows of one message; throws NotReadings for a type that carries no readings. */
export function rowsOf(message: Envelope): SeriesRow[] {
  if (message.type !== "metric" && message.type !== "telemetry") {
    throw new NotReadings(`the series store keeps metric and telemetry readings, not ${message.type}`);
  }
  const time = Date.parse(message.timestamp);
  const room = roomOf(message);
  const rows: SeriesRow[] = [];
  for (const [metric, reading] of Object.entries(message.payload)) {
    const tags: SeriesRow["tags"] = { ...message.metadata, routing_key: message.routing_key };
    let value: number;
    let unit: string;
    if (typeof reading === "boolean") {
      value = reading ? 1 : 0;
      unit = BOOL_UNIT;
    } else if (typeof reading === "number") {
      value = reading;
      unit = "";
    } else {
      value = reading.value;
      unit = reading.unit;
      if (reading.original) {
        tags.original_value = reading.original.value;
        tags.original_unit = reading.original.unit;
      }
    }
    rows.push({ time, device: message.source, metric, value, unit, message_id: message.id, room, tags });
  }
  return rows;
}
