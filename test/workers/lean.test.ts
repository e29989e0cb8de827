/**
 * The lean ingest path (docs/topology.md "Packs", docs/twins.md "Lazy state"): one outbox row per
 * request, packs per destination queue within each queue's window, the twin's state rebuilt
 * after it is thrown away, and nothing lost or stored twice.
 */
import { createExecutionContext, createMessageBatch, getQueueResult, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it } from "vitest";
import { consume } from "../../queues/consumer";
import { ConsumerError } from "../../queues/errors";
import { findQueue, QUEUES } from "../../shared/bus/topology";
import { QueuePack } from "../../shared/schemas/message";
import { ADMIN, call, createDevice, eventually, json, metricEnvelope, post, uniqueId } from "./helpers";

interface Sent {
  queue: string;
  body: unknown;
  at: number;
}

/** Records every body sent to any queue of the topology (the twin shares these bindings). */
function recordSends(): { sent: Sent[]; restore: () => void } {
  const sent: Sent[] = [];
  const restores: (() => void)[] = [];
  for (const q of QUEUES) {
    const binding = (env as unknown as Record<string, Queue>)[q.binding] as Queue;
    const original = binding.sendBatch.bind(binding);
    binding.sendBatch = (batch: Iterable<MessageSendRequest>, options?: QueueSendBatchOptions) => {
      const list = [...batch];
      for (const m of list) sent.push({ queue: q.name, body: m.body, at: Date.now() });
      return original(list, options);
    };
    restores.push(() => {
      binding.sendBatch = original;
    });
  }
  return {
    sent,
    restore: () => {
      for (const r of restores) r();
    },
  };
}

/** The message ids a body carries: a pack's members, or the envelope itself. */
function idsOf(body: unknown): string[] {
  const pack = QueuePack.safeParse(body);
  if (pack.success) return pack.data.messages.map((m) => m.id);
  return [(body as { id: string }).id];
}

const meter = (device: string, i: number) => ({
  id: `${device}-m-${i}`,
  routing_key: `sensors.energy.${device}`,
  timestamp: new Date(Date.now() - 10_000 + i).toISOString(),
  payload: { power: 100 + i, energy: { value: 1000 + i, unit: "kWh" }, voltage: 230, current: 0.5 },
});

let recorder: ReturnType<typeof recordSends> | undefined;
afterEach(() => {
  recorder?.restore();
  recorder = undefined;
});

async function newMeter() {
  return createDevice({ id: uniqueId("meter"), type: "energy", room: "garage", rate: { per_second: 500, burst: 500 } });
}

