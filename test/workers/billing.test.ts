/**
 * The metering wrappers (shared/billing.ts) on real bindings: a metered D1 answers exactly as D1
 * does (first, raw, batch) while counting its rows; a metered queue counts messages and 64 KB
 * units; a consumer batch counts reads, and deletes only for what was acknowledged.
 */
import { createMessageBatch } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { beforeEach, describe, expect, it } from "vitest";
import { meterEnv, meterQueueBatch, unmetered } from "../../shared/billing";
import { meterDurableObject } from "../../shared/billing-do";
import { countedBillable } from "./helpers";

beforeEach(() => {
  countedBillable();
});

describe("metered D1", () => {
  it("answers as D1 does and counts each statement's rows", async () => {
    const metered = meterEnv(env);
    expect(unmetered(metered.DB)).toBe(env.DB);
    const db = metered.DB;
    await db.prepare("CREATE TABLE IF NOT EXISTS billing_probe (id INTEGER PRIMARY KEY, name TEXT)").run();
    await db.prepare("DELETE FROM billing_probe").run();
    countedBillable();

    const inserted = await db.batch([
      db.prepare("INSERT INTO billing_probe (id, name) VALUES (?, ?)").bind(1, "a"),
      db.prepare("INSERT INTO billing_probe (id, name) VALUES (?, ?)").bind(2, "b"),
    ]);
    expect(inserted.map((r) => r.meta.rows_written)).toEqual([1, 1]);
    const afterInsert = countedBillable();
    expect(afterInsert.d1_queries).toBe(2);
    expect(afterInsert.d1_rows_written).toBe(2);

    expect(await db.prepare("SELECT id, name FROM billing_probe ORDER BY id").first()).toEqual({ id: 1, name: "a" });
    expect(await db.prepare("SELECT name FROM billing_probe WHERE id = ?").bind(2).first("name")).toBe("b");
    expect(await db.prepare("SELECT name FROM billing_probe WHERE id = 99").first()).toBeNull();
    await expect(db.prepare("SELECT name FROM billing_probe").first("nope")).rejects.toThrow(/D1_COLUMN_NOTFOUND/);
    expect(await db.prepare("SELECT id, name FROM billing_probe ORDER BY id").raw()).toEqual([
      [1, "a"],
      [2, "b"],
    ]);
    expect(await db.prepare("SELECT id FROM billing_probe ORDER BY id").raw({ columnNames: true })).toEqual([["id"], [1], [2]]);
    const reads = countedBillable();
    expect(reads.d1_queries).toBe(6);
    expect(reads.d1_rows_read).toBeGreaterThanOrEqual(2);
    expect(reads.d1_rows_written ?? 0).toBe(0);
  });
});

describe("metered queues", () => {
  it("counts each message sent and its 64 KB units", async () => {
    const queue = meterEnv(env).Q_METRICS_SYSTEM;
    await queue.send({ small: true });
    await queue.sendBatch([{ body: { a: 1 } }, { body: "x".repeat(70 * 1024) }]);
    const sent = countedBillable();
    expect(sent.queue_messages_sent).toBe(3);
    expect(sent.queue_write_ops).toBe(4); // 1 + 1 + 2 (a 70 KB message is two 64 KB units)
  });

  it("a consumer batch reads every message and deletes only the acknowledged ones", async () => {
    const now = new Date();
    const batch = createMessageBatch("edgemesh-metrics-system", [
      { id: "m1", timestamp: now, attempts: 1, body: { n: 1 } },
      { id: "m2", timestamp: now, attempts: 1, body: { n: 2 } },
      { id: "m3", timestamp: now, attempts: 1, body: { n: 3 } },
    ]);
    await meterQueueBatch(batch, async (b) => {
      b.messages[0]?.ack();
      b.messages[1]?.retry();
      // m3: neither: acknowledged by the batch returning.
    });
    const ok = countedBillable();
    expect(ok.queue_read_ops).toBe(3);
    expect(ok.queue_delete_ops).toBe(2);
    expect(ok.worker_invocations).toBe(1);

    const again = createMessageBatch("edgemesh-metrics-system", [
      { id: "m4", timestamp: now, attempts: 1, body: { n: 4 } },
      { id: "m5", timestamp: now, attempts: 1, body: { n: 5 } },
    ]);
    await expect(
      meterQueueBatch(again, async (b) => {
        b.messages[0]?.ack();
        throw new Error("the consumer failed");
      }),
    ).rejects.toThrow("the consumer failed");
    const failed = countedBillable();
    expect(failed.queue_read_ops).toBe(2);
    expect(failed.queue_delete_ops).toBe(1); // m5 is delivered again, not deleted
  });
});

describe("metered Durable Objects", () => {
  it("count what the object's constructor kept of ctx and env: its SQLite rows, queue sends and calls", async () => {
    const { runInDurableObject } = await import("cloudflare:test");
    // An object that hands its ctx and env to a helper in its constructor, as the twin does with its outbox.
    class Probe {
      readonly kept: { sql: SqlStorage; env: Env };
      constructor(ctx: DurableObjectState, objectEnv: Env) {
        this.kept = { sql: ctx.storage.sql, env: objectEnv };
      }
    }
    const Metered = meterDurableObject(Probe);
    const stub = env.ROOM.get(env.ROOM.idFromName("billing-probe"));
    await runInDurableObject(stub, async (_instance, state) => {
      const probe = new Metered(state, env);
      probe.kept.sql.exec("CREATE TABLE IF NOT EXISTS billing_probe (id INTEGER PRIMARY KEY)");
      probe.kept.sql.exec("DELETE FROM billing_probe");
      countedBillable();
      probe.kept.sql.exec("INSERT INTO billing_probe (id) VALUES (1), (2)");
      await probe.kept.env.Q_METRICS_SYSTEM.send({ probe: true });
      const c = countedBillable();
      expect(c.do_rows_written).toBe(2);
      expect(c.queue_write_ops).toBe(1);
      // Constructed again (as after an eviction): still counted once, not twice.
      const again = new Metered(state, env);
      again.kept.sql.exec("INSERT INTO billing_probe (id) VALUES (3)");
      expect(countedBillable().do_rows_written).toBe(1);
    });
  });
});
