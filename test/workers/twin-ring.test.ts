/**
 * The twin's outbox ring (durable-objects/device-twin/ring.ts, docs/twins.md "Outbox ring"): one
 * SQLite row written per request and none later (the slot is reused, never updated or deleted),
 * dedupe across the reuse and a restart, backpressure when every slot is unsent, nothing lost.
 * Rows written are the SqlStorage cursors' `rowsWritten` (what shared/billing-do.ts meters).
 */
import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it } from "vitest";
import { SeenIds } from "../../durable-objects/device-twin/dedupe";
import { TwinOutbox } from "../../durable-objects/device-twin/outbox";
import { packWindow, QUEUES } from "../../shared/bus/topology";
import { QueuePack } from "../../shared/schemas/message";
import { ADMIN, call, countWrites, createDevice, json, metricEnvelope, post, uniqueId } from "./helpers";

/** The twin's queue bindings, held: sends are recorded and not delivered (or fail, for an outage). */
function holdQueues(): { ids: string[]; fail: (on: boolean) => void; restore: () => void } {
  const ids: string[] = [];
  let failing = false;
  const restores: (() => void)[] = [];
  for (const q of QUEUES) {
    const binding = (env as unknown as Record<string, Queue>)[q.binding] as Queue;
    const original = binding.sendBatch.bind(binding);
    binding.sendBatch = async (batch: Iterable<MessageSendRequest>) => {
      if (failing) throw new Error("test: queue outage");
      for (const m of batch) {
        const pack = QueuePack.safeParse(m.body);
        if (pack.success) for (const p of pack.data.messages) ids.push(p.id);
        else ids.push((m.body as { id: string }).id);
      }
      return {} as QueueSendBatchResponse;
    };
    restores.push(() => {
      binding.sendBatch = original;
    });
  }
  return {
    ids,
    fail: (on) => {
      failing = on;
    },
    restore: () => {
      for (const r of restores) r();
    },
  };
}

let held: ReturnType<typeof holdQueues> | undefined;
afterEach(() => {
  held?.restore();
  held = undefined;
});

const SLOTS = 8;
const outboxOn = (sql: SqlStorage, sentUpTo = 0) =>
  new TwinOutbox(
    sql,
    env,
    () => "ring-test",
    (q) => packWindow(q, 0, 0),
    sentUpTo,
    SLOTS,
  );
const row = (id: string) => {
  const m = metricEnvelope(id);
  return { m: [m], r: [["archive.metrics"]] };
};

describe("the outbox ring", () => {
  it("writes one row per request and keeps SLOTS rows, however many requests; dedupe holds across the reuse and a restart", async () => {
    held = holdQueues();
    // Any object's SQLite will do: a twin that was never provisioned has no tables of its own.
    const stub = env.DEVICE_TWIN.getByName(uniqueId("ring"));
    const result = await runInDurableObject(stub, async (_i, state) => {
      const outbox = outboxOn(state.storage.sql);
      const seen = new SeenIds(state.storage.sql);
      // Counted from the first request (the tables are created once per object).
      const written = countWrites(state.storage.sql);
      const N = 5 * SLOTS;
      const ids: string[] = [];
      for (let i = 0; i < N; i++) {
        const id = `ring-${i}-${crypto.randomUUID()}`;
        ids.push(id);
        expect(outbox.hasRoom).toBe(true);
        const seq = outbox.nextSeq(Date.now());
        outbox.append(seq, row(id));
        seen.add([id], seq);
        await outbox.flush(true);
      }
      const rows = written();
      const kept = state.storage.sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM outbox_ring").one().n;
      const seenNow = seen.seenAmong(ids, 0).size;
      // A restart: new objects over the same storage (the ring and the blocks are all there is).
      const again = new SeenIds(state.storage.sql).seenAmong(ids, 0).size;
      const reopened = outboxOn(state.storage.sql, outbox.sentUpTo);
      return { N, rows, kept, seenNow, again, pendingAfterRestart: reopened.pendingRows };
    });
    // One row per request, plus one block of ids per SLOTS requests (the ring's reuse); the old
    // outbox kept a row per request (N rows) and updated and deleted each later.
    expect(result.rows).toBeLessThanOrEqual(result.N + Math.ceil(result.N / SLOTS));
    expect(result.kept).toBe(SLOTS);
    expect(result.seenNow).toBe(result.N);
    expect(result.again).toBe(result.N);
    expect(result.pendingAfterRestart).toBe(0);
    expect(held.ids.filter((id) => id.startsWith("ring-"))).toHaveLength(result.N);
  });

  it("refuses a request when every slot is unsent, grows for the twin's own events, and loses nothing", async () => {
    held = holdQueues();
    held.fail(true);
    const stub = env.DEVICE_TWIN.getByName(uniqueId("ring"));
    const ids = Array.from({ length: SLOTS + 1 }, (_, i) => `full-${i}-${crypto.randomUUID()}`);
    const result = await runInDurableObject(stub, async (_i, state) => {
      const outbox = outboxOn(state.storage.sql);
      for (const id of ids.slice(0, SLOTS)) {
        outbox.append(outbox.nextSeq(Date.now()), row(id));
        await outbox.flush(true);
      }
      const roomWhenFull = outbox.hasRoom;
      let refused = "";
      try {
        outbox.append(outbox.nextSeq(Date.now()), row("never-written"));
      } catch (error) {
        refused = String(error);
      }
      // The twin's own event (availability, a command result) is never refused: the ring grows.
      outbox.append(outbox.nextSeq(Date.now()), row(ids[SLOTS] as string), true);
      const slots = outbox.slots;
      // A restart while the queues are still down: every row is still unsent.
      const reopened = outboxOn(state.storage.sql, 0);
      const pending = reopened.pendingRows;
      held?.fail(false);
      await reopened.flush(true);
      return { roomWhenFull, refused, slots, pending, roomAfter: reopened.hasRoom, left: reopened.pendingRows };
    });
    expect(result.roomWhenFull).toBe(false);
    expect(result.refused).toMatch(/ring full/);
    expect(result.slots).toBe(SLOTS + 1);
    expect(result.pending).toBe(SLOTS + 1);
    expect(result.left).toBe(0);
    expect(result.roomAfter).toBe(true);
    expect(new Set(held.ids.filter((id) => id.startsWith("full-")))).toEqual(new Set(ids));
    expect(held.ids).not.toContain("never-written");
  });
});