describe("packs", () => {
  it("sends a request of N messages as one queue message per destination queue, each within its window", async () => {
    const { device, token } = await newMeter();
    recorder = recordSends();
    const N = 60;
    const posted = Date.now();
    const res = await post(
      "/v1/telemetry",
      token,
      Array.from({ length: N }, (_, i) => meter(device.id, i)),
    );
    expect(res.status).toBe(202);
    const live = await eventually(
      async () => {
        const list = recorder?.sent.filter((s) => s.queue === "sensors.energy") ?? [];
        return list.length > 0 ? list : undefined;
      },
      10_000,
      "the sensors.energy pack",
    );
    // The live queue's window is 250 ms: not sent at once, sent soon.
    expect(live).toHaveLength(1);
    expect((live[0] as Sent).at - posted).toBeGreaterThanOrEqual(250);
    const pack = QueuePack.parse((live[0] as Sent).body);
    expect(pack.messages.map((m) => m.id)).toEqual(Array.from({ length: N }, (_, i) => `${device.id}-m-${i}`));

    // The archive's window (ARCHIVE_PACK_SECONDS, 1 s in the tests, 30 s deployed): later, and whole.
    const archived = await eventually(
      async () => {
        // The transformer's converted copies (derived ids) go there too until the consumer side drops them.
        const list = recorder?.sent.filter((s) => s.queue === "archive.metrics" && idsOf(s.body)[0]?.startsWith(device.id)) ?? [];
        return list.length > 0 ? list : undefined;
      },
      10_000,
      "the archive.metrics pack",
    );
    expect(archived).toHaveLength(1);
    expect((archived[0] as Sent).at - posted).toBeGreaterThanOrEqual(1000);
    expect(idsOf((archived[0] as Sent).body)).toHaveLength(N);
    // The device's messages went nowhere else, and to each queue once.
    const mine = recorder.sent.filter((s) => idsOf(s.body).some((id) => id.startsWith(`${device.id}-m-`)));
    expect(mine.map((s) => s.queue).sort()).toEqual(["archive.metrics", "sensors.energy"]);
  });

  it("splits a pack at 100 messages", async () => {
    const { device, token } = await newMeter();
    recorder = recordSends();
    const N = 250;
    expect(
      (
        await post(
          "/v1/telemetry",
          token,
          Array.from({ length: N }, (_, i) => meter(device.id, i)),
        )
      ).status,
    ).toBe(202);
    const live = await eventually(
      async () => {
        const list = recorder?.sent.filter((s) => s.queue === "sensors.energy") ?? [];
        return list.flatMap((s) => idsOf(s.body)).length >= N ? list : undefined;
      },
      10_000,
      "every message in sensors.energy",
    );
    expect(live.map((s) => idsOf(s.body).length)).toEqual([100, 100, 50]);
  });

  it("dead-letters only the bad member of a pack and acknowledges the pack", async () => {
    const queue = findQueue("metrics.system");
    if (!queue) throw new Error("topology lost metrics.system");
    const good = (id: string) => metricEnvelope(id);

    const [a, bad, c] = [uniqueId("a"), uniqueId("bad"), uniqueId("c")];
    const batch = createMessageBatch("edgemesh-metrics-system", [
      { id: "p1", attempts: 1, timestamp: new Date(), body: { pack: 1, messages: [good(a), good(bad), good(c)] } },
    ]);
    const handled: string[] = [];
    await consume(batch, { env, queue }, async (list) => {
      const errors = new Map<string, unknown>();
      for (const m of list) {
        handled.push(m.id);
        if (m.id === bad) errors.set(m.id, new ConsumerError("bad_unit", "no such unit", { retriable: false }));
      }
      return errors;
    });
    const result = await getQueueResult(batch, createExecutionContext());
    expect(handled).toEqual([a, bad, c]);
    expect(result.explicitAcks).toEqual(["p1"]);
    expect(result.retryMessages).toEqual([]);
    const letters = await eventually(
      async () => {
        const body = await json<{ dead_letters: { message_id: string; queue: string }[] }>(
          await call("/v1/dead-letters?limit=1000", { headers: ADMIN }),
        );
        const mine = body.dead_letters.filter((d) => [a, bad, c].includes(d.message_id));
        return mine.length > 0 ? mine : undefined;
      },
      10_000,
      "the dead letter",
    );
    expect(letters).toEqual([expect.objectContaining({ message_id: bad, queue: "metrics.system" })]);
  });
});

interface TwinBody {
  reported: { readings: Record<string, { value: unknown }> };
  counters: { accepted: number; duplicates: number; rejected: number };
  last_seen: string | null;
}

