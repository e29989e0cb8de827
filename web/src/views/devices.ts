/** The fleet at a glance: every device with its availability and latest values, filtered by device, room and metric. */
import { type CardRefs, deviceCard, setBadge, setReading } from "../components.ts";
import type { View } from "../context.ts";
import { h, setText } from "../dom.ts";
import { filtersFrom, matches } from "../filters.ts";
import { roomLabel } from "../format.ts";

export const devicesView: View = (root, ctx, _params, query) => {
  const filters = filtersFrom(query);
  const cards = new Map<string, CardRefs>();

  const search = h("input", {
    id: "filter-device",
    type: "search",
    placeholder: "id, name or type",
    value: filters.q,
    autocomplete: "off",
  });
  const roomSelect = h("select", { id: "filter-room" });
  const metricSelect = h("select", { id: "filter-metric" });
  const count = h("p", { class: "muted count", "aria-live": "polite" });
  const grid = h("div", { class: "grid devices", id: "device-grid" });
  const empty = h("p", { class: "empty", hidden: true });

  root.append(
    h(
      "div",
      { class: "page-head" },
      h("h1", {}, "Devices"),
      count,
      ctx.can("admin") ? h("a", { href: "#/add-device", class: "button primary", id: "add-device" }, "Add device") : null,
    ),
    h(
      "form",
      { class: "filters", role: "search", "aria-label": "Filter devices", onsubmit: (e: Event) => e.preventDefault() },
      h("label", { for: "filter-device" }, "Device", search),
      h("label", { for: "filter-room" }, "Room", roomSelect),
      h("label", { for: "filter-metric" }, "Metric", metricSelect),
    ),
    empty,
    grid,
  );

  const fillRooms = () => {
    const rooms = new Set<string>(ctx.store.rooms.map((r) => r.id));
    for (const s of ctx.store.devices.values()) rooms.add(s.device.room ?? "unassigned");
    const names = new Map(ctx.store.rooms.map((r) => [r.id, r.name]));
    roomSelect.replaceChildren(
      h("option", { value: "" }, "All rooms"),
      ...[...rooms].sort().map((id) => h("option", { value: id }, id === "unassigned" ? "No room" : roomLabel(id, names.get(id)))),
    );
    roomSelect.value = filters.room;
  };
  const fillMetrics = () => {
    const metrics = ctx.store.metrics();
    if (filters.metric && !metrics.includes(filters.metric)) metrics.push(filters.metric);
    const current = [...metricSelect.options].map((o) => o.value).join(",");
    if (current === ["", ...metrics].join(",")) return;
    metricSelect.replaceChildren(
      h("option", { value: "" }, "All metrics"),
      ...metrics.map((m) => h("option", { value: m }, m.replaceAll("_", " "))),
    );
    metricSelect.value = filters.metric;
  };

  const applyFilters = () => {
    let shown = 0;
    for (const [id, refs] of cards) {
      const state = ctx.store.devices.get(id);
      const visible = state ? matches(state, filters) : false;
      refs.card.hidden = !visible;
      if (visible) shown++;
      // With a metric chosen, a card shows that metric only.
      for (const [metric, dd] of refs.values) {
        const hide = Boolean(filters.metric) && metric !== filters.metric;
        dd.hidden = hide;
        if (dd.previousElementSibling instanceof HTMLElement) dd.previousElementSibling.hidden = hide;
      }
    }
    const total = ctx.store.devices.size;
    setText(count, shown === total ? `${total} device${total === 1 ? "" : "s"}` : `${shown} of ${total} devices`);
    empty.hidden = shown > 0;
    setText(
      empty,
      total === 0 ? "No devices yet. An admin creates them with POST /v1/devices (see the README)." : "No device matches these filters.",
    );
  };

  const render = () => {
    cards.clear();
    const states = [...ctx.store.devices.values()].sort((a, b) =>
      (a.device.name ?? a.device.id).localeCompare(b.device.name ?? b.device.id),
    );
    grid.replaceChildren(
      ...states.map((s) => {
        const refs = deviceCard(s);
        cards.set(s.device.id, refs);
        return refs.card;
      }),
    );
    fillRooms();
    fillMetrics();
    applyFilters();
  };

  const sync = () => {
    const next = new URLSearchParams();
    if (filters.q) next.set("q", filters.q);
    if (filters.room) next.set("room", filters.room);
    if (filters.metric) next.set("metric", filters.metric);
    ctx.setQuery(next);
    applyFilters();
  };
  search.addEventListener("input", () => {
    filters.q = search.value.trim();
    sync();
  });
  roomSelect.addEventListener("change", () => {
    filters.room = roomSelect.value;
    sync();
  });
  metricSelect.addEventListener("change", () => {
    filters.metric = metricSelect.value;
    sync();
  });

  render();
  const off = ctx.store.on((event) => {
    switch (event.kind) {
      case "devices":
        render();
        return;
      case "reading": {
        const refs = cards.get(event.device);
        if (!refs) return;
        const isNew = !refs.values.has(event.metric);
        setReading(refs, event.metric, event.reading, event.live);
        if (isNew) {
          fillMetrics();
          applyFilters();
        }
        return;
      }
      case "availability":
        setBadge(cards.get(event.device)?.badge ?? null, event.availability.status);
        return;
      default:
        return;
    }
  });
  return off;
};
