/**
 * The edge's answers against their schemas (shared/schemas/api/): the dashboard, the CLI, the
 * agent and the simulator take their types from those schemas, and the agent rejects an answer
 * that does not parse, so a route whose answer drifts from its schema fails here first.
 */
import { describe, expect, it } from "vitest";
import { z } from "zod";
import { DeadLetterList, ReplayAnswer } from "../../shared/schemas/api/dead-letter";
import { Device, DeviceList, DeviceWithToken, RoomListItem, RoomView } from "../../shared/schemas/api/device";
import { ErrorBody } from "../../shared/schemas/api/error";
import { Command, DeliveredCommand, TwinView } from "../../shared/schemas/api/twin";
import { ADMIN, call, eventually, json, post, uniqueId } from "./helpers";

/** Parses an answer; a failure names the fields that drifted. */
async function answer<T>(schema: z.ZodType<T>, res: Response, status = 200): Promise<T> {
  const text = await res.text();
  expect(res.status, text).toBe(status);
  const parsed = schema.safeParse(JSON.parse(text));
  expect(parsed.success ? [] : parsed.error.issues, text).toEqual([]);
  return parsed.data as T;
}

const admin = (method: string, path: string, body?: unknown) =>
  call(path, {
    method,
    headers: { ...ADMIN, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });

describe("answers match their schemas", () => {
  it("devices, twins, commands and rooms", async () => {
    const room = uniqueId("room");
    const created = await answer(
      DeviceWithToken,
      await admin("POST", "/v1/devices", { id: uniqueId("dev"), type: "temperature", room, class: "battery" }),
      201,
    );
    const id = created.device.id;
    expect((await post("/v1/telemetry", created.token, { payload: { temperature: 21.5 } })).status).toBe(202);

    await answer(z.object({ device: Device }), await admin("GET", `/v1/devices/${id}`));
    const list = await answer(DeviceList, await admin("GET", `/v1/devices?room=${room}`));
    expect(list.devices.map((d) => d.id)).toEqual([id]);
    const twin = await eventually(async () => {
      const view = await answer(TwinView, await admin("GET", `/v1/devices/${id}/twin`));
      return view.reported.readings.temperature ? view : undefined;
    });
    expect(twin.reported.readings.temperature?.value).toBe(21.5);

    const sent = await answer(z.object({ command: Command }), await admin("POST", `/v1/devices/${id}/commands`, { command: "ping" }), 202);
    await answer(z.object({ device: z.string(), commands: z.array(Command) }), await admin("GET", `/v1/devices/${id}/commands`));
    const delivered = await answer(
      z.object({ commands: z.array(DeliveredCommand) }),
      await call("/v1/device/commands", { headers: { authorization: `Bearer ${created.token}` } }),
    );
    expect(delivered.commands.map((c) => c.id)).toEqual([sent.command.id]);

    const rooms = await answer(z.object({ rooms: z.array(RoomListItem) }), await admin("GET", "/v1/rooms"));
    expect(rooms.rooms.find((r) => r.id === room)?.devices).toBe(1);
    const view = await answer(RoomView, await admin("GET", `/v1/rooms/${room}`));
    expect(view.devices.map((d) => d.id)).toEqual([id]);
  });

  it("dead letters and their replay", async () => {
    const { token } = await json<{ token: string }>(
      await admin("POST", "/v1/devices", { id: uniqueId("svc"), kind: "service", type: "t", publish: ["metrics:#"] }),
    );
    const id = uniqueId("lost");
    expect((await post("/v1/exchanges/metrics/publish", token, { id, routing_key: "metrics.other.attic", payload: { p: 1 } })).status).toBe(
      202,
    );
    const letter = await eventually(async () => {
      const list = await answer(DeadLetterList, await admin("GET", "/v1/dead-letters?status=all&limit=1000"));
      return list.dead_letters.find((d) => d.message_id === id);
    });
    expect(letter).toMatchObject({ status: "pending", replayed_at: null, replayable: true });
    await answer(ReplayAnswer, await admin("POST", "/v1/dead-letters/replay", { ids: [letter.id] }));
  });

  it("errors, with the field at fault", async () => {
    const missing = await answer(ErrorBody, await admin("GET", `/v1/devices/${uniqueId("none")}`), 404);
    expect(missing.error.code).toBe("not_found");
    const invalid = await answer(ErrorBody, await admin("POST", "/v1/devices", { id: uniqueId("dev"), type: "Not A Slug" }), 400);
    expect(invalid.error.issues.map((i) => i.path)).toContain("type");
  });
});
