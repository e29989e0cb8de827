/**
 * The transformation pipeline of seed 001: sensor readings (temperature, humidity, energy) go
 * to the metrics path as `metrics.sensors.…`, normalized to canonical units keeping the unit each
 * reading arrived in. Ingest normalizes already; doing it again here is idempotent and covers
 * messages published before ingest did. The output id is derived from the input id, so a
 * redelivered input produces the same output and the series sink stores it once. The outputs are
 * also sent to the archive (queues/consumers/archive-feed.ts).
 */

import { publish } from "../../shared/bus/exchange";
import { derivedId } from "../../shared/ids";
import type { Envelope, EnvelopeOf } from "../../shared/schemas/message";
import { normalizeReadings } from "../../shared/units";
import type { BatchHandler } from "../consumer";
import { ConsumerError } from "../errors";
import { toArchive } from "./archive-feed";

export async function transform(message: Envelope): Promise<EnvelopeOf<"metric">> {
  if (message.type !== "telemetry" && message.type !== "metric") {
    throw new ConsumerError("unexpected_type", `the transformer takes telemetry, not ${message.type}`, { retriable: false });
  }
  const suffix = message.routing_key.startsWith("sensors.") ? message.routing_key.slice("sensors.".length) : message.routing_key;
  return {
    ...message,
    id: await derivedId(message.source, message.id, "transformer"),
    causation_id: message.id,
    type: "metric",
    exchange: "metrics",
    routing_key: `metrics.sensors.${suffix}`,
    payload: normalizeReadings(message.payload),
  };
}

export const transformer: BatchHandler = async (messages, { env }) => {
  const errors = new Map<string, unknown>();
  const outputs: Envelope[] = [];
  for (const message of messages) {
    try {
      outputs.push(await transform(message));
    } catch (error) {
      errors.set(message.id, error);
    }
  }
  // One publish for the batch, and its copy to the archive; if either fails, every message of
  // the batch is retried (the outputs' ids are derived, so a retry re-sends the same messages).
  if (outputs.length > 0) await Promise.all([publish(env, outputs), toArchive(env, outputs)]);
  return errors;
};