describe("a twin written by the version before the ring", () => {
  it("moves the old outbox's unsent rows into the ring, keeps every id for dedupe, and drops the old table", async () => {
    held = holdQueues();
    const stub = env.DEVICE_TWIN.getByName(uniqueId("legacy"));
    const ids = Array.from({ length: 12 }, (_, i) => `legacy-${i}-${crypto.randomUUID()}`);
    const result = await runInDurableObject(stub, async (_i, state) => {
      const sql = state.storage.sql;
      sql.exec("CREATE TABLE outbox (seq INTEGER PRIMARY KEY, ids TEXT NOT NULL, body TEXT)");
      const now = Date.now();
      ids.forEach((id, i) => {
        // Rows 0–9 were sent (the first 5 pruned to their ids), rows 10 and 11 were not.
        const body = i < 5 ? null : JSON.stringify(row(id));
        sql.exec("INSERT INTO outbox (seq, ids, body) VALUES (?, ?, ?)", now - 1000 + i, JSON.stringify([id]), body);
      });
      const outbox = outboxOn(sql, now - 1000 + 9);
      const pending = outbox.pendingRows;
      const legacyLeft = sql.exec("SELECT 1 FROM sqlite_master WHERE name = 'outbox'").toArray().length;
      const seen = new SeenIds(sql).seenAmong(ids, 0).size;
      await outbox.flush(true);
      return { pending, legacyLeft, seen, ring: sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM outbox_ring").one().n };
    });
    expect(result.pending).toBe(2);
    expect(result.legacyLeft).toBe(0);
    expect(result.seen).toBe(ids.length);
    expect(result.ring).toBe(7);
    // Only the unsent rows are sent (other tests' outboxes may send meanwhile: their ids differ).
    expect(new Set(held.ids.filter((id) => id.startsWith("legacy-")))).toEqual(new Set(ids.slice(10)));
  });
});

describe("rows a request writes in a real twin", () => {
  it("HTTPS single: one row per request (the snapshot at most once per SNAPSHOT_MS)", async () => {
    const { device, token } = await createDevice({ id: uniqueId("meter"), type: "energy", rate: { per_second: 1000, burst: 1000 } });
    const stub = env.DEVICE_TWIN.getByName(device.id);
    const meter = (i: number) => ({
      id: `${device.id}-r-${i}`,
      timestamp: new Date(Date.now() - 1000 + i).toISOString(),
      payload: { power: 100 + i, energy: { value: 1000 + i, unit: "kWh" } },
    });
    // The first request brings the device online (its event and availability are rows of their own).
    expect((await post("/v1/telemetry", token, meter(-1))).status).toBe(202);
    const written = await runInDurableObject(stub, async (_i, state) => countWrites(state.storage.sql));
    const N = 30;
    for (let i = 0; i < N; i++) expect((await post("/v1/telemetry", token, meter(i))).status).toBe(202);
    const rows = await runInDurableObject(stub, async () => written());
    // N ring rows, at most one snapshot row (the old outbox's later update and delete are gone).
    expect(rows).toBeGreaterThanOrEqual(N);
    expect(rows).toBeLessThanOrEqual(N + 1);
    const twin = await json<{ counters: { accepted: number } }>(await call(`/v1/devices/${device.id}/twin`, { headers: ADMIN }));
    expect(twin.counters.accepted).toBe(N + 1);
  });

  it("a queue outage: requests are accepted into the ring, sent after a restart once the queues are back, none lost", async () => {
    const { device, token } = await createDevice({ id: uniqueId("meter"), type: "energy", rate: { per_second: 1000, burst: 1000 } });
    held = holdQueues();
    held.fail(true);
    const ids = Array.from({ length: 5 }, (_, i) => `${device.id}-o-${i}`);
    for (const [i, id] of ids.entries())
      expect(
        (await post("/v1/telemetry", token, { id, timestamp: new Date(Date.now() - 1000 + i).toISOString(), payload: { power: i } }))
          .status,
      ).toBe(202);
    await runInDurableObject(env.DEVICE_TWIN.getByName(device.id), async (_i, state) => {
      state.abort("test: restart");
    }).catch(() => undefined);
    held.fail(false);
    const { runDurableObjectAlarm } = await import("cloudflare:test");
    await runDurableObjectAlarm(env.DEVICE_TWIN.getByName(device.id));
    for (const id of ids) expect(held.ids).toContain(id);
    // And the restarted twin still knows them: the same ids again are duplicates.
    const again = await json<{ accepted: number; duplicates: number }>(
      await post(
        "/v1/telemetry",
        token,
        ids.map((id, i) => ({ id, timestamp: new Date(Date.now() - 1000 + i).toISOString(), payload: { power: i } })),
      ),
    );
    expect(again).toMatchObject({ accepted: 0, duplicates: 5 });
  });
});
