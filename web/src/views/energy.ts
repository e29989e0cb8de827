/**
 * Energy (seed 004's web dashboard): every meter now (`GET /api/v1/energy/latest`), and a chosen
 * day's hourly bars and totals (`GET /api/v1/energy/hourly?start=&end=`), read as the API answers
 * them. Bars are plain elements over a table of the same numbers, so the figures are readable by
 * keyboard and screen reader too; each value carries the API's number in `data-value`.
 */
import type { EnergyHourlyRow, EnergyLatestRow } from "../../../shared/schemas/api/energy.ts";
import { seg } from "../api.ts";
import { loadInto } from "../components.ts";
import type { View } from "../context.ts";
import { h } from "../dom.ts";
import { formatValue, time } from "../format.ts";

type Latest = EnergyLatestRow;
type Hourly = EnergyHourlyRow;

const HOUR_MS = 3_600_000;

/** The local day of `date` (YYYY-MM-DD) as [start, end) instants. */
export function dayRange(day: string): { start: Date; end: Date } {
  const [y, m, d] = day.split("-").map(Number);
  const start = new Date(y ?? 1970, (m ?? 1) - 1, d ?? 1);
  const end = new Date(y ?? 1970, (m ?? 1) - 1, (d ?? 1) + 1);
  return { start, end };
}

export function localDay(date = new Date()): string {
  const pad = (n: number) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}`;
}

const value = (key: string, v: number | null, unit: string) =>
  h("span", { "data-field": key, "data-value": v === null ? "" : String(v) }, v === null ? "—" : formatValue(v, unit));

function nowSection(meters: Latest[]): HTMLElement {
  if (meters.length === 0) return h("p", { class: "muted empty" }, "No energy meter has reported yet.");
  return h(
    "div",
    { class: "grid" },
    meters.map((m) =>
      h(
        "article",
        { class: "card", "data-meter": m.device_id },
        h("h3", {}, h("a", { href: `#/devices/${seg(m.device_id)}` }, m.device_id)),
        h(
          "dl",
          { class: "readings" },
          h("dt", {}, "power"),
          h("dd", {}, value("power_kw", m.power_kw, "kW")),
          h("dt", {}, "energy meter"),
          h("dd", {}, value("total_energy_kwh", m.total_energy_kwh, "kWh")),
          h("dt", {}, "voltage"),
          h("dd", {}, value("voltage", m.voltage, "V")),
          h("dt", {}, "current"),
          h("dd", {}, value("current", m.current, "A")),
        ),
        h("p", { class: "footnote" }, `at ${time(m.timestamp)}`),
      ),
    ),
  );
}

/** A bar as wide as `percent` (its width set through the CSSOM). */
function bar(percent: number): HTMLElement {
  const el = h("span", { class: "bar", "aria-hidden": "true" });
  el.style.width = `${Math.max(0, Math.min(100, Math.round(percent)))}%`;
  return el;
}

function daySection(rows: Hourly[]): HTMLElement {
  if (rows.length === 0) return h("p", { class: "muted empty" }, "No readings on this day.");
  const meters = [...new Set(rows.map((r) => r.device_id))].sort();
  const max = Math.max(0.000001, ...rows.map((r) => r.energy_kwh ?? 0));
  return h(
    "div",
    {},
    meters.map((meter) => {
      const mine = rows.filter((r) => r.device_id === meter);
      const total = mine.reduce((sum, r) => sum + (r.energy_kwh ?? 0), 0);
      const powered = mine.filter((r) => r.avg_power_kw !== null);
      const meanPower = powered.length ? powered.reduce((s, r) => s + (r.avg_power_kw ?? 0), 0) / powered.length : null;
      return h(
        "section",
        { class: "card energy-day", "data-meter": meter, "aria-label": `${meter} by hour` },
        h("h3", {}, meter),
        h(
          "p",
          {},
          "Day total ",
          h("strong", { "data-field": "day_energy_kwh", "data-value": String(total) }, formatValue(total, "kWh")),
          meanPower === null ? "" : " · mean power ",
          meanPower === null
            ? ""
            : h("strong", { "data-field": "day_avg_power_kw", "data-value": String(meanPower) }, formatValue(meanPower, "kW")),
        ),
        h(
          "div",
          { class: "table-wrap" },
          h(
            "table",
            { class: "table hourly" },
            h(
              "thead",
              {},
              h(
                "tr",
                {},
                h("th", { scope: "col" }, "Hour"),
                h("th", { scope: "col" }, "Energy"),
                h("th", { scope: "col" }, "Mean power"),
                h("th", { scope: "col" }, "Readings"),
              ),
            ),
            h(
              "tbody",
              {},
              mine.map((r) =>
                h(
                  "tr",
                  { "data-hour": r.hour },
                  h("th", { scope: "row" }, new Date(r.hour).toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit" })),
                  h("td", {}, bar(((r.energy_kwh ?? 0) / max) * 100), value("energy_kwh", r.energy_kwh, "kWh")),
                  h("td", {}, value("avg_power_kw", r.avg_power_kw, "kW")),
                  h("td", {}, String(r.readings)),
                ),
              ),
            ),
          ),
        ),
      );
    }),
  );
}

export const energyView: View = (root, ctx, _params, query) => {
  const day = /^\d{4}-\d{2}-\d{2}$/.test(query.get("day") ?? "") ? (query.get("day") as string) : localDay();
  const picker = h("input", { type: "date", id: "energy-day", value: day, max: localDay() });
  const now = h("div", { id: "energy-now" });
  const hourly = h("div", { id: "energy-hourly" });
  root.append(
    h("div", { class: "page-head" }, h("h1", {}, "Energy")),
    h("section", { "aria-labelledby": "energy-now-title" }, h("h2", { id: "energy-now-title" }, "Now"), now),
    h(
      "section",
      { "aria-labelledby": "energy-day-title" },
      h("h2", { id: "energy-day-title" }, "By hour"),
      h("p", {}, h("label", { for: "energy-day" }, "Day "), picker),
      hourly,
    ),
  );
  const leaveNow = loadInto(
    now,
    () => ctx.api.get<Latest[]>("/api/v1/energy/latest"),
    (meters) => now.append(nowSection(meters)),
    "the meters",
  );
  let leaveDay = () => {};
  const loadDay = (chosen: string) => {
    leaveDay();
    const { start, end } = dayRange(chosen);
    // The API rounds to whole hours; the end of today is the next hour, not the future.
    const until = new Date(Math.min(end.getTime(), Math.ceil(Date.now() / HOUR_MS) * HOUR_MS));
    const q = new URLSearchParams({ start: start.toISOString(), end: until.toISOString() });
    hourly.setAttribute("data-query", q.toString());
    leaveDay = loadInto(
      hourly,
      () => ctx.api.get<Hourly[]>(`/api/v1/energy/hourly?${q}`),
      (rows) => hourly.append(daySection(rows)),
      "the day",
    );
  };
  picker.addEventListener("change", () => {
    if (!picker.value) return;
    ctx.setQuery(new URLSearchParams({ day: picker.value }));
    loadDay(picker.value);
  });
  loadDay(day);
  return () => {
    leaveNow();
    leaveDay();
  };
};
