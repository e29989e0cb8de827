/**
 * Home: seed 003's dashboard flow. One call (GET /api/dashboard) answers the person's saved
 * layout, every device's status and the active alerts; a 503 (the store failed three times)
 * shows the friendly error with a retry button (loadInto), a 401 the login screen. The sections
 * follow the saved layout: active alerts, devices needing attention, rooms with their aggregates
 * (GET /v1/rooms/:id, fetched per room after the page is drawn).
 */
import type { DashboardAnswer, DashboardLayout, DeviceStatus } from "../../../shared/schemas/dashboard.ts";
import { ApiError, seg } from "../api.ts";
import { badge, loadInto } from "../components.ts";
import type { Ctx, View } from "../context.ts";
import { h, setText } from "../dom.ts";
import { ago, formatValue, roomLabel, time } from "../format.ts";
import { isAuthFailure } from "../live.ts";
import type { RoomView } from "../types.ts";

type Section = DashboardLayout["sections"][number];

const SECTION_LABELS: Record<Section, string> = {
  alerts: "Active alerts",
  attention: "Devices needing attention",
  rooms: "Rooms",
};

const SEVERITY_TONE: Record<string, string> = { critical: "failed", warning: "stale", info: "queued" };

function tile(key: string, label: string, value: number): HTMLElement {
  return h(
    "article",
    { class: "card tile", "data-tile": key },
    h("span", { class: "muted small" }, label),
    h("span", { class: "tile-value", "data-value": String(value) }, String(value)),
  );
}

function alertsSection(answer: DashboardAnswer): HTMLElement {
  const alerts = answer.alerts.active as unknown as {
    id: string;
    device: string;
    severity: string;
    title: string;
    rule_name: string;
    started_at: string;
  }[];
  if (alerts.length === 0) return h("p", { class: "muted empty" }, "No active alerts.");
  return h(
    "ul",
    { class: "plain-list" },
    alerts.map((a) =>
      h(
        "li",
        { class: "card", "data-alert": a.id },
        badge(SEVERITY_TONE[a.severity] ?? "queued", a.severity),
        " ",
        h("strong", {}, a.title),
        h(
          "p",
          { class: "muted small" },
          h("a", { href: `#/devices/${seg(a.device)}` }, a.device),
          ` · ${a.rule_name} · since ${time(a.started_at)} · `,
          h("a", { href: "#/alerts" }, "all alerts"),
        ),
      ),
    ),
  );
}

function attentionSection(devices: DeviceStatus[]): HTMLElement {
  const needing = devices.filter((d) => d.availability !== "online" || d.rejecting);
  if (needing.length === 0) return h("p", { class: "muted empty" }, "Every device is online and none is rejecting messages.");
  return h(
    "ul",
    { class: "plain-list" },
    needing
      .slice(0, 50)
      .map((d) =>
        h(
          "li",
          { class: "card", "data-attention": d.id },
          badge(d.availability),
          d.rejecting ? [" ", badge("failed", "rejecting messages")] : null,
          " ",
          h("a", { href: `#/devices/${seg(d.id)}` }, d.name ?? d.id),
          h(
            "span",
            { class: "muted small" },
            ` · ${d.type} · ${roomLabel(d.room)} · last seen ${ago(d.last_seen)}`,
            d.rejecting ? ` · last rejected ${ago(d.last_rejected_at)}` : "",
          ),
        ),
      ),
  );
}

function roomsSection(ctx: Ctx, answer: DashboardAnswer): HTMLElement {
  if (answer.rooms.length === 0) return h("p", { class: "muted empty" }, "No rooms yet. Naming a room on a device creates it.");
  const grid = h("div", { class: "grid rooms" });
  for (const room of answer.rooms.slice(0, 50)) {
    const aggregates = h("dl", { class: "readings" }, h("dt", {}, "…"));
    grid.append(
      h(
        "article",
        { class: "card", "data-room": room.id },
        h("h3", {}, h("a", { href: `#/rooms/${seg(room.id)}` }, roomLabel(room.id, room.name))),
        h("p", { class: "muted small" }, `${room.online} of ${room.devices} device${room.devices === 1 ? "" : "s"} online`),
        aggregates,
      ),
    );
    ctx.api.get<RoomView>(`/v1/rooms/${seg(room.id)}`).then(
      (view) => {
        aggregates.replaceChildren();
        if (view.aggregates.length === 0) aggregates.append(h("dt", { class: "muted" }, "No readings yet"));
        for (const a of view.aggregates.slice(0, 6)) {
          const mean = a.mean === undefined || a.devices < 2 ? "" : ` (mean of ${a.devices}: ${formatValue(a.mean, a.unit)})`;
          aggregates.append(
            h("dt", {}, a.metric.replaceAll("_", " ")),
            h("dd", { "data-metric": a.metric }, `${formatValue(a.latest.value, a.unit)}${mean}`),
          );
        }
      },
      (error: unknown) => {
        if (!isAuthFailure(error)) aggregates.replaceChildren(h("dt", { class: "muted" }, "Aggregates unavailable"));
      },
    );
  }
  return grid;
}

