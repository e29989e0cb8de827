/** Rooms: the list, and one room with its live aggregates (latest, min, max, mean per metric) and its devices. */
import { seg } from "../api.ts";
import { type CardRefs, deviceCard, loadInto, setBadge, setReading, throttle } from "../components.ts";
import type { View } from "../context.ts";
import { h } from "../dom.ts";
import { formatValue, roomLabel, time } from "../format.ts";
import { isAuthFailure } from "../live.ts";
import type { DeviceState } from "../store.ts";
import type { MetricAggregate, Room, RoomView } from "../types.ts";
import { newRoomForm, roomManageSection } from "./manage-rooms.ts";

export const roomsView: View = (root, ctx) => {
  root.append(h("div", { class: "page-head" }, h("h1", {}, "Rooms")), newRoomForm(ctx) ?? "");
  const body = h("div");
  root.append(body);
  return loadInto(
    body,
    () => ctx.api.get<{ rooms: Room[] }>("/v1/rooms"),
    ({ rooms }) => {
      const unassigned = [...ctx.store.devices.values()].filter((s) => !s.device.room).length;
      const all = [...rooms, ...(unassigned ? [{ id: "unassigned", name: "No room", devices: unassigned }] : [])];
      if (all.length === 0) {
        body.append(h("p", { class: "empty" }, "No rooms yet. Naming a room on a device creates it."));
        return;
      }
      body.append(
        h(
          "div",
          { class: "grid rooms" },
          all.map((room) =>
            h(
              "article",
              { class: "card", "data-room": room.id },
              h(
                "h3",
                {},
                h(
                  "a",
                  { href: room.id === "unassigned" ? "#/devices?room=unassigned" : `#/rooms/${seg(room.id)}` },
                  roomLabel(room.id, room.name),
                ),
              ),
              h("p", { class: "muted" }, `${room.devices} device${room.devices === 1 ? "" : "s"}`),
            ),
          ),
        ),
      );
    },
  );
};

function aggregateRow(a: MetricAggregate): HTMLTableRowElement {
  const num = (v: number | undefined) => (v === undefined ? "—" : formatValue(v, a.unit));
  return h(
    "tr",
    { "data-aggregate": a.metric },
    h("th", { scope: "row" }, a.metric.replaceAll("_", " ")),
    h(
      "td",
      {},
      formatValue(a.latest.value, a.unit),
      h("br"),
      h("span", { class: "muted small" }, `${a.latest.device} · ${time(a.latest.at)}`),
    ),
    h("td", {}, num(a.min)),
    h("td", {}, num(a.max)),
    h("td", {}, a.mean === undefined ? "—" : formatValue(a.mean, a.unit)),
    h("td", {}, String(a.devices)),
  );
}

export const roomView: View = (root, ctx, params) => {
  const id = params.id ?? "";
  const disposers: (() => void)[] = [];
  const stop = loadInto(
    root,
    () => ctx.api.get<RoomView>(`/v1/rooms/${seg(id)}`),
    (view) => {
      const tbody = h("tbody");
      const drawAggregates = (aggregates: MetricAggregate[]) =>
        tbody.replaceChildren(
          ...(aggregates.length
            ? aggregates.map(aggregateRow)
            : [h("tr", {}, h("td", { colspan: 6, class: "muted" }, "No readings in this room yet."))]),
        );
      drawAggregates(view.aggregates);
      const members = new Set(view.devices.map((d) => d.id));
      const cards = new Map<string, CardRefs>();
      const grid = h("div", { class: "grid devices" });
      for (const device of view.devices) {
        const state: DeviceState = ctx.store.devices.get(device.id) ?? {
          device,
          readings: {},
          availability: { status: device.availability },
        };
        const refs = deviceCard(state);
        cards.set(device.id, refs);
        grid.append(refs.card);
      }
      root.append(
        h(
          "nav",
          { class: "crumbs", "aria-label": "Breadcrumb" },
          h("a", { href: "#/rooms" }, "Rooms"),
          " › ",
          roomLabel(view.room.id, view.room.name),
        ),
        h(
          "div",
          { class: "page-head" },
          h("h1", {}, roomLabel(view.room.id, view.room.name)),
          h("p", { class: "muted" }, `${view.devices.length} device${view.devices.length === 1 ? "" : "s"}`),
        ),
        h(
          "section",
          { "aria-labelledby": "aggregates-title" },
          h("h2", { id: "aggregates-title" }, "Now, across the room"),
          h(
            "div",
            { class: "table-wrap" },
            h(
              "table",
              { class: "table aggregates" },
              h(
                "thead",
                {},
                h(
                  "tr",
                  {},
                  ["metric", "latest", "min", "max", "mean", "devices"].map((c) => h("th", { scope: "col" }, c)),
                ),
              ),
              tbody,
            ),
          ),
        ),
        h("section", { "aria-labelledby": "room-devices-title" }, h("h2", { id: "room-devices-title" }, "Devices"), grid),
        roomManageSection(ctx, view.room, members) ?? "",
      );
      // The room's aggregates are computed by its RoomActor: refetch (at most every second) when a member reports.
      const refetch = throttle(() => {
        ctx.api.get<RoomView>(`/v1/rooms/${seg(id)}`).then(
          (next) => drawAggregates(next.aggregates),
          (error: unknown) => {
            if (!isAuthFailure(error)) console.warn("room refresh failed", error);
          },
        );
      }, 1000);
      disposers.push(refetch.cancel);
      disposers.push(
        ctx.store.on((event) => {
          if (event.kind === "reading" && members.has(event.device)) {
            const refs = cards.get(event.device);
            if (refs) setReading(refs, event.metric, event.reading, event.live);
            refetch();
          }
          if (event.kind === "availability") setBadge(cards.get(event.device)?.badge ?? null, event.availability.status);
        }),
      );
    },
    "Loading the room…",
  );
  return () => {
    stop();
    for (const d of disposers) d();
  };
};
