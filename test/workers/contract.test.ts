/** The pure parts of the contract: routing-key rules, topic matching and mapping, units, ids. */
import { describe, expect, it } from "vitest";
import { buildEnvelope } from "../../shared/envelope";
import { ERROR_CODES } from "../../shared/error-codes";
import { derivedId } from "../../shared/ids";
import { Envelope } from "../../shared/schemas/message";
import { DEFAULT_TOPIC_RULES, mapTopic, matchesPattern, mqttTopicProblem, patternProblem, routingKeyProblem } from "../../shared/topics";
import { normalize } from "../../shared/units";

describe("routing keys", () => {
  it.each([
    ["sensors.temperature.living_room", undefined],
    ["", "empty"],
    ["a..b", "empty_level"],
    [".a", "empty_level"],
    ["a.", "empty_level"],
    ["a.*.b", "wildcard"],
    ["a.#", "wildcard"],
    ["a+b", "wildcard"],
    ["a\u0000b", "nul"],
    ["a\u0007b", "control_character"],
    ["a\ud800b", "invalid_utf8"],
    ["x".repeat(256), "too_long"],
    ["é".repeat(128), "too_long"],
    ["küche.temperatur", undefined],
  ])("%j → %s", (key, problem) => {
    expect(routingKeyProblem(key)).toBe(problem);
  });

  it("accepts patterns whose wildcards fill whole levels", () => {
    expect(patternProblem("sensors.*.#")).toBeUndefined();
    expect(patternProblem("sensors.temp*")).toBe("wildcard");
    expect(patternProblem("a..#")).toBe("empty_level");
  });
});

describe("AMQP topic matching", () => {
  it.each([
    ["#", "a.b.c", true],
    ["a.#", "a", true],
    ["a.#", "a.b.c", true],
    ["a.#", "b.a", false],
    ["a.*", "a.b", true],
    ["a.*", "a", false],
    ["a.*", "a.b.c", false],
    ["*.b.*", "a.b.c", true],
    ["home.*.*.state_changed", "home.kitchen.lamp.state_changed", true],
    ["home.*.*.state_changed", "home.kitchen.state_changed", false],
    ["a.#.z", "a.z", true],
    ["a.#.z", "a.b.c.z", true],
    ["a.#.z", "a.b.c", false],
    ["#.z", "z", true],
    ["a.#.#.z", "a.q.z", true],
    ["exact", "exact", true],
    ["exact", "exactly", false],
  ])("%s ~ %s = %s", (pattern, key, expected) => {
    expect(matchesPattern(pattern, key)).toBe(expected);
  });
});

describe("MQTT topics → routing keys (seed 004)", () => {
  it("maps homelab/energy/meter1 to the energy route and names the device", () => {
    expect(mapTopic("homelab/energy/meter1")).toMatchObject({ routingKey: "sensors.energy.meter1", device: "meter1" });
  });
  it("maps a multi-level tail with #", () => {
    expect(mapTopic("homelab/heatpump/outdoor/unit")?.routingKey).toBe("sensors.heatpump.outdoor.unit");
  });
  it("maps nothing for a topic no rule matches, or one that would make a bad key", () => {
    expect(mapTopic("other/thing")).toBeUndefined();
    expect(mapTopic("homelab/energy/meter1/extra")).toBeUndefined();
    expect(mapTopic("homelab/energy/")).toBeUndefined();
  });
  it("takes custom rules", () => {
    expect(
      mapTopic("zigbee2mqtt/kitchen_plug", [{ topic: "zigbee2mqtt/+", routing_key: "sensors.plug.{1}", device: "{1}" }]),
    ).toMatchObject({ routingKey: "sensors.plug.kitchen_plug", device: "kitchen_plug" });
    expect(DEFAULT_TOPIC_RULES.length).toBeGreaterThan(0);
  });
  it("rejects wildcards and NUL in published topics [MQTT-3.3.2-2] [MQTT-4.7.3-2]", () => {
    expect(mqttTopicProblem("a/+/b")).toBe("wildcard");
    expect(mqttTopicProblem("a/#")).toBe("wildcard");
    expect(mqttTopicProblem("a\u0000")).toBe("nul");
    expect(mqttTopicProblem("a//b")).toBeUndefined();
  });
});

