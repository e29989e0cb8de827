/** The command flow of seed 002: outbox, delivery, results, expiry, waiting, rooms. */
import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import type { Command } from "../../shared/schemas/api/twin";
import { ADMIN, call, createDevice, eventually, json, uniqueId } from "./helpers";

const admin = (method: string, path: string, body?: unknown) =>
  call(path, {
    method,
    headers: { ...ADMIN, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
const asDevice = (token: string, method: string, path: string, body?: unknown) =>
  call(path, {
    method,
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });

describe("device commands", () => {
  it("queues, delivers once per attempt, records the result and publishes it with the correlation id", async () => {
    const { device, token } = await createDevice({ id: uniqueId("lamp"), type: "light", room: "den" });
    const sent = await admin("POST", `/v1/devices/${device.id}/commands`, {
      command: "set_brightness",
      parameters: { level: 40 },
      ttl_s: 60,
      correlation_id: "flow-42",
    });
    expect(sent.status).toBe(202);
    const { command } = await json<{ command: Command }>(sent);
    expect(command).toMatchObject({ command: "set_brightness", status: "queued", correlation_id: "flow-42" });

    const polled = await json<{ commands: { id: string; parameters: unknown; attempts: number }[] }>(
      await asDevice(token, "GET", "/v1/device/commands"),
    );
    expect(polled.commands).toEqual([expect.objectContaining({ id: command.id, parameters: { level: 40 }, attempts: 1 })]);
    // Delivered and not yet answered: not delivered again on the next poll.
    expect((await json<{ commands: unknown[] }>(await asDevice(token, "GET", "/v1/device/commands"))).commands).toEqual([]);

    const answered = await asDevice(token, "POST", `/v1/device/commands/${command.id}/result`, {
      status: "succeeded",
      result: { level: 40 },
    });
    expect(answered.status).toBe(200);
    // A repeated answer changes nothing.
    expect(
      (await json<{ command: Command }>(await asDevice(token, "POST", `/v1/device/commands/${command.id}/result`, { status: "failed" })))
        .command.status,
    ).toBe("succeeded");

    const listed = await json<{ commands: Command[] }>(await admin("GET", `/v1/devices/${device.id}/commands`));
    expect(listed.commands[0]).toMatchObject({ id: command.id, status: "succeeded", result: { level: 40 } });
    expect(listed.commands[0]?.history.map((h) => h.status)).toEqual(["queued", "delivered", "succeeded"]);

    const results = await eventually(
      async () => {
        const res = await json<{ messages: { type: string; causation_id?: string; steps: { queue: string }[] }[] }>(
          await admin("GET", "/v1/messages?correlation_id=flow-42"),
        );
        return res.messages.length > 0 ? res.messages : undefined;
      },
      10_000,
      "the command_result message",
    );
    expect(results[0]).toMatchObject({ type: "command_result" });
    expect(results[0]?.steps.map((s) => s.queue)).toEqual(["home.events.command_results"]);
  });

  it("answers with the result when the device answers within wait_s", async () => {
    const { device, token } = await createDevice({ id: uniqueId("fast"), type: "light" });
    const pending = admin("POST", `/v1/devices/${device.id}/commands`, { command: "toggle", wait_s: 10 });
    const polled = await eventually(
      async () => {
        const body = await json<{ commands: { id: string }[] }>(await asDevice(token, "GET", "/v1/device/commands?wait_s=2"));
        return body.commands[0];
      },
      10_000,
      "the command to reach the device",
    );
    await asDevice(token, "POST", `/v1/device/commands/${polled.id}/result`, { status: "failed", error: "bulb missing" });
    const res = await pending;
    expect(res.status).toBe(200);
    expect((await json<{ command: Command }>(res)).command).toMatchObject({ status: "failed", attempts: 1 });
  });

  it("waits for an offline device, and never delivers after expiry", async () => {
    const { device, token } = await createDevice({ id: uniqueId("sleepy"), type: "valve" });
    const { command } = await json<{ command: Command }>(
      await admin("POST", `/v1/devices/${device.id}/commands`, { command: "open", ttl_s: 60 }),
    );
    const stub = env.DEVICE_TWIN.getByName(device.id);
    // Let the TTL run out while the device is away.
    await runInDurableObject(stub, async (_i, state) => {
      state.storage.sql.exec("UPDATE commands SET expires_at = ? WHERE id = ?", Date.now() - 1, command.id);
    });
    expect(await runDurableObjectAlarm(stub)).toBe(true);
    expect((await json<{ commands: unknown[] }>(await asDevice(token, "GET", "/v1/device/commands"))).commands).toEqual([]);
    const { command: expired } = await json<{ command: Command }>(await admin("GET", `/v1/devices/${device.id}/commands/${command.id}`));
    expect(expired.status).toBe("expired");
    const results = await eventually(
      async () => {
        const res = await json<{ messages: { type: string }[] }>(
          await admin("GET", `/v1/messages?correlation_id=${command.correlation_id}`),
        );
        return res.messages.some((m) => m.type === "command_result") ? res.messages : undefined;
      },
      10_000,
      "the expired command_result",
    );
    expect(results.some((m) => m.type === "command_result")).toBe(true);
    const late = await asDevice(token, "POST", `/v1/device/commands/${command.id}/result`, { status: "succeeded" });
    expect(late.status).toBe(409);
    expect(await json(late)).toMatchObject({ error: { code: "command_finished" } });
  });

  it("redelivers a command whose delivery went unanswered, with the same id", async () => {
    const { device, token } = await createDevice({ id: uniqueId("flaky"), type: "valve" });
    const { command } = await json<{ command: Command }>(await admin("POST", `/v1/devices/${device.id}/commands`, { command: "close" }));
    expect(
      (await json<{ commands: { id: string }[] }>(await asDevice(token, "GET", "/v1/device/commands"))).commands.map((c) => c.id),
    ).toEqual([command.id]);
    await runInDurableObject(env.DEVICE_TWIN.getByName(device.id), async (_i, state) => {
      state.storage.sql.exec("UPDATE commands SET delivered_at = ? WHERE id = ?", Date.now() - 60_000, command.id);
    });
    const again = await json<{ commands: { id: string; attempts: number }[] }>(await asDevice(token, "GET", "/v1/device/commands"));
    expect(again.commands).toEqual([expect.objectContaining({ id: command.id, attempts: 2 })]);
  });

  it("validates commands and bounds the outbox", async () => {
    const { device } = await createDevice({ id: uniqueId("strict"), type: "valve" });
    const bad = await admin("POST", `/v1/devices/${device.id}/commands`, { command: "Open Now", ttl_s: -1 });
    expect(bad.status).toBe(400);
    expect((await json<{ error: { issues: { path: string }[] } }>(bad)).error.issues.map((i) => i.path).sort()).toEqual([
      "command",
      "ttl_s",
    ]);
    expect((await admin("POST", "/v1/devices/no-such-device/commands", { command: "open" })).status).toBe(404);
    expect((await admin("GET", `/v1/devices/${device.id}/commands/nope`)).status).toBe(404);
  });

  it("keeps commands of one device away from another", async () => {
    const a = await createDevice({ id: uniqueId("a"), type: "valve" });
    const b = await createDevice({ id: uniqueId("b"), type: "valve" });
    const { command } = await json<{ command: Command }>(await admin("POST", `/v1/devices/${a.device.id}/commands`, { command: "open" }));
    expect((await json<{ commands: unknown[] }>(await asDevice(b.token, "GET", "/v1/device/commands"))).commands).toEqual([]);
    expect((await asDevice(b.token, "POST", `/v1/device/commands/${command.id}/result`, { status: "succeeded" })).status).toBe(404);
    expect((await asDevice(`${a.device.id}.wrongwrongwrongwrongwrong`, "GET", "/v1/device/commands")).status).toBe(401);
  });
});

describe("rooms", () => {
  it("aggregates the members' latest readings and forwards commands to every member", async () => {
    const roomId = uniqueId("room").replaceAll("-", "_");
    expect((await admin("POST", "/v1/rooms", { id: roomId, name: "Living room" })).status).toBe(201);
    expect((await admin("POST", "/v1/rooms", { id: roomId })).status).toBe(409);
    const one = await createDevice({ id: uniqueId("t1"), type: "temperature", room: roomId });
    const two = await createDevice({ id: uniqueId("t2"), type: "temperature" });
    expect((await admin("PUT", `/v1/rooms/${roomId}/devices/${two.device.id}`)).status).toBe(200);
    const send = (token: string, value: number) =>
      call("/v1/telemetry", {
        method: "POST",
        headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
        body: JSON.stringify({ payload: { temperature: value, motion: value > 20 } }),
      });
    await send(one.token, 20);
    await send(two.token, 24);

    const aggregates = await eventually(
      async () => {
        const body = await json<{
          devices: unknown[];
          aggregates: { metric: string; devices: number; min?: number; max?: number; mean?: number; latest: { device: string } }[];
        }>(await admin("GET", `/v1/rooms/${roomId}`));
        const t = body.aggregates.find((a) => a.metric === "temperature");
        return t?.devices === 2 ? body : undefined;
      },
      10_000,
      "both devices in the room's aggregates",
    );
    expect(aggregates.devices).toHaveLength(2);
    expect(aggregates.aggregates.find((a) => a.metric === "temperature")).toMatchObject({ min: 20, max: 24, mean: 22 });
    expect(aggregates.aggregates.find((a) => a.metric === "motion")).toMatchObject({ devices: 2 });

    const forwarded = await admin("POST", `/v1/rooms/${roomId}/commands`, { command: "all_off" });
    expect(forwarded.status).toBe(202);
    const outcomes = (await json<{ outcomes: { device: string; ok: boolean; command: Command }[] }>(forwarded)).outcomes;
    expect(outcomes.map((o) => o.device).sort()).toEqual([one.device.id, two.device.id].sort());
    expect(outcomes.every((o) => o.ok && o.command.status === "queued")).toBe(true);

    // Leaving the room takes the device out of its aggregates.
    expect((await admin("DELETE", `/v1/rooms/${roomId}/devices/${two.device.id}`)).status).toBe(200);
    const after = await json<{ aggregates: { metric: string; devices: number }[] }>(await admin("GET", `/v1/rooms/${roomId}`));
    expect(after.aggregates.find((a) => a.metric === "temperature")?.devices).toBe(1);
    expect((await admin("DELETE", `/v1/rooms/${roomId}`)).status).toBe(409);
  });

  it("lists rooms, answers 404 for unknown ones, and finds a device's room", async () => {
    const roomId = uniqueId("r").replaceAll("-", "_");
    const { device } = await createDevice({ id: uniqueId("d"), type: "t", room: roomId });
    const rooms = await json<{ rooms: { id: string; devices: number }[] }>(await admin("GET", "/v1/rooms"));
    expect(rooms.rooms.find((r) => r.id === roomId)).toMatchObject({ devices: 1 });
    expect((await json<{ device: { room: string } }>(await admin("GET", `/v1/devices/${device.id}`))).device.room).toBe(roomId);
    expect((await admin("GET", "/v1/rooms/no_such_room")).status).toBe(404);
    expect((await admin("PUT", `/v1/rooms/no_such_room/devices/${device.id}`)).status).toBe(404);
  });
});

describe("message history", () => {
  it("follows a message through the mesh: accepted, delivered to its queue and stored there, in one hop", async () => {
    const { device, token } = await createDevice({ id: uniqueId("hist"), type: "temperature", room: "lab" });
    const res = await call("/v1/telemetry", {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: JSON.stringify({ id: `m-${device.id}`, correlation_id: `c-${device.id}`, payload: { temperature: 20 } }),
    });
    expect(res.status).toBe(202);
    const chain = await eventually(
      async () => {
        const body = await json<{
          messages: { id: string; type: string; routing_key: string; steps: { queue: string; status: string }[] }[];
        }>(await admin("GET", `/v1/messages?correlation_id=c-${device.id}`));
        // The consumer records `delivered` and `stored` in its one row (the twin writes no `accepted` step).
        const done = (m: { steps: { status: string }[] }) => m.steps.some((s) => s.status === "stored");
        return body.messages.length >= 1 && body.messages.every(done) ? body.messages : undefined;
      },
      15_000,
      "the message, stored",
    );
    const original = chain.find((m) => m.id === `m-${device.id}`);
    expect(original?.steps).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ queue: "sensors.temperature", status: "delivered" }),
        expect.objectContaining({ queue: "sensors.temperature", status: "stored" }),
      ]),
    );
    // Acceptance is implied by the consumer's row (it carries received_at): the twin writes no step of its own.
    expect(original?.steps.some((s) => s.status === "accepted")).toBe(false);
    // No transformed copy on the metrics exchange (issue 13): the flow is the one message.
    expect(chain.map((m) => m.id)).toEqual([`m-${device.id}`]);
    const byDevice = await json<{ messages: { id: string }[] }>(await admin("GET", `/v1/messages?device=${device.id}&type=telemetry`));
    expect(byDevice.messages.map((m) => m.id)).toEqual([`m-${device.id}`]);
    expect((await admin("GET", "/v1/messages?limit=0")).status).toBe(400);
  });
});
