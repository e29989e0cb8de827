/**
 * The lean message history (issue 13) through the real consumer: a batch of packs costs a few D1
 * rows written — counted by the billing meter (shared/billing.ts) — not rows per message; a
 * failure inside a pack gets a per-message row for that message alone; lookups by id, correlation
 * id, device, type and since find messages packed in batch rows; a replay is recorded.
 */
import { createExecutionContext, createMessageBatch, getQueueResult } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { consume } from "../../queues/consumer";
import { metrics as metricsConsumer } from "../../queues/consumers/metrics";
import { ConsumerError } from "../../queues/errors";
import { historyStatements, pruneHistory, recordSteps } from "../../queues/history";
import { meterEnv } from "../../shared/billing";
import { findQueue } from "../../shared/bus/topology";
import { flushMetrics } from "../../shared/metrics";
import type { Envelope } from "../../shared/schemas/message";
import { ADMIN, call, countedBillable, eventually, json, metricEnvelope, uniqueId } from "./helpers";

const found = findQueue("metrics.system");
if (!found) throw new Error("topology lost metrics.system");
const queue = found;

interface Answer {
  messages: {
    id: string;
    correlation_id: string;
    source: string;
    type: string;
    received_at: string;
    steps: { queue: string; status: string; at: string; detail: string | null }[];
  }[];
}

async function history(query: string): Promise<Answer> {
  const res = await call(`/v1/messages?${query}`, { headers: ADMIN });
  expect(res.status).toBe(200);
  return json<Answer>(res);
}

/** `n` metric envelopes from `devices`, received a millisecond apart. */
function readings(n: number, devices: string[], options: { correlation?: string } = {}): Envelope[] {
  const start = Date.now() - n;
  return Array.from({ length: n }, (_, i) => {
    const e = metricEnvelope(uniqueId("lh"), { source: devices[i % devices.length] as string, correlation: options.correlation });
    const at = new Date(start + i).toISOString();
    return { ...e, timestamp: at, received_at: at, payload: { cpu: 50 } } as Envelope; // steady: the default analysis raises nothing (an alert is D1 rows of its own)
  });
}

/** Runs the packs (25 messages each) through consume() as one batch. */
async function consumePacks(messages: Envelope[], handler = metricsConsumer, fail?: (id: string) => unknown) {
  const packs = [];
  for (let i = 0; i < messages.length; i += 25) packs.push(messages.slice(i, i + 25));
  const batch = createMessageBatch(
    "edgemesh-metrics-system",
    packs.map((p, i) => ({ id: `p${i}`, attempts: 1, timestamp: new Date(), body: { pack: 1, messages: p } })),
  );
  const ctx = createExecutionContext();
  await consume(
    batch,
    { env: meterEnv(env), queue },
    fail
      ? async (list) => {
          const errors = new Map<string, unknown>();
          for (const m of list) {
            const error = fail(m.id);
            if (error) errors.set(m.id, error);
          }
          return errors;
        }
      : handler,
  );
  return getQueueResult(batch, ctx);
}

