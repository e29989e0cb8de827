/** The seed-001 topology, as drawn, through the real exchanges and Cloudflare Queues. */
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { bindingsFor } from "../../shared/bus/exchange";
import { BINDINGS, EXCHANGES, findQueue, QUEUES } from "../../shared/bus/topology";
import type { DeadLetter } from "../../shared/schemas/api/dead-letter";
import { ADMIN, call, createDevice, eventually, json, post, uniqueId } from "./helpers";

/** Every seed-001 binding, with a routing key it must take and one it must not. */
const DRAWN: [exchange: string, key: string, queues: string[]][] = [
  ["home.events", "home.kitchen.lamp.state_changed", ["home.events.state_changes"]],
  ["home.events", "home.kitchen.lamp.trigger", ["home.events.automations"]],
  ["home.events", "home.kitchen.lamp.other", []],
  ["home.events", "home.kitchen.state_changed", []],
  // Readings also go to archive.metrics from ingest (docs/topology.md, "Archive bindings").
  ["sensors", "sensors.temperature.living_room", ["sensors.temperature", "archive.metrics"]],
  ["sensors", "sensors.temperature", ["sensors.temperature", "archive.metrics"]],
  ["sensors", "sensors.humidity.bathroom.shelf", ["sensors.humidity", "archive.metrics"]],
  ["sensors", "sensors.motion.hallway", ["sensors.motion"]],
  // edgemesh: a type no binding names goes through the alternate exchange to sensors.other (and, like every reading, to archive.metrics).
  ["sensors", "sensors.pressure.attic", ["sensors.other", "archive.metrics"]],
  ["sensors", "sensors.heatpump.meter1", ["sensors.other", "archive.metrics"]],
  ["metrics", "metrics.system.nas.cpu", ["metrics.system"]],
  ["metrics", "metrics.application.api", ["metrics.application"]],
  ["metrics", "metrics.other", []],
  ["ai", "ai.model.resnet", ["ai.inference.requests"]],
  ["ai", "ai.result.resnet", ["ai.inference.results"]],
  ["ai", "ai.decision", []],
  ["alerts", "alerts.critical.nas", ["alerts.critical", "alerts.notifications"]],
  ["alerts", "anything.at.all", ["alerts.critical", "alerts.notifications"]],
  // Each archive queue takes its own kind (docs/topology.md, "Archive bindings").
  ["archive", "archive.events.x", ["archive.events"]],
  ["archive", "archive.metric.metrics.sensors.x", ["archive.metrics"]],
  ["dead.letter", "whatever", ["dead.letter.queue"]],
];