function layoutForm(ctx: Ctx, answer: DashboardAnswer, reload: () => void): HTMLElement {
  const shown = new Set(answer.config.layout.sections);
  const boxes = (Object.keys(SECTION_LABELS) as Section[]).map((s) => {
    const input = h("input", { type: "checkbox", id: `layout-${s}`, name: s, checked: shown.has(s) });
    return { s, input, label: h("label", { for: `layout-${s}` }, input, ` ${SECTION_LABELS[s]}`) };
  });
  const pinnedNow = new Set(answer.config.layout.pinned);
  const pin = h(
    "select",
    { id: "layout-pinned", multiple: true, size: Math.min(6, Math.max(2, answer.devices.items.length)) },
    answer.devices.items.map((d) => h("option", { value: d.id, selected: pinnedNow.has(d.id) }, d.name ?? d.id)),
  );
  const message = h("span", { class: "muted small", role: "status", "aria-live": "polite" });
  const form = h(
    "form",
    { class: "layout-form", "aria-label": "Home layout" },
    h(
      "fieldset",
      {},
      h("legend", {}, "Show on my home screen"),
      boxes.map((b) => b.label),
    ),
    h("p", {}, h("label", { for: "layout-pinned" }, "Pinned devices (shown first)"), h("br"), pin),
    h("button", { type: "submit" }, "Save layout"),
    " ",
    message,
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    // Kept in the saved order; newly ticked sections go last.
    const ticked = boxes.filter((b) => b.input.checked).map((b) => b.s);
    const sections = [...answer.config.layout.sections.filter((s) => ticked.includes(s)), ...ticked.filter((s) => !shown.has(s))];
    setText(message, "Saving…");
    const pinned = [...pin.selectedOptions].map((o) => o.value).slice(0, 50);
    ctx.api.send("PUT", "/api/dashboard/layout", { sections, pinned }).then(
      () => reload(),
      (error: unknown) => {
        if (!isAuthFailure(error)) setText(message, `Not saved: ${error instanceof ApiError ? error.message : String(error)}`);
      },
    );
  });
  return h("details", { class: "layout" }, h("summary", {}, "Customize"), form);
}

export const homeView: View = (root, ctx) => {
  root.append(h("div", { class: "page-head" }, h("h1", {}, "Home")));
  const body = h("div", { id: "home" });
  root.append(body);
  let leave = () => {};
  const load = () => {
    leave();
    leave = loadInto(
      body,
      () => ctx.api.get<DashboardAnswer>("/api/dashboard"),
      (answer) => {
        const d = answer.devices;
        body.append(
          h(
            "div",
            { class: "tiles" },
            tile("devices", "Devices", d.total),
            tile("online", "Online", d.online),
            tile("stale", "Stale", d.stale),
            tile("offline", "Offline", d.offline),
            tile("alerts", "Active alerts", answer.alerts.count),
          ),
        );
        const byId = new Map(d.items.map((item) => [item.id, item]));
        const pinned = answer.config.layout.pinned.flatMap((id) => byId.get(id) ?? []);
        if (pinned.length)
          body.append(
            h(
              "section",
              { "data-section": "pinned", "aria-labelledby": "home-pinned" },
              h("h2", { id: "home-pinned" }, "Pinned devices"),
              h(
                "ul",
                { class: "plain-list" },
                pinned.map((p) =>
                  h(
                    "li",
                    { class: "card", "data-pinned": p.id },
                    badge(p.availability),
                    " ",
                    h("a", { href: `#/devices/${seg(p.id)}` }, p.name ?? p.id),
                    h("span", { class: "muted small" }, ` · ${roomLabel(p.room)} · last seen ${ago(p.last_seen)}`),
                  ),
                ),
              ),
            ),
          );
        for (const section of answer.config.layout.sections) {
          const content =
            section === "alerts" ? alertsSection(answer) : section === "attention" ? attentionSection(d.items) : roomsSection(ctx, answer);
          body.append(
            h(
              "section",
              { "data-section": section, "aria-labelledby": `home-${section}` },
              h("h2", { id: `home-${section}` }, SECTION_LABELS[section]),
              content,
            ),
          );
        }
        body.append(
          layoutForm(ctx, answer, load),
          h("p", { class: "muted small" }, `As of ${time(answer.generated_at)} · signed in as ${answer.user.sub} (${answer.user.role})`),
        );
      },
      "the home screen",
    );
  };
  load();
  return () => leave();
};
