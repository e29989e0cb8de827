/** Hostile bodies with a bad credential: every failure counts against the failed-auth limit. */
import { describe, expect, it } from "vitest";
import { call, createDevice, json, uniqueId, uniqueIp } from "./helpers";

const deep = "[".repeat(3000) + "]".repeat(3000);

describe("a bad device credential with a hostile body", () => {
  for (const [method, path] of [
    ["POST", "/v1/telemetry"],
    ["PATCH", "/v1/device/twin/reported"],
    ["POST", "/v1/device/presence"],
  ] as const) {
    it(`${method} ${path}: 401 and, past the limit, 429 — never a 400 or a 5xx`, async () => {
      const { device } = await createDevice({ id: uniqueId("hostile"), type: "temperature" });
      const ip = uniqueIp();
      const statuses: number[] = [];
      // 25 tries: the limit (10 a minute) is a fixed window, so even across one boundary a window sees 11.
      for (let i = 0; i < 25; i++) {
        const res = await call(path, {
          method,
          headers: { authorization: `Bearer ${device.id}.${"w".repeat(43)}`, "content-type": "application/json", "cf-connecting-ip": ip },
          body: i % 2 ? deep : `{"payload":{"__proto__":1}}`,
        });
        statuses.push(res.status);
        await res.body?.cancel();
      }
      expect(statuses.slice(0, 5)).toEqual(Array(5).fill(401));
      expect(new Set(statuses)).toEqual(new Set([401, 429]));
    });
  }

  it("a good credential with a deep body gets too_deep naming the limit, recorded against the device", async () => {
    const { device, token } = await createDevice({ id: uniqueId("hostile"), type: "temperature" });
    const res = await call("/v1/telemetry", {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json", "cf-connecting-ip": uniqueIp() },
      body: `{"payload":{"temperature":${deep}}}`,
    });
    expect(res.status).toBe(400);
    const body = await json<{ error: { code: string; message: string; issues: { path: string }[] } }>(res);
    expect(body.error.code).toBe("too_deep");
    expect(body.error.message).toContain("MAX_JSON_DEPTH");
    expect(body.error.issues[0]?.path).toMatch(/^payload\.temperature(\.0)+$/);
    const errors = await call(`/v1/devices/${device.id}/errors`, { headers: { authorization: "Bearer test-admin-token" } });
    expect((await json<{ errors: { code: string }[] }>(errors)).errors[0]?.code).toBe("too_deep");
  });

  it("a device created with a prototype key in its metadata is refused, not stored without it", async () => {
    const id = uniqueId("proto");
    const res = await call("/v1/devices", {
      method: "POST",
      headers: { authorization: "Bearer test-admin-token", "content-type": "application/json" },
      body: `{"id":"${id}","type":"temperature","metadata":{"__proto__":{"admin":true}}}`,
    });
    expect(res.status).toBe(400);
    const missing = await call(`/v1/devices/${id}`, { headers: { authorization: "Bearer test-admin-token" } });
    expect(missing.status).toBe(404);
  });
});
