/** The retry and dead-letter discipline of every consumer, with batches built by hand. */
import { createExecutionContext, createMessageBatch, getQueueResult } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { backoffSeconds, type ConsumerContext, consume } from "../../queues/consumer";
import { metrics } from "../../queues/consumers/metrics";
import { ConsumerError } from "../../queues/errors";
import { findQueue } from "../../shared/bus/topology";
import { ADMIN, call, eventually, json, metricEnvelope, uniqueId } from "./helpers";

const found = findQueue("metrics.system");
if (!found) throw new Error("topology lost metrics.system");
const queue = found;

const envelope = (id: string) => metricEnvelope(id);

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

/** The real queue bindings, with the sends to metrics.system recorded on their way through. */
function recordingEnv() {
  const sent: { body: { pack: number; messages: { id: string; attempts?: number }[] }; delaySeconds?: number }[] = [];
  const real = env.Q_METRICS_SYSTEM;
  const spy = {
    send: async (body: unknown, options?: QueueSendOptions) => {
      sent.push({ body: body as (typeof sent)[number]["body"], delaySeconds: options?.delaySeconds });
      await real.send(body, options);
    },
    sendBatch: (messages: Iterable<MessageSendRequest>, options?: QueueSendBatchOptions) => real.sendBatch(messages, options),
  };
  return { env: { ...env, Q_METRICS_SYSTEM: spy } as unknown as Env, sent };
}

async function runPack(
  bodies: unknown[],
  fail: (id: string) => unknown,
  options: { attempts?: number; ctx?: Partial<ConsumerContext> } = {},
) {
  const batch = createMessageBatch("edgemesh-metrics-system", [
    { id: "p1", attempts: options.attempts ?? 1, timestamp: new Date(), body: { pack: 1, messages: bodies } },
  ]);
  const ctx = createExecutionContext();
  const seen: { id: string; attempts: number | undefined; carried: unknown }[] = [];
  await consume(batch, { env, queue, ...options.ctx }, async (list, c) => {
    const errors = new Map<string, unknown>();
    for (const m of list) {
      seen.push({ id: m.id, attempts: c.attempts?.get(m.id), carried: (m as { attempts?: number }).attempts });
      const error = fail(m.id);
      if (error) errors.set(m.id, error);
    }
    return errors;
  });
  return { result: await getQueueResult(batch, ctx), seen };
}

