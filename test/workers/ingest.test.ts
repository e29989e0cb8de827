import { describe, expect, it } from "vitest";
import { ADMIN, call, createDevice, json, post, uniqueId, uniqueIp } from "./helpers";

interface IngestBody {
  accepted: number;
  duplicates: number;
  rejected: { index: number; id?: string; code: string; issues: { path: string; message: string }[] }[];
  ids: (string | null)[];
  routed: Record<string, string[]>;
}
interface ErrorBody {
  error: { code: string; message: string; issues: { path: string; message: string }[] };
  rejected?: IngestBody["rejected"];
}

const thermo = () => createDevice({ id: uniqueId("thermo"), type: "temperature", room: "living_room" });

describe("POST /v1/telemetry", () => {
  it("accepts one reading, keeps the sender's id and routes it by its type and room", async () => {
    const { token } = await thermo();
    const res = await post("/v1/telemetry", token, { id: "tel-123456", payload: { temperature: 22.5, humidity: 45.2, battery: 78 } });
    expect(res.status).toBe(202);
    const body = await json<IngestBody>(res);
    expect(body).toMatchObject({ accepted: 1, duplicates: 0, rejected: [], ids: ["tel-123456"] });
    expect(body.routed["tel-123456"]).toEqual(["sensors.temperature", "archive.metrics"]);
  });

  it("gives a time-ordered UUIDv7 when the sender names no id", async () => {
    const { token } = await thermo();
    const body = await json<IngestBody>(
      await post("/v1/telemetry", token, [{ payload: { temperature: 1 } }, { payload: { temperature: 2 } }]),
    );
    const [a, b] = body.ids as string[];
    expect(a).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(a && b && a < b).toBe(true);
  });

  it("accepts the good messages of a mixed batch and rejects the bad ones one by one", async () => {
    const { token } = await thermo();
    const res = await post("/v1/telemetry", token, [
      { id: "good-1", payload: { temperature: 21 } },
      { id: "bad-name", payload: { Temperature: 21 } },
      { id: "good-2", payload: { temperature: { value: 70, unit: "°F" } } },
      { id: "bad-key", routing_key: "sensors.humidity.bathroom", payload: { humidity: 40 } },
      { id: "bad-type", payload: "warm" },
    ]);
    expect(res.status).toBe(202);
    const body = await json<IngestBody>(res);
    expect(body.accepted).toBe(2);
    expect(body.ids).toEqual(["good-1", null, "good-2", null, null]);
    expect(body.rejected.map((r) => [r.index, r.code])).toEqual([
      [1, "invalid_payload"],
      [3, "forbidden"],
      [4, "invalid_payload"],
    ]);
    expect(body.rejected[0]?.issues[0]?.path).toBe("payload.Temperature");
    expect(body.rejected[1]?.issues[0]?.message).toContain("sensors:sensors.humidity.bathroom");
  });

  it("answers a batch with no good message with 400 and every rejection", async () => {
    const { token } = await thermo();
    const res = await post("/v1/telemetry", token, [{ payload: {} }, { payload: { temperature: "hot" } }]);
    expect(res.status).toBe(400);
    const body = await json<ErrorBody>(res);
    expect(body.error.code).toBe("invalid_payload");
    expect(body.error.issues.map((i) => i.path)).toEqual(["0.payload", "1.payload.temperature"]);
    expect(body.rejected).toHaveLength(2);
  });

  it("takes NDJSON and rejects a bad line alone", async () => {
    const { token } = await thermo();
    const lines = [
      JSON.stringify({ id: "nd-1", payload: { temperature: 20 } }),
      "{not json",
      JSON.stringify({ id: "nd-3", payload: { temperature: 21 } }),
    ];
    const res = await post("/v1/telemetry", token, lines.join("\n"), { "content-type": "application/x-ndjson" });
    expect(res.status).toBe(202);
    const body = await json<IngestBody>(res);
    expect(body.accepted).toBe(2);
    expect(body.rejected).toMatchObject([{ index: 1, code: "invalid_json" }]);
    expect(body.ids).toEqual(["nd-1", null, "nd-3"]);
  });

  it("accepts the same id once: a duplicate is answered as such and routed nowhere", async () => {
    const { token } = await thermo();
    const first = await json<IngestBody>(await post("/v1/telemetry", token, { id: "dup-1", payload: { temperature: 20 } }));
    expect(first).toMatchObject({ accepted: 1, duplicates: 0 });
    const again = await post("/v1/telemetry", token, [
      { id: "dup-1", payload: { temperature: 20 } },
      { id: "dup-2", payload: { temperature: 21 } },
      { id: "dup-2", payload: { temperature: 21 } },
    ]);
    const body = await json<IngestBody>(again);
    expect(body).toMatchObject({ accepted: 1, duplicates: 2, ids: ["dup-1", "dup-2", "dup-2"] });
    expect(Object.keys(body.routed)).toEqual(["dup-2"]);
    // A single duplicate is still a success for the sender: it may stop retrying.
    const single = await post("/v1/telemetry", token, { id: "dup-1", payload: { temperature: 20 } });
    expect(single.status).toBe(202);
    expect(await json(single)).toMatchObject({ accepted: 0, duplicates: 1 });
  });

  it("keeps device time, fills in received time, and rejects skewed or ancient timestamps", async () => {
    const { token } = await thermo();
    const past = new Date(Date.now() - 3_600_000).toISOString();
    const future = new Date(Date.now() + 3_600_000).toISOString();
    const res = await post("/v1/telemetry", token, [
      { id: "ts-past", timestamp: past, payload: { temperature: 1 } },
      { id: "ts-future", timestamp: future, payload: { temperature: 1 } },
      { id: "ts-old", timestamp: "2001-01-01T00:00:00Z", payload: { temperature: 1 } },
      { id: "ts-bad", timestamp: "yesterday", payload: { temperature: 1 } },
      { id: "ts-none", payload: { temperature: 1 } },
    ]);
    const body = await json<IngestBody>(res);
    expect(body.accepted).toBe(2);
    expect(body.rejected.map((r) => [r.id, r.code, r.issues[0]?.path])).toEqual([
      ["ts-future", "timestamp_in_future", "timestamp"],
      ["ts-old", "timestamp_too_old", "timestamp"],
      ["ts-bad", "invalid_payload", "timestamp"],
    ]);
  });

  it("rejects non-finite numbers (JSON's 1e400 parses to Infinity)", async () => {
    const { token } = await thermo();
    const res = await post("/v1/telemetry", token, '{"payload":{"temperature":1e400}}');
    expect(res.status).toBe(400);
    const body = await json<ErrorBody>(res);
    expect(body.error).toMatchObject({ code: "invalid_payload" });
    expect(body.error.issues[0]?.path).toBe("payload.temperature");
  });

  it("refuses a message that names another device as its source", async () => {
    const { token } = await thermo();
    const res = await post("/v1/telemetry", token, { source: "someone-else", payload: { temperature: 1 } });
    expect(res.status).toBe(403);
    expect((await json<ErrorBody>(res)).error).toMatchObject({ code: "source_mismatch", issues: [{ path: "source" }] });
  });

  it("answers 403 forbidden for a single message on a key the device may not publish", async () => {
    const { token } = await thermo();
    const res = await post("/v1/telemetry", token, { routing_key: "sensors.motion.hallway", payload: { motion: true } });
    expect(res.status).toBe(403);
    expect((await json<ErrorBody>(res)).error).toMatchObject({ code: "forbidden", issues: [{ path: "routing_key" }] });
  });

  it("rejects wildcards, empty levels and NUL in routing keys, naming the field", async () => {
    const { token } = await thermo();
    for (const key of ["sensors.temperature.#", "sensors..x", "sensors.temperature.a\u0000b", ".sensors"]) {
      const res = await post("/v1/telemetry", token, { routing_key: key, payload: { temperature: 1 } });
      expect(res.status, key).toBe(400);
      expect((await json<ErrorBody>(res)).error.issues[0]?.path, key).toBe("routing_key");
    }
  });

  it("answers 400 invalid_json for a body that is not JSON, and records it for the device", async () => {
    const { device, token } = await thermo();
    const res = await post("/v1/telemetry", token, "{oops");
    expect(res.status).toBe(400);
    expect((await json<ErrorBody>(res)).error.code).toBe("invalid_json");
    const errors = await json<{ errors: { code: string }[] }>(await call(`/v1/devices/${device.id}/errors`, { headers: ADMIN }));
    expect(errors.errors[0]?.code).toBe("invalid_json");
  });

  it("answers 415 for other content types and 400 for an empty batch", async () => {
    const { token } = await thermo();
    const wrongType = await post("/v1/telemetry", token, "temperature=1", { "content-type": "application/x-www-form-urlencoded" });
    expect(wrongType.status).toBe(415);
    expect((await json<ErrorBody>(wrongType)).error.code).toBe("unsupported_media_type");
    const empty = await post("/v1/telemetry", token, []);
    expect(empty.status).toBe(400);
    expect((await json<ErrorBody>(empty)).error.code).toBe("empty_batch");
  });

  it("answers 413 for a body over the limit, a message over the limit, and too many messages", async () => {
    const { token } = await thermo();
    const huge = await post(
      "/v1/telemetry",
      token,
      JSON.stringify({ payload: { temperature: 1 }, metadata: { pad: "x".repeat(1_100_000) } }),
    );
    expect(huge.status).toBe(413);
    expect((await json<ErrorBody>(huge)).error.code).toBe("payload_too_large");

    const bigMessage = await post("/v1/telemetry", token, {
      payload: { temperature: 1 },
      target: "x",
      metadata: Object.fromEntries(Array.from({ length: 30 }, (_, i) => [`k${i}`, "y".repeat(250)])),
      pad: "z".repeat(70_000),
    });
    expect(bigMessage.status).toBe(413);
    expect((await json<ErrorBody>(bigMessage)).error.code).toBe("message_too_large");

    const many = await post(
      "/v1/telemetry",
      token,
      Array.from({ length: 501 }, () => ({ payload: { temperature: 1 } })),
    );
    expect(many.status).toBe(413);
    expect((await json<ErrorBody>(many)).error.code).toBe("batch_too_large");
  });

  it("answers 429 with Retry-After when a device goes over its rate", async () => {
    const { token } = await createDevice({ id: uniqueId("chatty"), type: "temperature", rate: { per_second: 1, burst: 3 } });
    const ok = await post(
      "/v1/telemetry",
      token,
      [1, 2, 3].map((t) => ({ payload: { temperature: t } })),
    );
    expect(ok.status).toBe(202);
    const limited = await post("/v1/telemetry", token, { payload: { temperature: 4 } });
    expect(limited.status).toBe(429);
    expect(limited.headers.get("retry-after")).toBe("1");
    expect((await json<ErrorBody>(limited)).error.code).toBe("rate_limited");
  });
});

