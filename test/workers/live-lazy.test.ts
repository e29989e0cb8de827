/**
 * The live path's storage and calls (durable-objects/live-hub.ts, device-twin/announce.ts): the
 * hub writes no row per update (memory, persisted lazily as one block row plus the changed
 * devices), and a busy twin calls its hub at most once per HUB_GAP_MS, not once per message.
 */
import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { HUB_GAP_MS } from "../../durable-objects/device-twin/announce";
import { hubStub } from "../../durable-objects/stubs";
import { countWrites, createDevice, post, uniqueId } from "./helpers";

describe("the live hub's storage", () => {
  it("writes no row per update: one sequence reservation, then one block and the changed devices per persist", {
    timeout: 20_000,
  }, async () => {
    const name = `room:${uniqueId("lazy")}`;
    const hub = env.LIVE_HUB.getByName(name);
    await hub.stats();
    const written = await runInDurableObject(hub, async (_i, state) => countWrites(state.storage.sql));
    const N = 50;
    for (let i = 0; i < N; i++)
      await hub.publish([
        {
          stream: "twin",
          device: "lazy-dev",
          at: new Date().toISOString(),
          data: { readings: { t: { value: i, at: new Date().toISOString() } } },
        },
      ]);
    // The reservation of the next 10,000 sequence numbers: one `meta` row (2 with its key's index).
    expect(await runInDurableObject(hub, async () => written())).toBeLessThanOrEqual(2);
    // Persisted within PERSIST_MS (5 s): one block row, one device row (2 with its key's index).
    await new Promise((r) => setTimeout(r, 5_500));
    expect(await runInDurableObject(hub, async () => written())).toBeLessThanOrEqual(5);
    const stored = await runInDurableObject(
      hub,
      async (_i, state) => state.storage.sql.exec<{ n: number }>("SELECT SUM(json_array_length(body)) AS n FROM update_blocks").one().n,
    );
    expect(stored).toBe(N);
  });

  it("a twin taking messages back to back calls its hub far fewer times than messages", async () => {
    const room = uniqueId("busy");
    const { device, token } = await createDevice({ id: uniqueId("meter"), type: "energy", room, rate: { per_second: 1000, burst: 1000 } });
    const N = 30;
    const started = performance.now();
    for (let i = 0; i < N; i++) {
      const res = await post("/v1/telemetry", token, {
        id: `${device.id}-h-${i}`,
        timestamp: new Date(Date.now() - 1000 + i).toISOString(),
        payload: { power: i },
      });
      expect(res.status).toBe(202);
    }
    const elapsed = performance.now() - started;
    await new Promise((r) => setTimeout(r, 300));
    // Each hub call adds its updates' sequence numbers: the device's readings merged per call.
    // At most one call at once and then one per HUB_GAP_MS (the trailing one after the loop):
    // on a quiet machine 30 posts take well under 30 gaps, so far fewer calls than messages.
    const { seq } = await hubStub(env, `room:${room}`).stats();
    expect(seq).toBeGreaterThan(0);
    expect(seq).toBeLessThanOrEqual(Math.min(N, Math.ceil(elapsed / HUB_GAP_MS) + 2));
    if (elapsed < (N / 3) * HUB_GAP_MS) expect(seq).toBeLessThan(N / 2);
  });
});
