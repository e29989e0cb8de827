/** Pieces several views share: badges, device cards, the error panel, loading states. */
import { ApiError } from "./api.ts";
import type { Ctx } from "./context.ts";
import { flash, h, setText } from "./dom.ts";
import { ago, formatReading, roomLabel } from "./format.ts";
import { isAuthFailure } from "./live.ts";
import type { DeviceState, StoreEvent } from "./store.ts";
import type { AvailabilityStatus, CommandStatus, Reading } from "./types.ts";

export function badge(status: AvailabilityStatus | CommandStatus | string, label = status): HTMLSpanElement {
  return h("span", { class: `badge status-${status}`, "data-status": status }, label);
}

export function setBadge(el: Element | null, status: string): void {
  if (!el) return;
  el.className = `badge status-${status}`;
  el.setAttribute("data-status", status);
  setText(el, status);
}

export function loading(what = "Loading…"): HTMLElement {
  return h("p", { class: "loading", role: "status" }, what);
}

/** A friendly error with a retry button (seed 003: 503 → message + retry). */
export function problem(error: unknown, retry?: () => void): HTMLElement {
  const api = error instanceof ApiError ? error : undefined;
  let title = "Something went wrong";
  let detail = error instanceof Error ? error.message : String(error);
  if (api?.status === 503) {
    title = "The edge is temporarily unavailable";
    detail = `It answered 503 Service Unavailable${api.message && api.message !== "HTTP 503" ? `: ${api.message}` : ""}. This usually passes in a moment.`;
  } else if (api?.status === 0) {
    title = "Cannot reach the edge";
    detail = "It may be restarting, or your connection may be down.";
  } else if (api && api.status >= 500) {
    title = "The edge had a problem";
    detail = `${api.message} (HTTP ${api.status}).`;
  } else if (api?.status === 404) {
    title = "Not found";
  } else if (api?.status === 403) {
    title = "Not allowed";
  }
  return h(
    "section",
    { class: "problem", role: "alert", "data-problem": api ? String(api.status) : "error" },
    h("h2", {}, title),
    h("p", {}, detail),
    retry ? h("button", { type: "button", class: "primary", onclick: () => retry() }, "Try again") : null,
  );
}

/**
 * Renders `load`'s result into `root`, with a loading state, and the error panel (with retry)
 * when it fails. A session that ended is left to the login screen.
 */
export function loadInto<T>(root: HTMLElement, load: () => Promise<T>, render: (data: T) => void, what?: string): () => void {
  let alive = true;
  const run = () => {
    root.replaceChildren(loading(what));
    load().then(
      (data) => {
        if (!alive) return;
        root.replaceChildren();
        render(data);
      },
      (error: unknown) => {
        if (!alive || isAuthFailure(error)) return;
        root.replaceChildren(problem(error, run));
      },
    );
  };
  run();
  return () => {
    alive = false;
  };
}

export interface CardRefs {
  card: HTMLElement;
  badge: HTMLElement;
  readings: HTMLElement;
  ago: HTMLElement;
  values: Map<string, HTMLElement>;
}

/** A device at a glance: name, availability, room, latest values. */
export function deviceCard(state: DeviceState, onlyMetric?: string): CardRefs {
  const d = state.device;
  const values = new Map<string, HTMLElement>();
  const readings = h("dl", { class: "readings" });
  const status = badge(state.availability.status);
  const seen = lastHeard(state);
  const agoEl = h("span", { class: "ago", "data-ago": seen ?? "" }, ago(seen));
  const card = h(
    "article",
    { class: "card device-card", "data-device": d.id, "aria-label": `Device ${d.name ?? d.id}` },
    h("header", {}, h("h3", {}, h("a", { href: `#/devices/${encodeURIComponent(d.id)}` }, d.name ?? d.id)), status),
    h(
      "p",
      { class: "meta" },
      h("span", {}, d.name ? `${d.id} · ${d.type}` : d.type),
      " · ",
      d.room ? h("a", { href: `#/rooms/${encodeURIComponent(d.room)}` }, roomLabel(d.room)) : h("span", {}, "no room"),
    ),
    readings,
    h("p", { class: "footnote" }, "Last seen ", agoEl),
  );
  const refs: CardRefs = { card, badge: status, readings, ago: agoEl, values };
  for (const [metric, reading] of Object.entries(state.readings).sort(([a], [b]) => a.localeCompare(b))) {
    if (onlyMetric && metric !== onlyMetric) continue;
    setReading(refs, metric, reading, false);
  }
  if (values.size === 0) readings.after(h("p", { class: "muted empty-readings" }, onlyMetric ? `No ${onlyMetric} yet` : "No readings yet"));
  return refs;
}

