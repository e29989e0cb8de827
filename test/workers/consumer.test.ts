/** The retry and dead-letter discipline of every consumer, with batches built by hand. */
import { createExecutionContext, createMessageBatch, getQueueResult } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { backoffSeconds, consume } from "../../queues/consumer";
import { ConsumerError } from "../../queues/errors";
import { findQueue } from "../../shared/bus/topology";
import { ADMIN, call, eventually, json, uniqueId } from "./helpers";

const found = findQueue("metrics.system");
if (!found) throw new Error("topology lost metrics.system");
const queue = found;

function envelope(id: string) {
  const now = new Date().toISOString();
  return {
    id,
    correlation_id: id,
    source: "tester",
    type: "metric",
    exchange: "metrics",
    routing_key: "metrics.system.nas",
    timestamp: now,
    received_at: now,
    payload: { cpu: 1 },
    metadata: {},
    schema_version: 1,
  };
}

async function run(messages: { id: string; attempts: number; body: unknown }[], fail: (id: string) => unknown) {
  const batch = createMessageBatch(
    "edgemesh-metrics-system",
    messages.map((m) => ({ ...m, timestamp: new Date() })),
  );
  const ctx = createExecutionContext();
  await consume(batch, { env, queue }, async (list) => {
    const errors = new Map<string, unknown>();
    for (const m of list) {
      const error = fail(m.id);
      if (error) errors.set(m.id, error);
    }
    return errors;
  });
  return getQueueResult(batch, ctx);
}

async function storedLetter(messageId: string) {
  const res = await call("/v1/dead-letters?limit=1000", { headers: ADMIN });
  const body = await json<{ dead_letters: { message_id: string; queue: string; attempts: number; error: { code: string } }[] }>(res);
  return body.dead_letters.find((d) => d.message_id === messageId);
}

describe("consume()", () => {
  it("acks what succeeded and retries a retriable failure with backoff", async () => {
    const ok = uniqueId("ok");
    const flaky = uniqueId("flaky");
    const result = await run(
      [
        { id: "q1", attempts: 1, body: envelope(ok) },
        { id: "q2", attempts: 1, body: envelope(flaky) },
      ],
      (id) => (id === flaky ? new ConsumerError("db_down", "connection refused", { retriable: true }) : undefined),
    );
    expect(result.explicitAcks).toEqual(["q1"]);
    // The test batch records which messages were retried, not their delay; backoffSeconds is tested below.
    expect(result.retryMessages).toEqual([{ msgId: "q2" }]);
  });

  it("treats an unknown error as retriable", async () => {
    const result = await run([{ id: "q1", attempts: 2, body: envelope(uniqueId()) }], () => new TypeError("boom"));
    expect(result.retryMessages).toEqual([{ msgId: "q1" }]);
    expect(result.explicitAcks).toEqual([]);
  });

  it("dead-letters after three retries, with the queue, error and attempts, and acks", async () => {
    const id = uniqueId("tired");
    const result = await run(
      [{ id: "q1", attempts: 4, body: envelope(id) }],
      () => new ConsumerError("db_down", "connection refused", { retriable: true }),
    );
    expect(result.retryMessages).toEqual([]);
    expect(result.explicitAcks).toEqual(["q1"]);
    const letter = await eventually(() => storedLetter(id), 10_000, "the dead letter");
    expect(letter).toMatchObject({ queue: "metrics.system", attempts: 4, error: { code: "db_down" } });
  });

  it("dead-letters a non-retriable failure at once", async () => {
    const id = uniqueId("poison");
    const result = await run(
      [{ id: "q1", attempts: 1, body: envelope(id) }],
      () => new ConsumerError("bad_unit", "no such unit", { retriable: false }),
    );
    expect(result.explicitAcks).toEqual(["q1"]);
    expect(await eventually(() => storedLetter(id), 10_000, "the dead letter")).toMatchObject({ attempts: 1, error: { code: "bad_unit" } });
  });

  it("acks (and logs) a body that is not an envelope, since nothing could replay it", async () => {
    const result = await run([{ id: "q1", attempts: 1, body: { hello: "world" } }], () => undefined);
    expect(result.explicitAcks).toEqual(["q1"]);
  });

  it("backs off 2, 8, 32 seconds", () => {
    expect([1, 2, 3].map(backoffSeconds)).toEqual([2, 8, 32]);
  });
});

describe("the dead-letter store", () => {
  it("keeps a bare envelope that Cloudflare dead-lettered after consumer crashes, replayable through its exchange", async () => {
    const id = uniqueId("crashed");
    await env.Q_DEAD_LETTER_QUEUE.send(envelope(id), { contentType: "json" });
    const letter = await eventually(() => storedLetter(id), 10_000, "the stored letter");
    expect(letter).toMatchObject({ queue: "(consumer-crashed)", error: { code: "consumer_crashed" } });
  });

  it("stores the same dead letter once however often it is delivered", async () => {
    const id = uniqueId("twice");
    const letter = {
      message: envelope(id),
      exchange: "metrics",
      routing_key: "metrics.system.nas",
      queue: "metrics.system",
      error: { code: "x", message: "y" },
      attempts: 4,
      failed_at: new Date().toISOString(),
    };
    await env.Q_DEAD_LETTER_QUEUE.sendBatch([
      { body: letter, contentType: "json" },
      { body: letter, contentType: "json" },
    ]);
    await eventually(() => storedLetter(id), 10_000, "the stored letter");
    const rows = await env.DB.prepare("SELECT COUNT(*) AS n FROM dead_letters WHERE message_id = ?").bind(id).first<{ n: number }>();
    expect(rows?.n).toBe(1);
  });
});
