/** edgemesh devices: add (the token is printed once), list, show (with the twin), rotate, remove. */
import type { StoredError, TwinView } from "../../../shared/api-types.ts";
import { displayNumber } from "../../../shared/display.ts";
import { type CommandSpec, type DeviceView, int, jsonOption, list, pairs, positional, str } from "../command.ts";
import { UsageError } from "../errors.ts";
import { fields, rowsTable } from "../output.ts";

const path = (id: string) => `/v1/devices/${encodeURIComponent(id)}`;

const DEVICE_COLUMNS: [string, keyof DeviceView | ((d: DeviceView) => unknown)][] = [
  ["ID", "id"],
  ["TYPE", "type"],
  ["ROOM", "room"],
  ["KIND", "kind"],
  ["CLASS", "class"],
  ["AVAILABILITY", "availability"],
  ["LAST SEEN", (d) => seen(d.last_seen)],
];

/** When the device was last heard (docs/cli.md): the time and how long ago, e.g. `2026-12-05T03:12:09.120Z (12 s ago)`. */
export function seen(lastSeen: string | null, now = Date.now()): string {
  if (!lastSeen) return "never";
  const s = Math.max(0, Math.round((now - Date.parse(lastSeen)) / 1000));
  const age =
    s < 60 ? `${s} s` : s < 3600 ? `${Math.floor(s / 60)} min` : s < 86_400 ? `${Math.floor(s / 3600)} h` : `${Math.floor(s / 86_400)} d`;
  return `${lastSeen} (${age} ago)`;
}

function deviceFields(device: DeviceView): [string, unknown][] {
  return [
    ["id", device.id],
    ["name", device.name],
    ["type", device.type],
    ["kind", device.kind],
    ["class", device.class],
    ["room", device.room],
    ["availability", device.availability],
    ["last seen", seen(device.last_seen)],
    ["publish", device.publish.join(", ")],
    ["metadata", device.metadata],
    ["created", device.created_at],
    ["token rotated", device.token_rotated_at],
  ];
}

function tokenText(device: DeviceView, token: string, verb: string): string {
  return `${verb} ${device.id}.\n\nToken (shown once; store it on the device now):\n${token}`;
}