describe("consume() with packs", () => {
  it("handles every member on its own; one bad member dead-letters only itself and the pack is acked", async () => {
    const [a, bad, c] = [uniqueId("pa"), uniqueId("pbad"), uniqueId("pc")];
    const { result, seen } = await runPack([envelope(a), envelope(bad), envelope(c)], (id) =>
      id === bad ? new ConsumerError("bad_unit", "no such unit", { retriable: false }) : undefined,
    );
    expect(seen.map((s) => s.id)).toEqual([a, bad, c]);
    expect(result.explicitAcks).toEqual(["p1"]);
    expect(result.retryMessages).toEqual([]);
    expect(await eventually(() => storedLetter(bad), 10_000, "the dead letter")).toMatchObject({
      queue: "metrics.system",
      attempts: 1,
      error: { code: "bad_unit" },
    });
    expect(await storedLetter(a)).toBeUndefined();
    expect(await storedLetter(c)).toBeUndefined();
  });

  it("dead-letters a member that is no envelope as it came, and handles the others", async () => {
    const [a, b] = [uniqueId("pa"), uniqueId("pb")];
    const marker = uniqueId("raw");
    const { result, seen } = await runPack([envelope(a), { hello: marker }, envelope(b)], () => undefined);
    expect(seen.map((s) => s.id)).toEqual([a, b]);
    expect(result.explicitAcks).toEqual(["p1"]);
    const raw = await eventually(
      async () => {
        const body = await json<{ dead_letters: { replayable: boolean; error: { code: string }; message: unknown }[] }>(
          await call("/v1/dead-letters?queue=metrics.system&limit=1000", { headers: ADMIN }),
        );
        return body.dead_letters.find((d) => JSON.stringify(d.message).includes(marker));
      },
      10_000,
      "the raw dead letter",
    );
    expect(raw).toMatchObject({ replayable: false, error: { code: "invalid_message" }, message: { hello: marker } });
    expect(await storedLetter(a)).toBeUndefined();
  });

  it("re-sends only the members that failed retriably, as a smaller pack with a delay and their attempt count", async () => {
    const [a, flaky, c] = [uniqueId("pa"), uniqueId("pflaky"), uniqueId("pc")];
    const { env: recording, sent } = recordingEnv();
    const { result } = await runPack(
      [envelope(a), envelope(flaky), envelope(c)],
      (id) => (id === flaky ? new ConsumerError("db_down", "connection refused", { retriable: true }) : undefined),
      { ctx: { env: recording } },
    );
    expect(result.explicitAcks).toEqual(["p1"]);
    expect(result.retryMessages).toEqual([]);
    expect(sent).toHaveLength(1);
    expect(sent[0]?.delaySeconds).toBe(backoffSeconds(1));
    expect(sent[0]?.body.pack).toBe(1);
    expect(sent[0]?.body.messages.map((m) => [m.id, m.attempts])).toEqual([[flaky, 2]]);
  });

  it("carries the attempt count: handlers see it, the envelope they get does not, and past the last retry the member is dead-lettered", async () => {
    const [tired, fresh] = [uniqueId("ptired"), uniqueId("pfresh")];
    const { env: recording, sent } = recordingEnv();
    const { result, seen } = await runPack(
      [
        { ...envelope(tired), attempts: 4 },
        { ...envelope(fresh), attempts: 2 },
      ],
      () => new ConsumerError("db_down", "connection refused", { retriable: true }),
      { ctx: { env: recording } },
    );
    expect(seen).toEqual([
      { id: tired, attempts: 4, carried: undefined },
      { id: fresh, attempts: 2, carried: undefined },
    ]);
    expect(result.explicitAcks).toEqual(["p1"]);
    expect(sent.map((s) => s.body.messages.map((m) => [m.id, m.attempts]))).toEqual([[[fresh, 3]]]);
    expect(sent[0]?.delaySeconds).toBe(backoffSeconds(2));
    const letter = await eventually(() => storedLetter(tired), 10_000, "the dead letter");
    expect(letter).toMatchObject({ queue: "metrics.system", attempts: 4, error: { code: "db_down" } });
  });

  it("counts a redelivered pack's deliveries on top of the carried attempts", async () => {
    const id = uniqueId("predelivered");
    const { seen } = await runPack([{ ...envelope(id), attempts: 2 }], () => undefined, { attempts: 2 });
    expect(seen[0]?.attempts).toBe(3);
  });

  it("retries the whole pack when the re-send cannot be made", async () => {
    const [a, flaky] = [uniqueId("pa"), uniqueId("pflaky")];
    const { result } = await runPack(
      [envelope(a), envelope(flaky)],
      (id) => (id === flaky ? new ConsumerError("db_down", "connection refused", { retriable: true }) : undefined),
      { ctx: { queue: { ...queue, binding: "Q_NO_SUCH_BINDING" } } },
    );
    expect(result.explicitAcks).toEqual([]);
    expect(result.retryMessages).toEqual([{ msgId: "p1" }]);
  });

  it("refuses a malformed pack whole, as a raw dead letter", async () => {
    const batch = createMessageBatch("edgemesh-metrics-system", [
      { id: "p1", attempts: 1, timestamp: new Date(), body: { pack: 2, messages: "nope" } },
    ]);
    const ctx = createExecutionContext();
    let handled = 0;
    await consume(batch, { env, queue }, async (list) => {
      handled += list.length;
      return undefined;
    });
    const result = await getQueueResult(batch, ctx);
    expect(handled).toBe(0);
    expect(result.explicitAcks).toEqual(["p1"]);
  });

  it("stores nothing twice when a whole pack is delivered again (idempotent sink)", async () => {
    const ids = [uniqueId("pidem"), uniqueId("pidem")];
    const source = uniqueId("packhost");
    const bodies = ids.map((id) => ({ ...envelope(id), source, routing_key: `metrics.system.${source}` }));
    for (const attempts of [1, 2]) {
      const batch = createMessageBatch("edgemesh-metrics-system", [
        { id: "p1", attempts, timestamp: new Date(), body: { pack: 1, messages: bodies } },
      ]);
      const ctx = createExecutionContext();
      await consume(batch, { env, queue }, metrics);
      expect((await getQueueResult(batch, ctx)).explicitAcks).toEqual(["p1"]);
    }
    const { results } = await env.DB.prepare("SELECT COUNT(*) AS n FROM readings WHERE device = ?").bind(source).all<{ n: number }>();
    expect(results[0]?.n).toBe(2);
  });
});

