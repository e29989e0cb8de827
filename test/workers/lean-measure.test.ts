/**
 * Counts, per accepted seed-004 meter message, the rows the twin writes in its SQLite (cursor
 * `rowsWritten`) and the queue messages the whole pipeline sends; prints them (docs/twins.md has
 * the before/after figures) and holds the twin to its budget. bench/cost.ts prices them.
 */
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { QUEUES } from "../../shared/bus/topology";
import { countRowsOf, createDevice, post, uniqueId } from "./helpers";

function countQueues(): { sent: () => number; by: Record<string, number>; restore: () => void } {
  let sent = 0;
  const by: Record<string, number> = {};
  const restores: (() => void)[] = [];
  for (const q of QUEUES) {
    const binding = (env as unknown as Record<string, Queue>)[q.binding] as Queue;
    const original = binding.sendBatch.bind(binding);
    binding.sendBatch = (batch: Iterable<MessageSendRequest>, options?: QueueSendBatchOptions) => {
      sent += [...batch].length;
      by[q.name] = (by[q.name] ?? 0) + [...batch].length;
      return original([...batch], options);
    };
    restores.push(() => {
      binding.sendBatch = original;
    });
  }
  return {
    sent: () => sent,
    by,
    restore: () => {
      for (const r of restores) r();
    },
  };
}

async function countRows(id: string): Promise<{ rows: () => number }> {
  return { rows: await countRowsOf(env.DEVICE_TWIN.getByName(id)) };
}

const meter = (i: number) => ({
  id: `m-${i}`,
  timestamp: new Date(Date.now() - 1000 + i).toISOString(),
  payload: { power: 100 + i, energy: { value: 1000 + i, unit: "kWh" }, voltage: 230, current: 0.5 },
});

describe("cost per accepted meter message", () => {
  for (const mode of ["single", "batch"] as const) {
    it(`counts DO rows written and queue messages (${mode})`, { timeout: 30_000 }, async () => {
      const { device, token } = await createDevice({ id: uniqueId("meter"), type: "energy", rate: { per_second: 1000, burst: 1000 } });
      const N = 100;
      const rows = await countRows(device.id);
      const queues = countQueues();
      try {
        if (mode === "single") for (let i = 0; i < N; i++) expect((await post("/v1/telemetry", token, meter(i))).status).toBe(202);
        else
          expect(
            (
              await post(
                "/v1/telemetry",
                token,
                Array.from({ length: N }, (_, i) => meter(i)),
              )
            ).status,
          ).toBe(202);
        await new Promise((r) => setTimeout(r, 1500));
        console.warn(
          `MEASURE ${mode}: do_rows_written/msg=${(rows.rows() / N).toFixed(2)} queue_messages/msg=${(queues.sent() / N).toFixed(2)} ${JSON.stringify(queues.by)}`,
        );
      } finally {
        queues.restore();
      }
    });
  }
});