describe("the topology", () => {
  it.each(DRAWN)("%s routes %s to %j", (exchange, key, queues) => {
    expect(bindingsFor(exchange, key).sort()).toEqual([...queues].sort());
  });

  it("sends what the sensors exchange's bindings do not take through its alternate exchange", () => {
    expect(bindingsFor("sensors.alternate", "sensors.co2.office")).toEqual(["sensors.other", "archive.metrics"]);
    expect(findQueue("sensors.other")?.consumer).toBe("transformer");
  });

  it("has the seven exchanges of seed 001 with their types, and the sensors exchange's alternate", () => {
    expect(EXCHANGES.map((e) => [e.name, e.type])).toEqual([
      ["home.events", "topic"],
      ["sensors", "topic"],
      ["metrics", "topic"],
      ["ai", "topic"],
      ["alerts", "fanout"],
      ["archive", "topic"],
      ["dead.letter", "direct"],
      ["sensors.alternate", "fanout"],
    ]);
  });

  it("binds every queue, and every queue has a producer binding in this Worker", () => {
    for (const queue of QUEUES) {
      expect(
        BINDINGS.some((b) => b.queue === queue.name),
        queue.name,
      ).toBe(true);
      expect(typeof (env as unknown as Record<string, Queue>)[queue.binding]?.sendBatch, queue.binding).toBe("function");
    }
  });

  it("routes through the real queues when a service publishes on every exchange", { timeout: 30_000 }, async () => {
    const { token } = await createDevice({
      id: uniqueId("svc"),
      kind: "service",
      type: "router-test",
      publish: ["home.events:#", "sensors:#", "metrics:#", "ai:#", "alerts:#", "archive:#"],
    });
    const sent: [string, string[], string][] = [];
    for (const [exchange, key, queues] of DRAWN) {
      if (exchange === "dead.letter" || queues.length === 0) continue;
      const id = uniqueId("msg");
      const payload =
        exchange === "ai"
          ? key.startsWith("ai.result")
            ? { model: "m", request_id: "r-1", cached: false, outputs: [] }
            : { model: "m", inputs: [{ name: "x", shape: [1], datatype: "FP32", data: [1] }] }
          : exchange === "alerts"
            ? { severity: "critical", title: "disk full" }
            : exchange === "home.events" || exchange === "archive"
              ? { event_type: "state_changed" }
              : { value: 1 };
      const type = exchange === "ai" && key.startsWith("ai.result") ? "inference_result" : undefined;
      const res = await post(`/v1/exchanges/${exchange}/publish`, token, { id, routing_key: key, payload, ...(type && { type }) });
      expect(res.status, `${exchange} ${key}: ${await res.clone().text()}`).toBe(202);
      const routed = (await json<{ routed: Record<string, string[]> }>(res)).routed[id] ?? [];
      expect(routed.sort(), `${exchange} ${key}`).toEqual([...queues].sort());
      sent.push([id, queues, exchange === "sensors" ? "telemetry" : exchange === "metrics" ? "metric" : "event"]);
    }
    // Not only computed: each message was consumed from exactly the queues drawn — and, where a
    // consumer keeps a copy, from the archive queue of its kind too (it forwards the same message there).
    for (const [id, drawn, type] of sent) {
      const archiving = ["archive-feed", "alert-feed", "automations"];
      const kind = type === "telemetry" || type === "metric" ? "archive.metrics" : "archive.events";
      const archived = drawn.some((q) => archiving.includes(findQueue(q)?.consumer ?? "")) ? [kind] : [];
      const queues = [...new Set([...drawn, ...archived])];
      const delivered = await eventually(
        async () => {
          const body = await json<{ messages: { steps: { queue: string; status: string }[] }[] }>(
            await call(`/v1/messages?id=${id}`, { headers: ADMIN }),
          );
          const got = (body.messages[0]?.steps ?? []).filter((s) => s.status === "delivered").map((s) => s.queue);
          return got.length >= queues.length ? got : undefined;
        },
        15_000,
        `deliveries of ${id}`,
      );
      expect(delivered.sort(), id).toEqual([...queues].sort());
    }
  });
});

type DeadLetterView = DeadLetter;

async function deadLetterFor(messageId: string, status = "pending"): Promise<DeadLetterView | undefined> {
  const res = await call(`/v1/dead-letters?status=${status}&limit=1000`, { headers: ADMIN });
  const body = await json<{ dead_letters: DeadLetterView[] }>(res);
  return body.dead_letters.find((d) => d.message_id === messageId);
}