export function setReading(refs: CardRefs, metric: string, reading: Reading, highlight = true): void {
  let value = refs.values.get(metric);
  if (!value) {
    refs.card.querySelector(".empty-readings")?.remove();
    value = h("dd", { "data-metric": metric, "data-value": String(reading.value) });
    refs.readings.append(h("dt", {}, metric.replaceAll("_", " ")), value);
    refs.values.set(metric, value);
  }
  setText(value, formatReading(reading));
  value.setAttribute("data-value", String(reading.value));
  value.title = `at ${new Date(reading.at).toLocaleString()}`;
  refs.ago.setAttribute("data-ago", reading.at);
  setText(refs.ago, ago(reading.at));
  if (highlight) flash(value);
}

/**
 * When the device was last heard: the registry's last_seen (under 50 s behind, docs/twins.md) or
 * its newest reading, whichever is later; live readings move it on.
 */
export function lastHeard(state: DeviceState): string | null {
  const reading = latestAt(state);
  const registry = state.device.last_seen;
  if (!reading) return registry;
  if (!registry) return reading;
  return Date.parse(reading) > Date.parse(registry) ? reading : registry;
}

export function latestAt(state: DeviceState): string | undefined {
  let latest: string | undefined;
  for (const r of Object.values(state.readings)) if (!latest || Date.parse(r.at) > Date.parse(latest)) latest = r.at;
  return latest;
}

/** Calls `fn` at most once per `ms`, the last call winning. */
export function throttle(fn: () => void, ms: number): { (): void; cancel(): void } {
  let timer: ReturnType<typeof setTimeout> | undefined;
  let last = 0;
  const run = () => {
    timer = undefined;
    last = Date.now();
    fn();
  };
  const throttled = () => {
    if (timer) return;
    const wait = Math.max(0, last + ms - Date.now());
    timer = setTimeout(run, wait);
  };
  throttled.cancel = () => clearTimeout(timer);
  return throttled;
}

/** A `<select>` of list statuses whose choice is kept in the URL (`?status=`, left out for the default). */
export function statusSelect(
  ctx: Ctx,
  id: string,
  choices: string[],
  current: string,
  onChange: (status: string) => void,
): HTMLSelectElement {
  const select = h(
    "select",
    { id },
    choices.map((s) => h("option", { value: s, selected: s === current }, s)),
  ) as HTMLSelectElement;
  select.addEventListener("change", () => {
    ctx.setQuery(new URLSearchParams(select.value === choices[0] ? {} : { status: select.value }));
    onChange(select.value);
  });
  return select;
}

/**
 * Keeps a list fresh from the live hubs: on each store event of `kind` it shows `notice` with
 * `describe(event)` and reloads the list, at most every 2 s (when `wanted()` says the list shows
 * such items). Returns what stops it.
 */
export function refreshOnLive<K extends StoreEvent["kind"]>(
  ctx: Ctx,
  kind: K,
  notice: HTMLElement,
  describe: (event: Extract<StoreEvent, { kind: K }>) => string,
  load: () => void,
  wanted: () => boolean = () => true,
): () => void {
  const refetch = throttle(load, 2000);
  const off = ctx.store.on((event) => {
    if (event.kind !== kind) return;
    setText(notice, describe(event as Extract<StoreEvent, { kind: K }>));
    if (wanted()) refetch();
    // load() hides the notice; show it again once the list is back.
    setTimeout(() => {
      notice.hidden = false;
    }, 2100);
  });
  return () => {
    off();
    refetch.cancel();
  };
}
