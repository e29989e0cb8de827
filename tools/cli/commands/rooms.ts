/** edgemesh rooms: list, show (members and live aggregates), add, remove, assign/unassign devices, command every member. */
import type { MetricAggregate } from "../../../shared/api-types.ts";
import type { Room, RoomListItem } from "../../../shared/schemas/api/device.ts";
import { type CommandSpec, type DeviceView, positional, str } from "../command.ts";
import { UsageError } from "../errors.ts";
import { fields, rowsTable } from "../output.ts";
import { COMMAND_OPTIONS, commandBody } from "./commands.ts";

const path = (id: string) => `/v1/rooms/${encodeURIComponent(id)}`;

export const rooms: Record<string, CommandSpec> = {
  list: {
    summary: "every room with its device count",
    async run(ctx) {
      const answer = await ctx.client.get<{ rooms: RoomListItem[] }>("/v1/rooms");
      const text = rowsTable(
        answer.rooms,
        [
          ["ID", "id"],
          ["NAME", "name"],
          ["DEVICES", "devices"],
          ["CREATED", "created_at"],
        ],
        "(no rooms)",
      );
      return { data: answer, text };
    },
  },
  show: {
    summary: "a room's devices and the aggregates of their latest readings",
    args: ["<room>"],
    async run(ctx) {
      const id = positional(ctx, 0, "the room id");
      const answer = await ctx.client.get<{ room: Room; devices: DeviceView[]; aggregates: MetricAggregate[] }>(path(id));
      const text = [
        fields([
          ["room", answer.room.id],
          ["name", answer.room.name],
          ["created", answer.room.created_at],
        ]),
        "",
        rowsTable(
          answer.devices,
          [
            ["DEVICE", "id"],
            ["TYPE", "type"],
            ["AVAILABILITY", "availability"],
            ["LAST SEEN", "last_seen"],
          ],
          "(no devices)",
        ),
        "",
        rowsTable(
          answer.aggregates,
          [
            ["METRIC", "metric"],
            ["UNIT", "unit"],
            ["DEVICES", "devices"],
            ["MIN", "min"],
            ["MEAN", "mean"],
            ["MAX", "max"],
            ["LATEST", (a) => `${a.latest.value} (${a.latest.device})`],
          ],
          "(no readings)",
        ),
      ].join("\n");
      return { data: answer, text };
    },
  },
  add: {
    summary: "create a room",
    args: ["<room>"],
    options: { name: { type: "string", value: "NAME", help: "a display name" } },
    async run(ctx) {
      const id = positional(ctx, 0, "the room id");
      const answer = await ctx.client.post<{ room: Room }>("/v1/rooms", { id, name: str(ctx.values, "name") });
      return { data: answer, text: `Added room ${answer.room.id}.` };
    },
  },
  remove: {
    summary: "delete an empty room",
    args: ["<room>"],
    async run(ctx) {
      const id = positional(ctx, 0, "the room id");
      await ctx.client.request("DELETE", path(id));
      return { data: { removed: id }, text: `Removed room ${id}.` };
    },
  },
  assign: {
    summary: "move a device into a room",
    args: ["<room>", "<device>"],
    async run(ctx) {
      const id = positional(ctx, 0, "the room id");
      const device = positional(ctx, 1, "the device id");
      const answer = await ctx.client.request<{ device: DeviceView }>("PUT", `${path(id)}/devices/${encodeURIComponent(device)}`);
      return { data: answer, text: `${device} is in room ${id}.` };
    },
  },
  unassign: {
    summary: "take a device out of a room",
    args: ["<room>", "<device>"],
    async run(ctx) {
      const id = positional(ctx, 0, "the room id");
      const device = positional(ctx, 1, "the device id");
      const answer = await ctx.client.request<{ device: DeviceView }>("DELETE", `${path(id)}/devices/${encodeURIComponent(device)}`);
      return { data: answer, text: `${device} is in no room now.` };
    },
  },
  command: {
    summary: "send a command to every device of a room",
    args: ["<room>", "<command>"],
    options: COMMAND_OPTIONS,
    async run(ctx) {
      const id = positional(ctx, 0, "the room id");
      const body = commandBody(ctx, 1);
      if (body.wait_s) throw new UsageError("rooms command takes no --wait: follow each device with `edgemesh commands watch`");
      const answer = await ctx.client.post<{
        outcomes: { device: string; ok: boolean; command?: { id: string; status: string }; error?: unknown }[];
      }>(`${path(id)}/commands`, body);
      const text = rowsTable(
        answer.outcomes,
        [
          ["DEVICE", "device"],
          ["OK", "ok"],
          ["COMMAND", (o) => o.command?.id],
          ["STATUS", (o) => o.command?.status ?? JSON.stringify(o.error)],
        ],
        "(the room has no devices)",
      );
      const failed = answer.outcomes.some((o) => !o.ok);
      return { data: answer, text, exitCode: failed ? 1 : 0 };
    },
  },
};