describe("the lean history through the consumer", () => {
  it("writes a few D1 rows for a batch of 100 messages (history, series, counters), not rows per message", async () => {
    const devices = [uniqueId("lhd"), uniqueId("lhd")];
    const messages = readings(100, devices);
    // The meter's own flush is due at most once a minute: flush now so none drains the tally mid-batch.
    await flushMetrics(env.DB, 0);
    countedBillable();
    const result = await consumePacks(messages);
    expect(result.explicitAcks).toHaveLength(4);
    const first = countedBillable().d1_rows_written ?? 0;
    // The next batch of the same devices: their series blocks and latest rows exist already.
    const next = readings(100, devices);
    expect((await consumePacks(next)).explicitAcks).toHaveLength(4);
    const steady = countedBillable().d1_rows_written ?? 0;
    console.warn(
      `MEASURE consumer batch of 100 messages (2 devices, 4 packs of 25): d1_rows_written first=${first} (${first / 100}/message), next=${steady} (${steady / 100}/message)`,
    );
    // 1 history row + 1 queue_stats upsert + per device 1 series block row and 1 latest row (+ a
    // new block's index entry, the hour's rollup mark). The per-message design wrote 209.
    expect(first).toBeLessThanOrEqual(10);
    expect(steady).toBeLessThanOrEqual(6);
    // Every one is findable by id, with its delivered and stored steps.
    for (const m of [messages[0], messages[57], messages[99]] as Envelope[]) {
      const [found] = (await history(`id=${m.id}`)).messages;
      expect(found?.source).toBe(m.source);
      expect(found?.steps.map((s) => [s.queue, s.status])).toEqual([
        ["metrics.system", "delivered"],
        ["metrics.system", "stored"],
      ]);
      expect(found?.steps[1]?.detail).toContain("1 reading");
    }
    // Newest first by device, bounded by limit.
    const byDevice = await history(`device=${devices[1]}&limit=10`);
    expect(byDevice.messages.map((m) => m.id)).toEqual(
      next
        .filter((m) => m.source === devices[1])
        .map((m) => m.id)
        .reverse()
        .slice(0, 10),
    );
  });

  it("a pack with one bad message: only that one gets a failure row; the rest are findable", async () => {
    const device = uniqueId("lhbad");
    const messages = readings(50, [device]);
    const bad = messages[17] as Envelope;
    const flaky = messages[33] as Envelope;
    const result = await consumePacks(messages, undefined, (id) =>
      id === bad.id
        ? new ConsumerError("bad_unit", "no such unit", { retriable: false })
        : id === flaky.id
          ? new ConsumerError("db_down", "connection refused", { retriable: true })
          : undefined,
    );
    expect(result.explicitAcks.sort()).toEqual(["p0", "p1"]);
    const { results } = await env.DB.prepare("SELECT id, steps FROM message_log WHERE source = ?")
      .bind(device)
      .all<{ id: string; steps: string }>();
    expect(results.map((r) => r.id).sort()).toEqual([bad.id, flaky.id].sort());
    expect((await history(`id=${bad.id}`)).messages[0]?.steps.map((s) => s.status)).toEqual(["dead_lettered"]);
    expect((await history(`id=${flaky.id}`)).messages[0]?.steps.map((s) => s.status)).toEqual(["retried"]);
    const all = await history(`device=${device}&limit=500`);
    expect(all.messages).toHaveLength(50);
    expect(all.messages.filter((m) => m.steps.some((s) => s.status === "delivered"))).toHaveLength(48);
  });
});