describe("the twin's lazy state across a restart", () => {
  it("rebuilds reported state, counters and dedupe, sends unsent rows, and loses or doubles nothing", async () => {
    const { device, token } = await newMeter();
    recorder = recordSends();
    const stub = env.DEVICE_TWIN.getByName(device.id);
    // The first request writes a snapshot; the next ones only their outbox rows (within SNAPSHOT_MS).
    for (let i = 0; i < 4; i++) expect((await post("/v1/telemetry", token, meter(device.id, i))).status).toBe(202);
    const before = await json<TwinBody>(await call(`/v1/devices/${device.id}/twin`, { headers: ADMIN }));
    expect(before.counters.accepted).toBe(4);
    const rows = await runInDurableObject(stub, async (_i, state) => ({
      outbox: state.storage.sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM outbox_ring").one().n,
      newer: state.storage.sql
        .exec<{ n: number }>(
          "SELECT COUNT(*) AS n FROM outbox_ring WHERE seq > (SELECT value -> 'mark' ->> 'seq' FROM meta WHERE key = 'lazy')",
        )
        .one().n,
    }));
    // Four requests and the device's coming online; all but the first request are newer than the snapshot.
    expect(rows.outbox).toBe(5);
    expect(rows.newer).toBe(4);

    // Thrown away with its memory and timers, as an eviction or a crash would.
    await runInDurableObject(stub, async (_i, state) => {
      state.abort("test: restart");
    }).catch(() => undefined);

    const after = await json<TwinBody>(await call(`/v1/devices/${device.id}/twin`, { headers: ADMIN }));
    expect(after.counters).toEqual(before.counters);
    expect(after.reported.readings).toEqual(before.reported.readings);
    expect(after.last_seen).toBe(before.last_seen);
    // Dedupe still holds: the same ids again are duplicates.
    const again = await json<{ accepted: number; duplicates: number }>(
      await post(
        "/v1/telemetry",
        token,
        [0, 1, 2, 3].map((i) => meter(device.id, i)),
      ),
    );
    expect(again).toMatchObject({ accepted: 0, duplicates: 4 });
    // Rows the old instance had not sent yet go out after the restart (the alarm is the safety net).
    // A stub that saw the abort stays broken: a new one reaches the new instance.
    await runDurableObjectAlarm(env.DEVICE_TWIN.getByName(device.id));
    // The device's own messages (the transformer's converted copies have derived ids).
    const ids = (queue: string) =>
      recorder?.sent
        .filter((s) => s.queue === queue)
        .flatMap((s) => idsOf(s.body))
        .filter((id) => id.startsWith(`${device.id}-m-`)) ?? [];
    const expected = [0, 1, 2, 3].map((i) => `${device.id}-m-${i}`);
    expect(new Set(ids("archive.metrics"))).toEqual(new Set(expected));
    expect(new Set(ids("sensors.energy"))).toEqual(new Set(expected));
    // Stored once each, whatever was sent twice after the restart.
    for (const id of expected) {
      const stored = await eventually(
        async () => {
          const body = await json<{ messages: { id: string; steps: { status: string; queue: string }[] }[] }>(
            await call(`/v1/messages?id=${id}`, { headers: ADMIN }),
          );
          return body.messages.length > 0 && body.messages[0]?.steps.some((s) => s.queue === "sensors.energy") ? body.messages : undefined;
        },
        15_000,
        `history of ${id}`,
      );
      expect(stored).toHaveLength(1);
    }
  });

  it("writes O(1) rows per request, not per message", async () => {
    const { device, token } = await newMeter();
    const stub = env.DEVICE_TWIN.getByName(device.id);
    const written = async (f: () => Promise<void>) => {
      const cursors: { rowsWritten: number }[] = [];
      await runInDurableObject(stub, async (_i, state) => {
        const sql = state.storage.sql as unknown as { exec: SqlStorage["exec"] };
        const original = sql.exec.bind(state.storage.sql);
        sql.exec = ((query: string, ...bindings: unknown[]) => {
          const cursor = original(query, ...bindings);
          cursors.push(cursor);
          return cursor;
        }) as SqlStorage["exec"];
      });
      await f();
      return cursors.reduce((n, c) => n + c.rowsWritten, 0);
    };
    await post("/v1/telemetry", token, meter(device.id, -1));
    const batch = await written(async () => {
      expect(
        (
          await post(
            "/v1/telemetry",
            token,
            Array.from({ length: 100 }, (_, i) => meter(device.id, i)),
          )
        ).status,
      ).toBe(202);
    });
    // One outbox row, and at most a snapshot's few meta rows; 100 messages used to write ~1,100.
    expect(batch).toBeLessThanOrEqual(6);
  });
});