describe("unroutable messages and dead letters", () => {
  it("sends a message no binding takes to the dead letters, marked unroutable, and counts it", async () => {
    const { token } = await createDevice({ id: uniqueId("svc"), kind: "service", type: "t", publish: ["metrics:#"] });
    const id = uniqueId("lost");
    const res = await post("/v1/exchanges/metrics/publish", token, {
      id,
      routing_key: "metrics.other.attic",
      payload: { pressure: 1013 },
    });
    expect(res.status).toBe(202);
    expect((await json<{ routed: Record<string, string[]> }>(res)).routed[id]).toEqual(["dead.letter.queue"]);
    const letter = await eventually(() => deadLetterFor(id), 10_000, "the unroutable dead letter");
    expect(letter).toMatchObject({
      queue: "(unroutable)",
      exchange: "metrics",
      routing_key: "metrics.other.attic",
      error: { code: "unroutable" },
    });
    const topology = await json<{ unroutable: number }>(await call("/v1/topology"));
    expect(topology.unroutable).toBeGreaterThanOrEqual(1);

    const replay = await json<{ replayed: number; still_unroutable: number[] }>(
      await call("/v1/dead-letters/replay", {
        method: "POST",
        headers: { ...ADMIN, "content-type": "application/json" },
        body: JSON.stringify({ ids: [letter.id] }),
      }),
    );
    expect(replay).toMatchObject({ replayed: 0, still_unroutable: [letter.id] });
  });

  it("dead-letters a message its consumer cannot take, with the original exchange and routing key", async () => {
    // An event on the sensors exchange reaches the transformer, which takes only readings.
    const { token } = await createDevice({ id: uniqueId("svc"), kind: "service", type: "t", publish: ["sensors:#"] });
    const id = uniqueId("odd");
    const res = await post("/v1/exchanges/sensors/publish", token, {
      id,
      type: "event",
      routing_key: "sensors.temperature.lab",
      payload: { event_type: "calibrated" },
    });
    expect(res.status).toBe(202);
    const letter = await eventually(() => deadLetterFor(id), 10_000, "the dead letter");
    expect(letter).toMatchObject({
      queue: "sensors.temperature",
      exchange: "sensors",
      routing_key: "sensors.temperature.lab",
      error: { code: "unexpected_type" },
      attempts: 1,
    });
  });

  it("replays a dead letter to the queue it failed on, where it is consumed", async () => {
    const { device } = await createDevice({ id: uniqueId("thermo"), type: "temperature", room: "lab" });
    const id = uniqueId("replay");
    const message = {
      id,
      correlation_id: id,
      source: device.id,
      type: "telemetry",
      exchange: "sensors",
      routing_key: "sensors.temperature.lab",
      timestamp: new Date().toISOString(),
      received_at: new Date().toISOString(),
      payload: { temperature: { value: 68, unit: "°F" } },
      metadata: {},
      schema_version: 1,
    };
    // As the consumer discipline writes it after the third retry of a database outage.
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
    const letter = await eventually(() => deadLetterFor(id), 10_000, "the stored dead letter");
    expect(letter).toMatchObject({ attempts: 4, error: { code: "db_down" } });

    const before = await deliveredTo("sensors.temperature");
    const res = await call("/v1/dead-letters/replay", {
      method: "POST",
      headers: { ...ADMIN, "content-type": "application/json" },
      body: JSON.stringify({ ids: [letter.id] }),
    });
    expect(res.status).toBe(200);
    expect(await json(res)).toMatchObject({ replayed: 1, replayed_ids: [letter.id] });
    expect(await deadLetterFor(id, "replayed")).toMatchObject({ status: "replayed" });
    expect(await deadLetterFor(id, "pending")).toBeUndefined();
    await eventually(async () => ((await deliveredTo("sensors.temperature")) > before ? true : undefined), 10_000, "the replayed delivery");
  });

  it("needs the admin token to list or replay", async () => {
    expect((await call("/v1/dead-letters")).status).toBe(401);
    expect(
      (await call("/v1/dead-letters/replay", { method: "POST", headers: { "content-type": "application/json" }, body: "{}" })).status,
    ).toBe(401);
  });

  it("answers 400 naming the body for a replay request of the wrong shape", async () => {
    const res = await call("/v1/dead-letters/replay", {
      method: "POST",
      headers: { ...ADMIN, "content-type": "application/json" },
      body: JSON.stringify({ ids: "all" }),
    });
    expect(res.status).toBe(400);
    expect(await json(res)).toMatchObject({ error: { code: "invalid_payload", issues: [{ path: "body" }] } });
  });
});

async function deliveredTo(queue: string): Promise<number> {
  const topology = await json<{ queues: { name: string; counts: { delivered: number } }[] }>(await call("/v1/topology"));
  return topology.queues.find((q) => q.name === queue)?.counts.delivered ?? 0;
}

describe("the transformer", () => {
  it("consumes temperature readings in one hop: stored, converted, under their own id, with no metrics.sensors copy", async () => {
    const { token } = await createDevice({ id: uniqueId("thermo"), type: "temperature", room: "lab" });
    const id = uniqueId("t");
    const res = await post("/v1/telemetry", token, { id, payload: { temperature: { value: 212, unit: "°F" } } });
    expect(res.status).toBe(202);
    const steps = await eventually(
      async () => {
        const body = await json<{ messages: { steps: { queue: string; status: string; detail: string | null }[] }[] }>(
          await call(`/v1/messages?id=${id}`, { headers: ADMIN }),
        );
        const found = body.messages[0]?.steps ?? [];
        return found.some((s) => s.status === "stored" && s.queue === "sensors.temperature") ? found : undefined;
      },
      10_000,
      "the stored reading",
    );
    expect(steps).toContainEqual(expect.objectContaining({ queue: "sensors.temperature", status: "delivered" }));
    expect(steps).toContainEqual(
      expect.objectContaining({ queue: "sensors.temperature", status: "stored", detail: expect.stringContaining("1 reading") }),
    );
    // Nothing was re-published: the flow is this one message.
    const flow = await json<{ messages: { id: string }[] }>(await call(`/v1/messages?correlation_id=${id}`, { headers: ADMIN }));
    expect(flow.messages.map((m) => m.id)).toEqual([id]);
  });
});
