/**
 * The series sink: the consumer of the metrics queues (system, application, and the
 * transformer's normalized sensor readings). Each batch becomes one write of every reading in
 * it, idempotent on (device, metric, time, message id), so redeliveries and replays never store
 * a row twice. When the database is down the whole batch fails retriably: the consumer
 * discipline retries it with backoff and dead-letters it after the last retry, from where a
 * replay brings it back (docs/series.md).
 */

import { type CallOptions, SeriesUnavailable, writeWithBreaker } from "../../platform/series/resilience";
import { metrics } from "../../shared/metrics";
import type { Envelope } from "../../shared/schemas/message";
import type { SeriesRow } from "../../shared/schemas/series";
import { NotReadings, rowsOf } from "../../shared/series/rows";
import { seriesBackend } from "../../shared/series/store";
import type { BatchHandler } from "../consumer";
import { ConsumerError } from "../errors";
import { recordSteps } from "../history";

/** The sink, with the store and breaker injectable for tests; `series` is the one the queues use. */
export function seriesSink(options: CallOptions = {}): BatchHandler {
  return async (messages, { env, queue, steps }) => {
    const errors = new Map<string, unknown>();
    const rows: SeriesRow[] = [];
    const storable: { message: Envelope; readings: number }[] = [];
    for (const message of messages) {
      try {
        const own = rowsOf(message);
        rows.push(...own);
        storable.push({ message, readings: own.length });
      } catch (error) {
        if (!(error instanceof NotReadings)) throw error;
        errors.set(message.id, new ConsumerError("not_readings", error.message, { retriable: false }));
      }
    }
    if (rows.length === 0) return errors;

    let inserted: number;
    try {
      inserted = await writeWithBreaker(env, (store) => store.write(rows), options);
    } catch (error) {
      if (!(error instanceof SeriesUnavailable)) throw error;
      const code = error.breakerOpen ? "series_circuit_open" : "series_unavailable";
      throw new ConsumerError(code, error.message, { retriable: true, cause: error });
    }
    // Accepted → stored (issue 13: p99 < 1 s), once the write committed: docs/metrics.md.
    const committed = Date.now();
    const lags = storable.map(({ message }) => Math.max(0, (committed - Date.parse(message.received_at)) / 1000));
    metrics.observeMany("edgemesh_stored_lag_seconds", lags.filter(Number.isFinite), { queue: queue.name });
    const backend = options.open ? "injected store" : seriesBackend(env);
    const stored = storable.map(({ message, readings }) => ({
      message,
      queue: queue.name,
      step: "stored" as const,
      detail: `${readings} reading${readings === 1 ? "" : "s"} in ${backend} (batch: ${inserted} new of ${rows.length})`,
    }));
    // Under consume(), with the batch's own history statement; called on its own, on its own.
    if (steps) steps.push(...stored);
    else await recordSteps(env, stored);
    return errors;
  };
}

export const series = seriesSink();
