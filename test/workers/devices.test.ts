import { describe, expect, it } from "vitest";
import { SCHEDULE_SOURCE } from "../../shared/schemas/automations";
import { RESERVED_DEVICE_IDS } from "../../shared/schemas/device";
import { ADMIN, call, createDevice, json, post, uniqueId, uniqueIp } from "./helpers";

const adminJson = (method: string, path: string, body?: unknown) =>
  call(path, {
    method,
    headers: { ...ADMIN, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });

interface DeviceBody {
  device: Record<string, unknown> & { id: string; publish: string[] };
  token?: string;
}

describe("the device registry", () => {
  it("creates a device, shows its token once and stores only a hash", async () => {
    const id = uniqueId("new");
    const res = await adminJson("POST", "/v1/devices", { id, type: "temperature", room: "kitchen", metadata: { vendor: "shelly" } });
    expect(res.status).toBe(201);
    expect(res.headers.get("location")).toBe(`/v1/devices/${id}`);
    const created = await json<DeviceBody>(res);
    expect(created.token).toMatch(new RegExp(`^${id}\\.[A-Za-z0-9_-]{43}$`));
    expect(created.device).toMatchObject({
      id,
      type: "temperature",
      room: "kitchen",
      kind: "device",
      class: "mains",
      metadata: { vendor: "shelly" },
    });
    expect(created.device.publish).toEqual(["sensors:sensors.temperature.*", `home.events:home.*.${id}.*`]);

    const read = await call(`/v1/devices/${id}`, { headers: ADMIN });
    const text = await read.text();
    expect(text).not.toContain(created.token?.split(".")[1]);
    expect(text).not.toContain("hash");
  });

  it("answers 409 for an existing id and 400 naming the field for bad input", async () => {
    const { device } = await createDevice({ id: uniqueId("dup"), type: "temperature" });
    const again = await adminJson("POST", "/v1/devices", { id: device.id, type: "temperature" });
    expect(again.status).toBe(409);
    expect(await json(again)).toMatchObject({ error: { code: "conflict", issues: [{ path: "id" }] } });

    for (const [body, path] of [
      [{ id: "Kitchen", type: "temperature" }, "id"],
      [{ id: "__proto__", type: "temperature" }, "id"],
      [{ id: "a.b", type: "temperature" }, "id"],
      [{ id: uniqueId(), type: "Temp Sensor" }, "type"],
      [{ id: uniqueId(), type: "t", publish: ["sensors"] }, "publish.0"],
      [{ id: uniqueId(), type: "t", publish: ["nope:#"] }, "publish.0"],
      [{ id: uniqueId(), type: "t", publish: ["dead.letter:#"] }, "publish.0"],
      [{ id: uniqueId(), type: "t", publish: ["sensors:sensors.temp*"] }, "publish.0"],
      [{ id: uniqueId(), type: "t", extra: 1 }, "extra"],
    ] as const) {
      const res = await adminJson("POST", "/v1/devices", body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      const issues = (await json<{ error: { code: string; issues: { path: string }[] } }>(res)).error.issues;
      expect(
        issues.map((i) => i.path),
        JSON.stringify(body),
      ).toContain(path);
    }
  });

  it("refuses prototype-like metadata keys naming the field, and keeps such ids harmless", async () => {
    const id = `constructor-${Date.now().toString(36)}`;
    const refused = await adminJson("POST", "/v1/devices", { id, type: "t", metadata: { constructor: "y" } });
    expect(refused.status).toBe(400);
    expect((await json<{ error: { issues: { path: string }[] } }>(refused)).error.issues[0]?.path).toBe("metadata.constructor");
    expect((await adminJson("POST", "/v1/devices", { id, type: "t", metadata: { floor: 2 } })).status).toBe(201);
    // JSON.stringify drops the literal __proto__ key; send it raw. zod would drop it silently (issue 14): a 400.
    const protoId = uniqueId("proto");
    const raw = await call("/v1/devices", {
      method: "POST",
      headers: { ...ADMIN, "content-type": "application/json" },
      body: `{"id":"${protoId}","type":"t","metadata":{"__proto__":{"admin":true},"floor":1}}`,
    });
    expect(raw.status).toBe(400);
    expect((await json<{ error: { issues: { path: string }[] } }>(raw)).error.issues[0]?.path).toBe("metadata.__proto__");
    expect((await call(`/v1/devices/${protoId}`, { headers: ADMIN })).status).toBe(404);
    const list = await json<{ devices: { id: string }[] }>(await call("/v1/devices?limit=1000", { headers: ADMIN }));
    expect(list.devices.some((d) => d.id === id)).toBe(true);
    expect(({} as Record<string, unknown>).admin).toBeUndefined();
  });

  it("lists with filters by type, room, kind and metadata, and pages", async () => {
    const room = uniqueId("room").replaceAll("-", "_").slice(0, 60);
    await createDevice({ id: uniqueId("a"), type: "humidity", room, metadata: { floor: 1 } });
    await createDevice({ id: uniqueId("b"), type: "humidity", room, metadata: { floor: 2 } });
    await createDevice({ id: uniqueId("c"), type: "motion", room });
    const byRoom = await json<{ devices: { id: string; type: string }[] }>(await call(`/v1/devices?room=${room}`, { headers: ADMIN }));
    expect(byRoom.devices).toHaveLength(3);
    const byType = await json<{ devices: unknown[] }>(await call(`/v1/devices?room=${room}&type=humidity`, { headers: ADMIN }));
    expect(byType.devices).toHaveLength(2);
    const byMeta = await json<{ devices: { metadata: unknown }[] }>(
      await call(`/v1/devices?room=${room}&meta.floor=2`, { headers: ADMIN }),
    );
    expect(byMeta.devices.map((d) => d.metadata)).toEqual([{ floor: 2 }]);
    const page1 = await json<{ devices: { id: string }[]; next: string }>(
      await call(`/v1/devices?room=${room}&limit=2`, { headers: ADMIN }),
    );
    expect(page1.devices).toHaveLength(2);
    const page2 = await json<{ devices: { id: string }[]; next: string | null }>(
      await call(`/v1/devices?room=${room}&limit=2&after=${page1.next}`, { headers: ADMIN }),
    );
    expect(page2.devices).toHaveLength(1);
    expect(page2.next).toBeNull();
    const bad = await call("/v1/devices?limit=0", { headers: ADMIN });
    expect(bad.status).toBe(400);
    expect(await json(bad)).toMatchObject({ error: { code: "invalid_query", issues: [{ path: "limit" }] } });
    const badMeta = await call("/v1/devices?meta.a%22b=1", { headers: ADMIN });
    expect(badMeta.status).toBe(400);
  });

  it("changes a device, and the twin applies the new room to default routing at once", async () => {
    const { device, token } = await createDevice({ id: uniqueId("mover"), type: "temperature", room: "attic" });
    const res = await adminJson("PATCH", `/v1/devices/${device.id}`, { room: "cellar", name: "Cellar thermometer" });
    expect(res.status).toBe(200);
    expect((await json<DeviceBody>(res)).device).toMatchObject({ room: "cellar", name: "Cellar thermometer" });
    const sent = await json<{ ids: string[]; routed: Record<string, string[]> }>(
      await post("/v1/telemetry", token, { id: "after-move", payload: { temperature: 9 } }),
    );
    expect(sent.routed["after-move"]).toEqual(["sensors.temperature", "archive.metrics"]);
    const narrowed = await adminJson("PATCH", `/v1/devices/${device.id}`, { publish: ["sensors:sensors.temperature.attic"] });
    expect(narrowed.status).toBe(200);
    expect((await post("/v1/telemetry", token, { payload: { temperature: 9 } })).status).toBe(403);
  });

  it("rotates a token: the old one stops working at once, the new one works", async () => {
    const { device, token: old } = await createDevice({ id: uniqueId("rot"), type: "temperature" });
    const res = await adminJson("POST", `/v1/devices/${device.id}/token`);
    expect(res.status).toBe(200);
    const { token } = await json<{ token: string }>(res);
    expect(token).not.toBe(old);
    expect((await post("/v1/telemetry", old, { payload: { temperature: 1 } })).status).toBe(401);
    expect((await post("/v1/telemetry", token, { payload: { temperature: 1 } })).status).toBe(202);
  });

  it("deletes a device: its token stops working and it is gone", async () => {
    const { device, token } = await createDevice({ id: uniqueId("gone"), type: "temperature" });
    expect((await adminJson("DELETE", `/v1/devices/${device.id}`)).status).toBe(204);
    expect((await post("/v1/telemetry", token, { payload: { temperature: 1 } })).status).toBe(401);
    expect((await call(`/v1/devices/${device.id}`, { headers: ADMIN })).status).toBe(404);
    expect((await adminJson("DELETE", `/v1/devices/${device.id}`)).status).toBe(404);
  });

  it("records rejected messages per device, newest first", async () => {
    const { device, token } = await createDevice({ id: uniqueId("err"), type: "temperature" });
    await post("/v1/telemetry", token, [
      { id: "fine", payload: { temperature: 1 } },
      { id: "broken", payload: { temperature: "x" } },
    ]);
    await post("/v1/telemetry", token, { id: "late", timestamp: "2000-01-01T00:00:00Z", payload: { temperature: 1 } });
    const res = await call(`/v1/devices/${device.id}/errors`, { headers: ADMIN });
    expect(res.status).toBe(200);
    const { errors } = await json<{ errors: { message_id: string; code: string; index: number; issues: { path: string }[] }[] }>(res);
    expect(errors.map((e) => [e.message_id, e.code])).toEqual([
      ["late", "timestamp_too_old"],
      ["broken", "invalid_payload"],
    ]);
    expect(errors[1]).toMatchObject({ index: 1, issues: [{ path: "payload.temperature" }] });
  });

  it("requires the admin token, and counts failed admin attempts against the address", async () => {
    expect((await call("/v1/devices")).status).toBe(401);
    const ip = uniqueIp();
    const statuses = [];
    for (let i = 0; i < 11; i++)
      statuses.push((await call("/v1/devices", { headers: { authorization: "Bearer wrong", "cf-connecting-ip": ip } })).status);
    expect(statuses.at(0)).toBe(401);
    expect(statuses.at(-1)).toBe(429);
    const device = (await createDevice({ id: uniqueId("x"), type: "t" })).token;
    expect((await call("/v1/devices", { headers: { authorization: `Bearer ${device}` } })).status).toBe(401);
  });

  it("answers 404 in the error shape for unknown routes and devices", async () => {
    const res = await call("/v1/nothing-here");
    expect(res.status).toBe(404);
    expect(await json(res)).toMatchObject({ error: { code: "not_found" } });
    expect((await call("/v1/devices/NOT_AN_ID", { headers: ADMIN })).status).toBe(404);
  });
});

describe("registry edge cases", () => {
  it("keeps the ids of edgemesh's own message sources away from devices, naming the field", async () => {
    // Consumers trust a message by its source: a device called "scheduler" must not exist.
    for (const source of [SCHEDULE_SOURCE, ...RESERVED_DEVICE_IDS]) {
      const res = await adminJson("POST", "/v1/devices", { id: source, type: "temperature" });
      expect(res.status, source).toBe(400);
      expect(await json(res)).toMatchObject({ error: { code: "invalid_payload", issues: [{ path: "id" }] } });
    }
    expect(RESERVED_DEVICE_IDS).toContain(SCHEDULE_SOURCE);
  });

  it("settles two concurrent creates of one id: one 201 whose token works, one 409", async () => {
    const id = uniqueId("race");
    const body = JSON.stringify({ id, type: "temperature" });
    const create = () => call("/v1/devices", { method: "POST", headers: { ...ADMIN, "content-type": "application/json" }, body });
    const results = await Promise.all([create(), create()]);
    expect(results.map((r) => r.status).sort()).toEqual([201, 409]);
    const winner = results.find((r) => r.status === 201) as Response;
    const { token } = await json<{ token: string }>(winner);
    expect((await post("/v1/telemetry", token, { payload: { temperature: 1 } })).status).toBe(202);
  });

  it("answers 413 for a batch larger than the device's burst, since waiting would never help", async () => {
    const { token } = await createDevice({ id: uniqueId("tiny"), type: "temperature", rate: { per_second: 1, burst: 2 } });
    const res = await post(
      "/v1/telemetry",
      token,
      [1, 2, 3].map((t) => ({ payload: { temperature: t } })),
    );
    expect(res.status).toBe(413);
    expect(await json(res)).toMatchObject({ error: { code: "batch_too_large" } });
  });

  it("refuses an event whose two event_type fields disagree", async () => {
    const { token } = await createDevice({ id: uniqueId("ev"), type: "motion" });
    const res = await post("/v1/events", token, { event_type: "trigger", payload: { event_type: "state_changed" } });
    expect(res.status).toBe(400);
    expect(await json(res)).toMatchObject({ error: { issues: [{ path: "event_type" }] } });
  });
});