describe("a pack through the real queue and consumer", () => {
  it("stores the good readings of a meter's pack once each and dead-letters only the member that is no reading", async () => {
    const meter = uniqueId("packmeter");
    const at = (i: number) => new Date(Date.now() - 60_000 + i * 1000).toISOString();
    const reading = (i: number) => ({
      ...envelope(`${meter}-r${i}`),
      source: meter,
      type: "telemetry",
      exchange: "sensors",
      routing_key: "sensors.energy.utility",
      timestamp: at(i),
      payload: { power_kw: { value: 3 + i / 10, unit: "kW" }, voltage: { value: 230, unit: "V" } },
    });
    const event = {
      ...envelope(`${meter}-ev`),
      source: meter,
      type: "event",
      exchange: "sensors",
      routing_key: "sensors.energy.utility",
      payload: { event_type: "door_opened" },
    };
    await env.Q_SENSORS_ENERGY.send({ pack: 1, messages: [reading(0), reading(1), event, reading(2)] }, { contentType: "json" });
    const letter = await eventually(() => storedLetter(`${meter}-ev`), 15_000, "the event's dead letter");
    expect(letter).toMatchObject({ queue: "sensors.energy", error: { code: "unexpected_type" } });
    const stored = await eventually(
      async () => {
        const { results } = await env.DB.prepare("SELECT message_id, count(*) AS n FROM readings WHERE device = ? GROUP BY message_id")
          .bind(meter)
          .all<{ message_id: string; n: number }>();
        return results.length === 3 ? Object.fromEntries(results.map((r) => [r.message_id, r.n])) : undefined;
      },
      15_000,
      "the stored readings",
    );
    expect(stored).toEqual({ [`${meter}-r0`]: 2, [`${meter}-r1`]: 2, [`${meter}-r2`]: 2 });
    for (const id of [`${meter}-r0`, `${meter}-r1`, `${meter}-r2`]) expect(await storedLetter(id)).toBeUndefined();
  });
});

describe("the dead-letter store", () => {
  it("keeps a bare envelope that Cloudflare dead-lettered after consumer crashes, replayable through its exchange", async () => {
    const id = uniqueId("crashed");
    await env.Q_DEAD_LETTER_QUEUE.send(envelope(id), { contentType: "json" });
    const letter = await eventually(() => storedLetter(id), 10_000, "the stored letter");
    expect(letter).toMatchObject({ queue: "(consumer-crashed)", error: { code: "consumer_crashed" } });
  });

  it("keeps each member of a pack Cloudflare dead-lettered after consumer crashes as its own replayable letter", async () => {
    const [a, b] = [uniqueId("crashpack"), uniqueId("crashpack")];
    await env.Q_DEAD_LETTER_QUEUE.send({ pack: 1, messages: [envelope(a), { ...envelope(b), attempts: 3 }] }, { contentType: "json" });
    const first = await eventually(() => storedLetter(a), 10_000, "the first member's letter");
    const second = await eventually(() => storedLetter(b), 10_000, "the second member's letter");
    expect(first).toMatchObject({ queue: "(consumer-crashed)", error: { code: "consumer_crashed" }, attempts: 1 });
    expect(second).toMatchObject({ queue: "(consumer-crashed)", attempts: 3 });
    const listed = await json<{ dead_letters: { message_id: string; replayable: boolean; message: { attempts?: number } }[] }>(
      await call("/v1/dead-letters?queue=(consumer-crashed)&limit=1000", { headers: ADMIN }),
    );
    const ours = listed.dead_letters.filter((d) => d.message_id === a || d.message_id === b);
    expect(ours.map((d) => [d.replayable, d.message.attempts])).toEqual([
      [true, undefined],
      [true, undefined],
    ]);
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