export const devices: Record<string, CommandSpec> = {
  add: {
    summary: "register a device or service; prints its token once",
    args: ["<id>"],
    options: {
      type: { type: "string", value: "TYPE", help: "its type, e.g. temperature (required)" },
      room: { type: "string", value: "ROOM", help: "the room it is in" },
      name: { type: "string", value: "NAME", help: "a display name" },
      class: { type: "string", value: "mains|battery", help: "power class (availability timeouts)" },
      kind: { type: "string", value: "device|service", help: "service: a collector or AI service publishing to exchanges" },
      meta: { type: "string", multiple: true, value: "KEY=VALUE", help: "metadata (repeatable)" },
      publish: { type: "string", multiple: true, value: "EXCHANGE:PATTERN", help: "publish permission (repeatable)" },
    },
    notes: "Example: edgemesh devices add kitchen-thermo --type temperature --room kitchen --class battery",
    async run(ctx) {
      const id = positional(ctx, 0, "the device id");
      const type = str(ctx.values, "type");
      if (!type) throw new UsageError("devices add needs --type (e.g. temperature)");
      const publish = list(ctx.values, "publish");
      const body = {
        id,
        type,
        room: str(ctx.values, "room"),
        name: str(ctx.values, "name"),
        class: str(ctx.values, "class"),
        kind: str(ctx.values, "kind"),
        metadata: pairs(list(ctx.values, "meta"), "meta", false),
        ...(publish.length > 0 && { publish }),
      };
      const { device, token } = await ctx.client.post<{ device: DeviceView; token: string }>("/v1/devices", body);
      return { data: { device, token }, text: tokenText(device, token, "Added") };
    },
  },
  list: {
    summary: "devices, filtered; every page unless --limit",
    options: {
      type: { type: "string", value: "TYPE", help: "only this type" },
      room: { type: "string", value: "ROOM", help: "only this room" },
      kind: { type: "string", value: "device|service", help: "only devices or only services" },
      class: { type: "string", value: "mains|battery", help: "only this power class" },
      availability: { type: "string", value: "online|stale|offline", help: "only this availability" },
      meta: { type: "string", multiple: true, value: "KEY=VALUE", help: "only with this metadata (repeatable)" },
      limit: { type: "string", value: "N", help: "at most N devices (default all)" },
    },
    async run(ctx) {
      const limit = int(ctx.values, "limit", 1, 1_000_000);
      const query: Record<string, string | undefined> = {};
      for (const key of ["type", "room", "kind", "class", "availability"]) query[key] = str(ctx.values, key);
      for (const [key, value] of Object.entries(pairs(list(ctx.values, "meta"), "meta", false))) query[`meta.${key}`] = String(value);
      const found: DeviceView[] = [];
      let after: string | undefined;
      do {
        const page = await ctx.client.get<{ devices: DeviceView[]; next: string | null }>("/v1/devices", {
          ...query,
          limit: Math.min(1000, (limit ?? Number.POSITIVE_INFINITY) - found.length),
          after,
        });
        found.push(...page.devices);
        after = page.next ?? undefined;
      } while (after && found.length < (limit ?? Number.POSITIVE_INFINITY));
      return { data: { devices: found }, text: rowsTable(found, DEVICE_COLUMNS, "(no devices)") };
    },
  },
  show: {
    summary: "one device with its twin: readings, desired and reported state, availability",
    args: ["<id>"],
    async run(ctx) {
      const id = positional(ctx, 0, "the device id");
      const [{ device }, twin] = await Promise.all([
        ctx.client.get<{ device: DeviceView }>(path(id)),
        ctx.client.get<TwinView>(`${path(id)}/twin`),
      ]);
      // Shown at the unit's precision (shared/display.ts); --json keeps every digit.
      const readings = Object.entries(twin.reported.readings).map(([metric, r]) => ({
        metric,
        ...r,
        value: typeof r.value === "number" ? displayNumber(r.value, r.unit) : r.value,
      }));
      const text = [
        fields(deviceFields(device)),
        "",
        `Twin (version ${twin.version}, ${twin.availability.status} since ${twin.availability.since}, ${twin.availability.reason}):`,
        rowsTable(
          readings,
          [
            ["METRIC", "metric"],
            ["VALUE", "value"],
            ["UNIT", "unit"],
            ["AT", "at"],
          ],
          "(no readings yet)",
        ),
        "",
        fields([
          ["desired", twin.desired],
          ["reported state", twin.reported.state],
          ["delta", twin.delta],
          ["counters", `${twin.counters.accepted} accepted, ${twin.counters.duplicates} duplicates, ${twin.counters.rejected} rejected`],
        ]),
      ].join("\n");
      return { data: { device, twin }, text };
    },
  },
  update: {
    summary: "change a device's name, type, class, room, metadata or publish permissions",
    args: ["<id>"],
    options: {
      type: { type: "string", value: "TYPE", help: "new type" },
      room: { type: "string", value: "ROOM", help: "new room ('' takes it out of its room)" },
      name: { type: "string", value: "NAME", help: "new display name" },
      class: { type: "string", value: "mains|battery", help: "new power class" },
      metadata: { type: "string", value: "JSON", help: "replace the metadata with this JSON object" },
      publish: { type: "string", multiple: true, value: "EXCHANGE:PATTERN", help: "replace the publish permissions (repeatable)" },
    },
    async run(ctx) {
      const id = positional(ctx, 0, "the device id");
      const room = str(ctx.values, "room");
      const publish = list(ctx.values, "publish");
      const patch = {
        type: str(ctx.values, "type"),
        name: str(ctx.values, "name"),
        class: str(ctx.values, "class"),
        metadata: jsonOption(ctx.values, "metadata"),
        ...(room !== undefined && { room: room === "" ? null : room }),
        ...(publish.length > 0 && { publish }),
      };
      if (Object.values(patch).every((v) => v === undefined)) throw new UsageError("devices update: say what to change (--help)");
      const { device } = await ctx.client.request<{ device: DeviceView }>("PATCH", path(id), { body: patch });
      return { data: { device }, text: fields(deviceFields(device)) };
    },
  },
  rotate: {
    summary: "a new token for a device (printed once); the old one stops working at once",
    args: ["<id>"],
    async run(ctx) {
      const id = positional(ctx, 0, "the device id");
      const { device, token } = await ctx.client.post<{ device: DeviceView; token: string }>(`${path(id)}/token`);
      return { data: { device, token }, text: tokenText(device, token, "Rotated the token of") };
    },
  },
  remove: {
    summary: "delete a device; its token stops working at once",
    args: ["<id>"],
    options: { yes: { type: "boolean", short: "y", help: "really delete (required: there is no undo)" } },
    async run(ctx) {
      const id = positional(ctx, 0, "the device id");
      if (ctx.values.yes !== true) throw new UsageError(`removing ${id} cannot be undone: add --yes`);
      await ctx.client.request("DELETE", path(id));
      return { data: { removed: id }, text: `Removed ${id}.` };
    },
  },
  errors: {
    summary: "a device's recently rejected messages, newest first",
    args: ["<id>"],
    options: { limit: { type: "string", value: "N", help: "at most N (default 50)" } },
    async run(ctx) {
      const id = positional(ctx, 0, "the device id");
      const answer = await ctx.client.get<{ errors: StoredError[] }>(`${path(id)}/errors`, {
        limit: int(ctx.values, "limit", 1, 1000),
      });
      const text = rowsTable(
        answer.errors,
        [
          ["AT", "at"],
          ["MESSAGE ID", "message_id"],
          ["CODE", "code"],
          ["ISSUES", (e) => e.issues.map((i) => `${i.path}: ${i.message}`).join("; ")],
        ],
        "(no rejected messages)",
      );
      return { data: answer, text };
    },
  },
};
