/** DeviceTwin: reported merge rules, desired state with versions, availability by alarms. */
import { runDurableObjectAlarm } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { computeDelta, documentProblem, mergeDocument, mergeReadings } from "../../durable-objects/twin-document";
import type { TwinView } from "../../shared/schemas/api/twin";
import { ADMIN, call, createDevice, eventually, json, post, uniqueId } from "./helpers";

type Twin = TwinView;

const getTwin = async (id: string) => json<Twin>(await call(`/v1/devices/${id}/twin`, { headers: ADMIN }));
const patchDesired = (id: string, desired: unknown, ifMatch?: string) =>
  call(`/v1/devices/${id}/twin/desired`, {
    method: "PATCH",
    headers: { ...ADMIN, "content-type": "application/json", ...(ifMatch !== undefined && { "if-match": ifMatch }) },
    body: JSON.stringify({ desired }),
  });

describe("twin documents (pure rules)", () => {
  it("never lets an older reading overwrite a newer one", () => {
    const current = { t: { value: 20, at: "2026-01-01T10:00:00Z" } };
    expect(mergeReadings(current, { t: { value: 5, at: "2026-01-01T09:00:00Z" } })).toEqual([]);
    expect(current.t.value).toBe(20);
    expect(mergeReadings(current, { t: { value: 21, at: "2026-01-01T11:00:00Z" } })).toEqual(["t"]);
    expect(current.t.value).toBe(21);
  });
  it("merges objects per key, replaces arrays whole, deletes with null", () => {
    const doc = { a: { x: 1, y: 2 }, list: [1, 2, 3], gone: true };
    expect(mergeDocument(doc, { a: { y: 3, z: 4 }, list: [9], gone: null })).toEqual({ a: { x: 1, y: 3, z: 4 }, list: [9] });
  });
  it("computes the delta recursively", () => {
    expect(
      computeDelta(
        { target: 21, mode: "heat", schedule: { mon: [1, 2], tue: [3] } },
        { target: 21, mode: "off", schedule: { mon: [1, 2] } },
      ),
    ).toEqual({
      mode: "heat",
      schedule: { tue: [3] },
    });
  });
  it("bounds size and depth", () => {
    expect(documentProblem({ big: "x".repeat(9000) })).toMatch(/bytes/);
    expect(documentProblem({ a: { b: { c: { d: { e: { f: { g: 1 } } } } } } })).toMatch(/levels/);
    expect(documentProblem({ ok: { fine: [1, 2] } })).toBeUndefined();
  });
});

describe("GET /v1/devices/:id/twin", () => {
  it("merges readings per key by device time, out of order", async () => {
    const { device, token } = await createDevice({ id: uniqueId("twin"), type: "temperature", room: "lab" });
    const t = (m: number) => new Date(Date.now() - m * 60_000).toISOString();
    expect((await post("/v1/telemetry", token, { timestamp: t(1), payload: { temperature: 22, humidity: 40 } })).status).toBe(202);
    expect((await post("/v1/telemetry", token, { timestamp: t(10), payload: { temperature: 5, battery: 90 } })).status).toBe(202);
    const twin = await getTwin(device.id);
    expect(twin.reported.readings.temperature?.value).toBe(22);
    expect(twin.reported.readings.humidity?.value).toBe(40);
    expect(twin.reported.readings.battery?.value).toBe(90);
    expect(twin.counters).toMatchObject({ accepted: 2, duplicates: 0, rejected: 0 });
    expect(twin.availability.status).toBe("online");
    expect(twin.last_seen).not.toBeNull();
  });

  it("keeps the last hour of readings for fast views", async () => {
    const { device, token } = await createDevice({ id: uniqueId("ring"), type: "temperature" });
    await post(
      "/v1/telemetry",
      token,
      [1, 2, 3].map((v, i) => ({
        timestamp: new Date(Date.now() - (3 - i) * 1000).toISOString(),
        payload: { temperature: v, door: i % 2 === 0 },
      })),
    );
    const res = await call(`/v1/devices/${device.id}/readings?metric=temperature&minutes=60`, { headers: ADMIN });
    const body = await json<{ readings: { value: unknown; metric: string }[] }>(res);
    expect(body.readings.map((r) => r.value)).toEqual([1, 2, 3]);
    const all = await json<{ readings: { value: unknown; metric: string }[] }>(
      await call(`/v1/devices/${device.id}/readings`, { headers: ADMIN }),
    );
    expect(all.readings.filter((r) => r.metric === "door").map((r) => r.value)).toEqual([true, false, true]);
  });

  it("answers 404 for an unknown device", async () => {
    expect((await call("/v1/devices/nobody-at-all/twin", { headers: ADMIN })).status).toBe(404);
  });
});