describe("unit normalization", () => {
  it.each([
    [72, "°F", 22.2222222222, "°C"],
    [32, "F", 0, "°C"],
    [300, "K", 26.85, "°C"],
    [1500, "Wh", 1.5, "kWh"],
    [3.2, "kW", 3200, "W"],
    [1013, "hPa", 1013, "hPa"],
  ])("%d %s → %d %s", (value, unit, expected, canonical) => {
    const n = normalize(value, unit);
    expect(n.unit).toBe(canonical);
    expect(n.value).toBeCloseTo(expected, 6);
  });
  it("keeps the original when it converts, and passes unknown units through", () => {
    expect(normalize(212, "°F")).toEqual({ value: 100, unit: "°C", original: { value: 212, unit: "°F" } });
    expect(normalize(21, "°C")).toEqual({ value: 21, unit: "°C" });
    expect(normalize(5, "furlongs")).toEqual({ value: 5, unit: "furlongs" });
  });
});

describe("ids", () => {
  it("derives the same id from the same inputs, and a different one otherwise", async () => {
    const a = await derivedId("m-1", "transformer");
    expect(a).toBe(await derivedId("m-1", "transformer"));
    expect(a).not.toBe(await derivedId("m-2", "transformer"));
    expect(a).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  });
});

describe("buildEnvelope", () => {
  const ctx = {
    principal: { id: "thermo-1", type: "temperature", room: "kitchen" },
    defaultType: "telemetry" as const,
    allowedTypes: ["telemetry" as const],
    now: Date.parse("2026-01-03T16:00:00Z"),
    limits: { maxFutureSkewMs: 300_000, maxAgeMs: 86_400_000 },
  };
  it("enriches a seed-002 telemetry message into a complete, valid envelope", () => {
    const result = buildEnvelope(
      {
        id: "tel-123456",
        target: "system",
        type: "telemetry",
        payload: { temperature: 22.5, humidity: 45.2, battery: 78 },
        timestamp: "2026-01-03T15:59:00Z",
        metadata: { device_type: "sensor", location: "living_room" },
      },
      ctx,
    );
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    expect(Envelope.parse(result.envelope)).toEqual(result.envelope);
    expect(result.envelope).toMatchObject({
      id: "tel-123456",
      correlation_id: "tel-123456",
      source: "thermo-1",
      exchange: "sensors",
      routing_key: "sensors.temperature.kitchen",
      timestamp: "2026-01-03T15:59:00.000Z",
      received_at: "2026-01-03T16:00:00.000Z",
      schema_version: 1,
    });
  });
  it("refuses a type the endpoint does not take", () => {
    expect(buildEnvelope({ type: "command", payload: { command: "x" } }, ctx)).toMatchObject({
      ok: false,
      code: "invalid_payload",
      issues: [{ path: "type" }],
    });
  });
  it("names every code it can answer with in the error table", () => {
    for (const code of ["invalid_payload", "source_mismatch", "timestamp_in_future", "timestamp_too_old"])
      expect(ERROR_CODES).toHaveProperty(code);
  });
});

describe("the transformer's output", () => {
  it("normalizes, keeps the original, routes to the metrics path, and derives its id from the sender and id", async () => {
    const { transform } = await import("../../queues/consumers/transformer");
    const now = new Date().toISOString();
    const input = {
      id: "t-1",
      correlation_id: "c-1",
      source: "thermo-9",
      type: "telemetry" as const,
      exchange: "sensors",
      routing_key: "sensors.temperature.attic",
      timestamp: now,
      received_at: now,
      payload: { temperature: { value: 212, unit: "°F" }, battery: 80 },
      metadata: {},
      schema_version: 1 as const,
    };
    const out = await transform(input);
    expect(out).toMatchObject({
      type: "metric",
      exchange: "metrics",
      routing_key: "metrics.sensors.temperature.attic",
      causation_id: "t-1",
      correlation_id: "c-1",
      payload: { temperature: { value: 100, unit: "°C", original: { value: 212, unit: "°F" } }, battery: 80 },
    });
    expect(out.id).toBe((await transform(input)).id);
    expect(out.id).not.toBe((await transform({ ...input, source: "thermo-10" })).id);
  });
});

describe("issues name the field at fault", () => {
  it("names each unknown key of a message, not the message", () => {
    const ctx = {
      principal: { id: "d", type: "t", room: null },
      defaultType: "telemetry" as const,
      allowedTypes: ["telemetry" as const],
      now: Date.now(),
      limits: { maxFutureSkewMs: 1000, maxAgeMs: 86_400_000 },
    };
    expect(buildEnvelope({ payload: { t: 1 }, colour: "red", size: 2 }, ctx)).toMatchObject({
      ok: false,
      issues: [
        { path: "colour", message: "is not recognized" },
        { path: "size", message: "is not recognized" },
      ],
    });
  });
});
