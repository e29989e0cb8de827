/**
 * The consumer of the sensor queues (temperature, humidity, energy): seed 001's transformation
 * pipeline in ONE hop (issue 13). Each reading is normalized to canonical units (keeping the unit
 * it arrived in) when ingest has not done so already, stored in the series store under its own
 * message id, evaluated by the alert rules and threshold automations, and archived — without
 * re-publishing a `metrics.sensors.…` copy through the metrics exchange, which cost a queue
 * message, a history row and a second sink run per reading. Rules and automations written for
 * the transformed stream (`metrics.sensors.#`) still match: they are evaluated on the reading
 * under that routing key. The metrics queues keep serving system and application metrics (and
 * anything published on `metrics.sensors.…` directly). docs/topology.md has the flow.
 */

import { derivedId } from "../../shared/ids";
import type { Envelope, EnvelopeOf } from "../../shared/schemas/message";
import { normalizeReadings } from "../../shared/units";
import { evaluateAlerts } from "../alert-rules";
import { runAutomations } from "../automations";
import type { BatchHandler } from "../consumer";
import { ConsumerError } from "../errors";
import { series } from "./series";

/** The metrics exchange's routing key of a sensor reading: `sensors.<type>.<room>` → `metrics.sensors.<type>.<room>`. */
export function metricsKeyOf(routingKey: string): string {
  if (routingKey.startsWith("metrics.")) return routingKey;
  const suffix = routingKey.startsWith("sensors.") ? routingKey.slice("sensors.".length) : routingKey;
  return `metrics.sensors.${suffix}`;
}

function takesReadings(message: Envelope): message is EnvelopeOf<"telemetry"> | EnvelopeOf<"metric"> {
  return message.type === "telemetry" || message.type === "metric";
}

/**
 * The message as the transformer published it before issue 13 (a metric with a derived id on
 * `metrics.sensors.…`). Kept for what still speaks that form: the contract tests and the replay
 * of archives written before.
 */
export async function transform(message: Envelope): Promise<EnvelopeOf<"metric">> {
  if (!takesReadings(message)) {
    throw new ConsumerError("unexpected_type", `the transformer takes telemetry, not ${message.type}`, { retriable: false });
  }
  return {
    ...message,
    id: await derivedId(message.source, message.id, "transformer"),
    causation_id: message.id,
    type: "metric",
    exchange: "metrics",
    routing_key: metricsKeyOf(message.routing_key),
    payload: normalizeReadings(message.payload),
  };
}

/** The message with canonical units: itself when ingest normalized it already (the usual case). */
export function normalized<M extends EnvelopeOf<"telemetry"> | EnvelopeOf<"metric">>(message: M): M {
  const payload = normalizeReadings(message.payload);
  return JSON.stringify(payload) === JSON.stringify(message.payload) ? message : { ...message, payload };
}

export const transformer: BatchHandler = async (messages, ctx) => {
  const errors = new Map<string, unknown>();
  const readings: Envelope[] = [];
  for (const message of messages) {
    if (!takesReadings(message)) {
      errors.set(
        message.id,
        new ConsumerError("unexpected_type", `the transformer takes telemetry, not ${message.type}`, { retriable: false }),
      );
      continue;
    }
    try {
      readings.push(normalized(message));
    } catch (error) {
      errors.set(message.id, error);
    }
  }
  if (readings.length === 0) return errors;
  // Stored first: a database outage fails the batch retriably before anything acts on it.
  for (const [id, error] of (await series(readings, ctx)) ?? []) errors.set(id, error);
  const stored = readings.filter((m) => !errors.has(m.id));
  const asMetrics = stored.map((m) => ({ ...m, routing_key: metricsKeyOf(m.routing_key) }));
  // Each idempotent on message ids: a batch retried for any of them does no harm.
  // The readings reach the archive from ingest (the twin packs them for archive.metrics), not from here.
  await Promise.all([evaluateAlerts(ctx.env, asMetrics), runAutomations(ctx.env, asMetrics, "threshold")]);
  return errors;
};