describe("desired state", () => {
  it("merges a patch, bumps the version, and shows the delta against reported", async () => {
    const { device, token } = await createDevice({ id: uniqueId("thermostat"), type: "temperature" });
    await post("/v1/telemetry", token, { payload: { target_temperature: 19 } });
    const res = await patchDesired(device.id, { target_temperature: 21, schedule: { weekdays: [7, 22] } });
    expect(res.status).toBe(200);
    expect(res.headers.get("etag")).toBe('"1"');
    const twin = await json<Twin>(res);
    expect(twin).toMatchObject({
      version: 1,
      desired: { target_temperature: 21, schedule: { weekdays: [7, 22] } },
      delta: { target_temperature: 21, schedule: { weekdays: [7, 22] } },
    });
    // The device catches up: a reading and reported state clear the delta.
    await post("/v1/telemetry", token, { payload: { target_temperature: 21 } });
    const reported = await call("/v1/device/twin/reported", {
      method: "PATCH",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: JSON.stringify({ reported: { schedule: { weekdays: [7, 22] } } }),
    });
    expect(reported.status).toBe(200);
    expect((await getTwin(device.id)).delta).toEqual({});
  });

  it("refuses a stale If-Match with 412 and accepts the current one", async () => {
    const { device } = await createDevice({ id: uniqueId("occ"), type: "t" });
    expect((await patchDesired(device.id, { a: 1 }, '"0"')).status).toBe(200);
    const stale = await patchDesired(device.id, { a: 2 }, '"0"');
    expect(stale.status).toBe(412);
    expect(await json(stale)).toMatchObject({ error: { code: "precondition_failed" } });
    expect((await patchDesired(device.id, { a: 2 }, "1")).status).toBe(200);
    expect((await getTwin(device.id)).desired).toEqual({ a: 2 });
    const bad = await patchDesired(device.id, { a: 3 }, "yesterday");
    expect(bad.status).toBe(400);
    expect(await json(bad)).toMatchObject({ error: { issues: [{ path: "If-Match" }] } });
  });

  it("rejects documents over the size or depth limit, naming the field, and keeps the old one", async () => {
    const { device } = await createDevice({ id: uniqueId("big"), type: "t" });
    await patchDesired(device.id, { keep: 1 });
    const big = await patchDesired(device.id, { blob: "x".repeat(9000) });
    expect(big.status).toBe(400);
    expect(await json(big)).toMatchObject({ error: { code: "invalid_payload", issues: [{ path: "desired" }] } });
    expect((await patchDesired(device.id, {})).status).toBe(400);
    expect((await getTwin(device.id)).desired).toEqual({ keep: 1 });
  });
});

async function stateChanges(deviceId: string) {
  const res = await call(`/v1/messages?device=${deviceId}&type=event&limit=50`, { headers: ADMIN });
  const body = await json<{ messages: { routing_key: string; steps: { queue: string; status: string }[] }[] }>(res);
  return body.messages;
}

