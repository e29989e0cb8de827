/**
 * The packed D1 series rows (infra/migrations/d1/0016_series_packed.sql): what a write costs in
 * rows written and what a stored reading costs in bytes, at seed 004's meter shape (4 readings a
 * message, 1 message a second). D1 only: PostgreSQL keeps its schema.
 */
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import type { Envelope } from "../../shared/schemas/message";
import { BLOCK_MS, D1SeriesStore } from "../../shared/series/d1";
import { rowsOf } from "../../shared/series/rows";
import { uniqueId } from "./helpers";

function meterMessage(device: string, i: number, time: number): Envelope {
  const at = new Date(time).toISOString();
  return {
    id: `0193a1b2-c3d4-7e5f-8a9b-${String(i).padStart(12, "0")}`,
    correlation_id: `0193a1b2-c3d4-7e5f-8a9b-${String(i).padStart(12, "0")}`,
    source: device,
    type: "telemetry",
    exchange: "sensors",
    routing_key: "sensors.energy.utility",
    timestamp: at,
    received_at: at,
    payload: {
      power_kw: { value: 3.2 + (i % 7) / 10, unit: "kW" },
      total_energy_kwh: { value: 12_345.678 + i / 3600, unit: "kWh" },
      voltage: { value: 229.8 + (i % 5) / 10, unit: "V" },
      current: { value: 13.9 + (i % 3) / 10, unit: "A" },
    },
    metadata: { room: "utility" },
    schema_version: 1,
  };
}

describe("packed series rows on D1", () => {
  it("writes one row per device and block however many readings a batch holds, and stores nothing twice", async () => {
    const store = new D1SeriesStore(env.DB);
    const device = uniqueId("meter");
    const base = Math.floor(Date.now() / BLOCK_MS) * BLOCK_MS - 2 * BLOCK_MS;
    const rows = Array.from({ length: 100 }, (_, i) => rowsOf(meterMessage(device, i, base + i * 1000))).flat();
    expect(await store.write(rows)).toBe(400);
    // A redelivery of the same batch: nothing new.
    expect(await store.write(rows)).toBe(0);
    const { results } = await env.DB.prepare("SELECT count(*) AS n, count(DISTINCT message_id) AS m FROM readings WHERE device = ?")
      .bind(device)
      .all<{ n: number; m: number }>();
    expect(results[0]).toEqual({ n: 400, m: 100 });
    const blocks = await env.DB.prepare("SELECT count(*) AS n FROM reading_blocks WHERE device = ?").bind(device).first<{ n: number }>();
    expect(blocks?.n).toBe(1);
  });

  it("continues a full block in its next part, and stores nothing twice across the parts", async () => {
    // A tiny seal size stands in for D1's 2 MB row limit: every batch of 10 messages fills a part.
    const store = new D1SeriesStore(env.DB, { sealBytes: 1_000 });
    const device = uniqueId("meter");
    const base = Math.floor(Date.now() / BLOCK_MS) * BLOCK_MS - 4 * BLOCK_MS;
    const batches = Array.from({ length: 5 }, (_, b) =>
      Array.from({ length: 10 }, (_, k) => rowsOf(meterMessage(device, b * 10 + k, base + (b * 10 + k) * 1000))).flat(),
    );
    for (const rows of batches) expect(await store.write(rows)).toBe(40);
    const parts = await env.DB.prepare("SELECT count(*) AS n FROM reading_blocks WHERE device = ?").bind(device).first<{ n: number }>();
    expect(parts?.n).toBeGreaterThanOrEqual(5);
    // Every batch again, and all of them at once: each message is in an older part by now.
    for (const rows of batches) expect(await store.write(rows)).toBe(0);
    expect(await store.write(batches.flat())).toBe(0);
    const { results } = await env.DB.prepare("SELECT count(*) AS n, count(DISTINCT message_id) AS m FROM readings WHERE device = ?")
      .bind(device)
      .all<{ n: number; m: number }>();
    expect(results[0]).toEqual({ n: 200, m: 50 });
  });

  it("costs a few rows written per batch and under 80 bytes per stored reading at seed 004's meter load", async () => {
    const device = uniqueId("meter");
    const base = Math.floor(Date.now() / BLOCK_MS) * BLOCK_MS - 3 * BLOCK_MS;
    const store = new D1SeriesStore(env.DB);
    // A full block: 600 messages (1 a second for 10 minutes), written in batches of 50.
    let rowsWritten = 0;
    const batches = 12;
    for (let b = 0; b < batches; b++) {
      const rows = Array.from({ length: 50 }, (_, k) => rowsOf(meterMessage(device, b * 50 + k, base + (b * 50 + k) * 1000))).flat();
      rowsWritten += await measure(() => store.write(rows));
    }
    const perBatch = rowsWritten / batches;
    const size = await env.DB.prepare("SELECT length(device) + 8 + length(readings) AS bytes FROM reading_blocks WHERE device = ?")
      .bind(device)
      .first<{ bytes: number }>();
    const perReading = (size?.bytes ?? 0) / (600 * 4);
    console.warn(JSON.stringify({ packed_d1: { rows_written_per_batch_of_50: perBatch, bytes_per_reading: perReading } }));
    // The block row, its latest values (4 metrics) and the hour's rollup mark; the block index only once.
    expect(perBatch).toBeLessThanOrEqual(7);
    expect(perReading).toBeLessThan(80);
  });
});

/** D1 rows written by the statements `fn` runs, read from D1's own counter (meta.rows_written). */
async function measure(fn: () => Promise<unknown>): Promise<number> {
  const original = env.DB.batch.bind(env.DB);
  let written = 0;
  env.DB.batch = async <T>(statements: D1PreparedStatement[]) => {
    const results = await original<T>(statements);
    for (const r of results) written += r.meta.rows_written ?? 0;
    return results;
  };
  try {
    await fn();
  } finally {
    env.DB.batch = original;
  }
  return written;
}
