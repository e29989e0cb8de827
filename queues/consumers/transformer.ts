/**
 * The transformation pipeline of seed 001: sensor readings (temperature, humidity, energy) are
 * normalized to canonical units and published to the metrics path as `metrics.sensors.…`,
 * keeping the unit each reading arrived in. The output id is derived from the input id, so a
 * redelivered input produces the same output and the series sink stores it once.
 */
import { derivedId } from "../../shared/ids";
import type { Envelope, EnvelopeOf, Reading } from "../../shared/schemas/message";
import { normalize } from "../../shared/units";
import type { BatchHandler } from "../consumer";
import { ConsumerError } from "../errors";
import { publish } from "../exchange";

export function normalizeReadings(readings: Record<string, Reading>): Record<string, Reading> {
  const out: Record<string, Reading> = {};
  for (const [name, reading] of Object.entries(readings)) {
    if (typeof reading === "object") {
      const n = normalize(reading.value, reading.unit);
      out[name] = n.original ? { value: n.value, unit: n.unit, original: n.original } : reading;
    } else {
      out[name] = reading;
    }
  }
  return out;
}

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
  // One publish for the batch; if it fails, every message of the batch is retried.
  if (outputs.length > 0) await publish(env, outputs);
  return errors;
};