describe("availability", () => {
  it("goes online on a message, offline by alarm after the timeout, and publishes each transition", async () => {
    const id = uniqueId("avail");
    const { token } = await createDevice({ id, type: "temperature", room: "porch" });
    expect((await getTwin(id)).availability).toMatchObject({ status: "offline", reason: "never_seen" });
    await post("/v1/telemetry", token, { payload: { temperature: 10 } });
    expect((await getTwin(id)).availability).toMatchObject({ status: "online", reason: "message" });

    // Pretend the device has been silent for 11 minutes (mains: stale at 2, offline at 10).
    const stub = env.DEVICE_TWIN.getByName(id);
    await stubSilence(id, 11 * 60_000);
    expect(await runDurableObjectAlarm(stub)).toBe(true);
    expect((await getTwin(id)).availability).toMatchObject({ status: "offline", reason: "timeout" });

    const events = await eventually(
      async () => {
        const list = await stateChanges(id);
        return list.length >= 2 ? list : undefined;
      },
      10_000,
      "two state_changed events",
    );
    expect(events.map((e) => e.routing_key)).toEqual([`home.porch.${id}.state_changed`, `home.porch.${id}.state_changed`]);
    expect(events[0]?.steps.map((s) => s.queue)).toContain("home.events.state_changes");
    const registry = await json<{ devices: { id: string }[] }>(
      await call("/v1/devices?availability=offline&limit=1000", { headers: ADMIN }),
    );
    expect(registry.devices.some((d) => d.id === id)).toBe(true);
  });

  it("goes stale before offline, with per-class timeouts", async () => {
    const id = uniqueId("battery");
    const { token } = await createDevice({ id, type: "humidity", class: "battery" });
    await post("/v1/telemetry", token, { payload: { humidity: 50 } });
    await stubSilence(id, 30 * 60_000);
    await runDurableObjectAlarm(env.DEVICE_TWIN.getByName(id));
    // Battery devices: stale after 60 minutes, so 30 minutes of silence is still online.
    expect((await getTwin(id)).availability.status).toBe("online");
    await stubSilence(id, 90 * 60_000);
    await runDurableObjectAlarm(env.DEVICE_TWIN.getByName(id));
    expect((await getTwin(id)).availability.status).toBe("stale");
  });

  it("takes explicit disconnects and last wills, and comes back on the next message", async () => {
    const id = uniqueId("will");
    const { token } = await createDevice({ id, type: "motion" });
    const presence = (body: unknown) =>
      call("/v1/device/presence", {
        method: "POST",
        headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
        body: JSON.stringify(body),
      });
    expect((await presence({ status: "online", reason: "connect" })).status).toBe(200);
    expect((await getTwin(id)).availability.status).toBe("online");
    const will = await presence({ status: "offline", reason: "last_will" });
    expect(await json(will)).toMatchObject({ availability: { status: "offline", reason: "last_will" } });
    await post("/v1/telemetry", token, { payload: { motion: true } });
    expect((await getTwin(id)).availability.status).toBe("online");
    expect((await presence({ status: "asleep" })).status).toBe(400);
  });
});

/** Moves the twin's last-seen time into the past, as if the device had been silent that long. */
async function stubSilence(id: string, ms: number) {
  const { runInDurableObject } = await import("cloudflare:test");
  await runInDurableObject(env.DEVICE_TWIN.getByName(id), async (_instance, state) => {
    // The lazily kept state is one row (durable-objects/device-twin/state.ts).
    state.storage.sql.exec("UPDATE meta SET value = json_set(value, '$.last_seen', ?) WHERE key = 'lazy'", Date.now() - ms);
  });
  // The instance caches last_seen in memory: evict it so it reloads from storage.
  const { evictDurableObject } = await import("cloudflare:test");
  await evictDurableObject(env.DEVICE_TWIN.getByName(id));
}

describe("availability alarms", () => {
  it("sets the alarm for last seen + the class's stale timeout, then for the offline timeout, publishing each step", async () => {
    const id = uniqueId("timing");
    const { token } = await createDevice({ id, type: "temperature", room: "attic" });
    await post("/v1/telemetry", token, { payload: { temperature: 1 } });
    const stub = env.DEVICE_TWIN.getByName(id);
    const lastSeen = Date.parse((await getTwin(id)).last_seen as string);
    const { runInDurableObject } = await import("cloudflare:test");
    const alarm = await runInDurableObject(stub, async (_i, state) => state.storage.getAlarm());
    // Mains: stale after 120 s of silence.
    expect(alarm).toBe(lastSeen + 120_000);

    await stubSilence(id, 3 * 60_000);
    await runDurableObjectAlarm(stub);
    expect((await getTwin(id)).availability).toMatchObject({ status: "stale", reason: "timeout" });
    const silentSince = Date.parse((await getTwin(id)).last_seen as string);
    const next = await runInDurableObject(stub, async (_i, state) => state.storage.getAlarm());
    expect(next).toBe(silentSince + 600_000);

    await stubSilence(id, 11 * 60_000);
    await runDurableObjectAlarm(stub);
    expect((await getTwin(id)).availability.status).toBe("offline");
    const events = await eventually(
      async () => {
        const list = await stateChanges(id);
        return list.length >= 3 ? list : undefined;
      },
      10_000,
      "three state_changed events",
    );
    expect(events).toHaveLength(3);
  });
});