describe("device authentication", () => {
  it("answers 401 with the error shape for a missing, malformed, wrong or unknown token", async () => {
    const { device } = await thermo();
    const cases: [string, Record<string, string>][] = [
      ["missing", {}],
      ["not bearer", { authorization: "Basic Zm9vOmJhcg==" }],
      ["no device part", { authorization: "Bearer justasecretwithoutanydevice" }],
      ["wrong secret", { authorization: `Bearer ${device.id}.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA` }],
      ["unknown device", { authorization: "Bearer nobody-here.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA" }],
    ];
    for (const [name, headers] of cases) {
      const res = await call("/v1/telemetry", {
        method: "POST",
        headers: { "content-type": "application/json", "cf-connecting-ip": uniqueIp(), ...headers },
        body: JSON.stringify({ payload: { temperature: 1 } }),
      });
      expect(res.status, name).toBe(401);
      expect(res.headers.get("www-authenticate"), name).toContain("Bearer");
      expect((await json<ErrorBody>(res)).error.code, name).toBe("unauthorized");
    }
  });

  it("authenticates before it judges the body", async () => {
    const res = await call("/v1/telemetry", {
      method: "POST",
      headers: {
        "content-type": "application/json",
        "cf-connecting-ip": uniqueIp(),
        authorization: "Bearer ghost.AAAAAAAAAAAAAAAAAAAAAAAAAAAA",
      },
      body: "{not json",
    });
    expect(res.status).toBe(401);
  });

  it("rate-limits failed attempts per client address with 429 and Retry-After", async () => {
    const ip = uniqueIp();
    const attempt = () =>
      call("/v1/telemetry", {
        method: "POST",
        headers: {
          "content-type": "application/json",
          "cf-connecting-ip": ip,
          authorization: "Bearer guess.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        },
        body: "{}",
      });
    const statuses: number[] = [];
    for (let i = 0; i < 11; i++) statuses.push((await attempt()).status);
    expect(statuses.slice(0, 10)).toEqual(Array(10).fill(401));
    const blocked = await attempt();
    expect(blocked.status).toBe(429);
    expect(blocked.headers.get("retry-after")).toBe("60");
    expect((await json<ErrorBody>(blocked)).error.code).toBe("too_many_failed_attempts");
    // Another address is not affected.
    const { token } = await thermo();
    expect((await post("/v1/telemetry", token, { payload: { temperature: 1 } })).status).toBe(202);
  });
});

describe("POST /v1/events", () => {
  it("routes a state change to home.events.state_changes and a trigger to home.events.automations", async () => {
    const { device, token } = await createDevice({ id: uniqueId("motion"), type: "motion", room: "hallway" });
    const res = await post("/v1/events", token, [
      { id: "ev-1", event_type: "state_changed", payload: { previous_state: "clear", current_state: "detected" } },
      { id: "ev-2", payload: { event_type: "trigger" } },
    ]);
    expect(res.status).toBe(202);
    const body = await json<IngestBody>(res);
    expect(body.routed).toEqual({ "ev-1": ["home.events.state_changes"], "ev-2": ["home.events.automations"] });
    expect(device.publish).toContain(`home.events:home.*.${device.id}.*`);
  });
});

describe("POST /v1/exchanges/:exchange/publish", () => {
  const service = (publish: string[]) => createDevice({ id: uniqueId("svc"), kind: "service", type: "collector", publish });

  it("lets a service publish what its permissions allow, and nothing else", async () => {
    const { token } = await service(["metrics:metrics.system.#"]);
    const ok = await post("/v1/exchanges/metrics/publish", token, {
      id: "m-1",
      routing_key: "metrics.system.nas.cpu",
      payload: { cpu_percent: 12.5 },
    });
    expect(ok.status).toBe(202);
    expect((await json<IngestBody>(ok)).routed).toEqual({ "m-1": ["metrics.system"] });
    const denied = await post("/v1/exchanges/metrics/publish", token, { routing_key: "metrics.application.api", payload: { rps: 3 } });
    expect(denied.status).toBe(403);
  });

  it("gives services no permissions by default", async () => {
    const { device, token } = await createDevice({ id: uniqueId("svc"), kind: "service", type: "collector" });
    expect(device.publish).toEqual([]);
    expect((await post("/v1/exchanges/metrics/publish", token, { routing_key: "metrics.system.x", payload: { a: 1 } })).status).toBe(403);
  });

  it("answers 404 for an unknown exchange and 403 for the dead-letter exchange", async () => {
    const { token } = await service(["metrics:#"]);
    const unknown = await post("/v1/exchanges/nope/publish", token, { payload: { a: 1 } });
    expect(unknown.status).toBe(404);
    expect((await json<ErrorBody>(unknown)).error).toMatchObject({ code: "unknown_exchange", issues: [{ path: "exchange" }] });
    const dead = await post("/v1/exchanges/dead.letter/publish", token, { payload: { a: 1 } });
    expect(dead.status).toBe(403);
  });

  it("validates the payload of the message type (inference request)", async () => {
    const { token } = await service(["ai:ai.model.#"]);
    const bad = await post("/v1/exchanges/ai/publish", token, { payload: { model: "resnet", inputs: [] } });
    expect(bad.status).toBe(400);
    expect((await json<ErrorBody>(bad)).error.issues[0]?.path).toBe("payload.inputs");
    const good = await post("/v1/exchanges/ai/publish", token, {
      id: "inf-1",
      payload: { model: "resnet", inputs: [{ name: "x", shape: [1], datatype: "FP32", data: [0.5] }] },
    });
    expect(good.status).toBe(202);
    expect((await json<IngestBody>(good)).routed).toEqual({ "inf-1": ["ai.inference.requests"] });
  });
});

describe("review findings", () => {
  it("answers the same id sent twice at once: both 202, routed once, never a duplicate of a failed publish", async () => {
    const { token } = await thermo();
    const body = { id: "concurrent-1", payload: { temperature: 20 } };
    const [a, b] = await Promise.all([post("/v1/telemetry", token, body), post("/v1/telemetry", token, body)]);
    expect([a.status, b.status]).toEqual([202, 202]);
    const answers = [await json<IngestBody>(a), await json<IngestBody>(b)];
    expect(answers.map((x) => x.accepted).sort()).toEqual([0, 1]);
    expect(answers.map((x) => x.duplicates).sort()).toEqual([0, 1]);
  });

  it("keeps two devices' messages with the same id apart", async () => {
    const one = await thermo();
    const two = await thermo();
    const a = await json<IngestBody>(await post("/v1/telemetry", one.token, { id: "shared-id", payload: { temperature: 1 } }));
    const b = await json<IngestBody>(await post("/v1/telemetry", two.token, { id: "shared-id", payload: { temperature: 2 } }));
    expect([a.accepted, b.accepted]).toEqual([1, 1]);
  });

  it("normalizes units at ingest and enriches with what the edge knows", async () => {
    const { device, token } = await thermo();
    await post("/v1/telemetry", token, { payload: { temperature: { value: 212, unit: "°F" } } });
    const twin = await json<{ reported: { readings: { temperature: { value: number; unit: string } } } }>(
      await call(`/v1/devices/${device.id}/twin`, { headers: ADMIN }),
    );
    expect(twin.reported.readings.temperature).toMatchObject({ value: 100, unit: "°C" });
  });

  it("answers 400 for a batch whose messages all fail with the same code", async () => {
    const { token } = await thermo();
    const res = await post("/v1/telemetry", token, [
      { routing_key: "sensors.motion.x", payload: { m: 1 } },
      { routing_key: "sensors.motion.y", payload: { m: 1 } },
    ]);
    expect(res.status).toBe(400);
    expect((await json<ErrorBody>(res)).error.code).toBe("forbidden");
  });
});