describe("history lookups over packed batch rows", () => {
  it("answers by id, correlation id, device, type and since, newest first, merging the per-message rows", async () => {
    const device = uniqueId("lhq");
    const flow = uniqueId("flow");
    const early = readings(60, [device]);
    const events = readings(20, [device], { correlation: flow }).map(
      (m) => ({ ...m, type: "event", exchange: "home.events", payload: { event_type: "x" } }) as unknown as Envelope,
    );
    // Three consumer batches of many messages, on two queues.
    await recordSteps(
      env,
      early.map((message) => ({ message, queue: "metrics.system", step: "delivered" as const })),
    );
    await recordSteps(
      env,
      events.map((message) => ({ message, queue: "home.events.automations", step: "delivered" as const })),
    );
    await recordSteps(
      env,
      early.slice(0, 30).map((message) => ({ message, queue: "archive.metrics", step: "stored" as const, detail: "k" })),
    );
    // One event was retried first: its own row, merged with its batch row.
    const retried = events[5] as Envelope;
    await recordSteps(env, [{ message: retried, queue: "home.events.automations", step: "retried", detail: "attempt 1" }]);

    const byId = (await history(`id=${early[3]?.id}`)).messages;
    expect(byId.map((m) => m.id)).toEqual([early[3]?.id]);
    expect(byId[0]?.steps.map((s) => [s.queue, s.status])).toEqual([
      ["metrics.system", "delivered"],
      ["archive.metrics", "stored"],
    ]);
    const flowAnswer = (await history(`correlation_id=${flow}&limit=500`)).messages;
    expect(flowAnswer.map((m) => m.id)).toEqual(events.map((m) => m.id).reverse());
    expect(flowAnswer.find((m) => m.id === retried.id)?.steps.map((s) => s.status)).toEqual(["delivered", "retried"]);
    const byType = (await history(`device=${device}&type=event&limit=500`)).messages;
    expect(byType).toHaveLength(20);
    expect(byType.every((m) => m.type === "event")).toBe(true);
    const since = (early[50] as Envelope).received_at;
    const recent = (await history(`device=${device}&type=metric&since=${since}&limit=500`)).messages;
    expect(recent.map((m) => m.id)).toEqual(
      early
        .slice(50)
        .map((m) => m.id)
        .reverse(),
    );
    expect((await history(`id=${uniqueId("nobody")}`)).messages).toEqual([]);
  });

  it("lists newest first across the read-back windows (rows of hours ago and of now)", async () => {
    const device = uniqueId("lhw");
    const hoursAgo = Date.now() - 5 * 3_600_000;
    const old = readings(30, [device]).map((m, i) => {
      const at = new Date(hoursAgo + i).toISOString();
      return { ...m, timestamp: at, received_at: at };
    });
    await env.DB.batch(
      historyStatements(
        env.DB,
        old.map((message) => ({ message, queue: "metrics.system", step: "delivered" as const })),
        new Date(hoursAgo + 500).toISOString(),
      ),
    );
    const recent = readings(10, [device]);
    await recordSteps(
      env,
      recent.map((message) => ({ message, queue: "metrics.system", step: "delivered" as const })),
    );
    const newestFirst = [...old, ...recent].map((m) => m.id).reverse();
    // 10 are in the first window; the other 25 are found reading further back.
    expect((await history(`device=${device}&limit=35`)).messages.map((m) => m.id)).toEqual(newestFirst.slice(0, 35));
    const since = new Date(hoursAgo - 60_000).toISOString();
    expect((await history(`device=${device}&since=${since}&limit=500`)).messages).toHaveLength(40);
    expect((await history(`id=${old[3]?.id}`)).messages[0]?.steps.map((s) => s.status)).toEqual(["delivered"]);
  });

  it("records a replay: the replayed step on the message's own row, the delivery after it in a batch row", async () => {
    const id = uniqueId("replay");
    const message = {
      ...metricEnvelope(id, { source: uniqueId("lhr") }),
      exchange: "sensors",
      routing_key: "sensors.temperature.lab",
      type: "telemetry",
      payload: { temperature: 21 },
    } as Envelope;
    await env.Q_DEAD_LETTER_QUEUE.send(
      {
        message,
        exchange: "sensors",
        routing_key: "sensors.temperature.lab",
        queue: "sensors.temperature",
        error: { code: "db_down", message: "connection refused" },
        attempts: 4,
        failed_at: new Date().toISOString(),
      },
      { contentType: "json" },
    );
    const letter = await eventually(
      async () => {
        const body = await json<{ dead_letters: { id: number; message_id: string }[] }>(
          await call("/v1/dead-letters?limit=1000", { headers: ADMIN }),
        );
        return body.dead_letters.find((d) => d.message_id === id);
      },
      10_000,
      "the dead letter",
    );
    const res = await call("/v1/dead-letters/replay", {
      method: "POST",
      headers: { ...ADMIN, "content-type": "application/json" },
      body: JSON.stringify({ ids: [letter.id] }),
    });
    expect(res.status).toBe(200);
    const steps = await eventually(
      async () => {
        const found = (await history(`id=${id}`)).messages[0]?.steps ?? [];
        return found.some((s) => s.status === "stored") ? found : undefined;
      },
      10_000,
      "the replayed message stored",
    );
    expect(steps.map((s) => [s.queue, s.status])).toEqual(
      expect.arrayContaining([
        ["sensors.temperature", "replayed"],
        ["sensors.temperature", "delivered"],
        ["sensors.temperature", "stored"],
      ]),
    );
  });

  // Last in the file: the digests cover the finished hours of every row written before it.
  it("finds by id through the hourly digests, and in the hours not digested yet; pruning keeps what is in retention", async () => {
    const device = uniqueId("lhd");
    const threeHoursAgo = Date.now() - 3 * 3_600_000;
    const old = readings(40, [device]).map((m, i) => {
      const at = new Date(threeHoursAgo + i).toISOString();
      return { ...m, timestamp: at, received_at: at };
    });
    await env.DB.batch(
      historyStatements(
        env.DB,
        old.map((message) => ({ message, queue: "metrics.system", step: "delivered" as const })),
        new Date(threeHoursAgo + 200).toISOString(),
      ),
    );
    const fresh = readings(5, [device]);
    await recordSteps(
      env,
      fresh.map((message) => ({ message, queue: "metrics.system", step: "delivered" as const })),
    );
    // The hourly cron: nothing in the 7 days' retention goes; the finished hours are digested.
    await pruneHistory(env, new Date(Date.now() - 7 * 86_400_000));
    const digest = await env.DB.prepare("SELECT hour, ids FROM message_hours WHERE instr(ids, ?) > 0")
      .bind(`\n${old[7]?.id}\n`)
      .all<{ hour: string }>();
    expect(digest.results).toHaveLength(1);
    expect(Date.parse(digest.results[0]?.hour ?? "")).toBe(Math.floor((threeHoursAgo + 200) / 3_600_000) * 3_600_000);
    for (const m of [old[7], old[39], fresh[2]] as Envelope[]) {
      const [found] = (await history(`id=${m.id}`)).messages;
      expect(found?.id).toBe(m.id);
      expect(found?.steps.map((s) => s.status)).toEqual(["delivered"]);
    }
    expect((await history(`id=${uniqueId("nobody")}`)).messages).toEqual([]);
    expect((await history(`device=${device}&limit=500`)).messages).toHaveLength(45);
  });
});
