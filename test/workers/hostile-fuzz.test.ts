/**
 * Random hostile requests (fast-check) against the real Worker inside workerd: whatever the
 * route, method, credential, content type and body, the answer is never a 5xx and always the
 * project's error body when it is an error.
 */
import fc from "fast-check";
import { beforeAll, describe, expect, it } from "vitest";
import { ADMIN, call, createDevice, uniqueId, uniqueIp } from "./helpers";

let device: { id: string; token: string };

beforeAll(async () => {
  const created = await createDevice({ id: uniqueId("rand"), type: "temperature", room: "kitchen" });
  device = { id: created.device.id, token: created.token };
});

const routes = [
  ["POST", "/v1/telemetry"],
  ["POST", "/v1/events"],
  ["POST", "/v1/exchanges/sensors/publish"],
  ["POST", "/v1/devices"],
  ["PATCH", "/v1/devices/{device}"],
  ["PATCH", "/v1/devices/{device}/twin/desired"],
  ["POST", "/v1/devices/{device}/commands"],
  ["PATCH", "/v1/device/twin/reported"],
  ["POST", "/v1/device/presence"],
  ["POST", "/v1/device/commands/c-1/result"],
  ["POST", "/v1/rooms"],
  ["POST", "/v1/agent/messages"],
  ["POST", "/api/automations"],
  ["POST", "/api/monitoring/alert_rules"],
  ["POST", "/v1/auth/token"],
  ["POST", "/v1/dead-letters/replay"],
  ["GET", "/v1/devices"],
  ["GET", "/v1/messages"],
  ["GET", "/v1/series"],
] as const;

const nested = fc.tuple(fc.integer({ min: 1, max: 5000 }), fc.constantFrom("[", '{"a":'), fc.boolean()).map(([n, open, closed]) => {
  const close = open === "[" ? "]" : "}";
  return open.repeat(n) + "1" + (closed ? close.repeat(n) : "");
});
const hostileKey = fc.constantFrom("__proto__", "constructor", "prototype", "\\u005f_proto__", "", "a.b", "x".repeat(300));
const body = fc.oneof(
  fc.json({ maxDepth: 6 }),
  fc.string({ maxLength: 200 }),
  nested,
  fc.tuple(hostileKey, fc.json({ maxDepth: 2 })).map(([k, v]) => `{"payload":{"${k}":${v}},"metadata":{"${k}":1},"desired":{"${k}":1}}`),
  fc.array(fc.json({ maxDepth: 3 }), { maxLength: 20 }).map((lines) => lines.join("\n")),
);
const credential = fc.constantFrom("device", "bad-device", "admin", "none", "garbage");
const contentType = fc.constantFrom("application/json", "application/x-ndjson", "text/plain", "", "application/json; charset=utf-16");
const query = fc.oneof(
  fc.constant(""),
  fc.tuple(hostileKey, fc.string({ maxLength: 20 })).map(([k, v]) => `?${encodeURIComponent(k)}=${encodeURIComponent(v)}`),
  fc.constantFrom("?limit=-1", "?limit=1e999", "?meta.__proto__=1", "?metric=temperature&bucket=0s", "?since=yesterday"),
);

describe("random hostile requests", () => {
  it("never get a 5xx, and every error has a code", async () => {
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...routes), credential, contentType, body, query, async ([method, path], who, type, text, q) => {
        const headers: Record<string, string> = { "cf-connecting-ip": uniqueIp() };
        if (type) headers["content-type"] = type;
        if (who === "device") headers.authorization = `Bearer ${device.token}`;
        if (who === "bad-device") headers.authorization = `Bearer ${device.id}.${"z".repeat(43)}`;
        if (who === "admin") Object.assign(headers, ADMIN);
        if (who === "garbage") headers.authorization = `Bearer ${text.slice(0, 40).replace(/[^\x21-\x7e]/g, "x") || "x"}`;
        const res = await call(path.replace("{device}", device.id) + q, { method, headers, ...(method !== "GET" && { body: text }) });
        const answer = await res.text();
        expect(res.status, `${method} ${path}${q} as ${who}: ${answer.slice(0, 200)}`).toBeLessThan(500);
        if (res.status >= 400) expect(JSON.parse(answer).error.code).toMatch(/^[a-z_]+$/);
      }),
      { numRuns: 300 },
    );
  }, 120_000);
});
