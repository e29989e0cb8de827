/**
 * A device's charts, one per metric: the history of the chosen range (1 h raw readings; 24 h,
 * 7 d and 30 d as averages per bucket, the long ones read from the store's rollups), then live
 * points; a CSV download of exactly what each chart shows. "No unit" is null on every path
 * (unitOrNull), so a chart keeps the points whose unit is its own.
 */
import { unitOrNull } from "../../../shared/display.ts";
import { LiveChart } from "../chart.ts";
import type { Ctx } from "../context.ts";
import { flash, h, setText } from "../dom.ts";
import { formatReading } from "../format.ts";
import { loadHistory, RANGES, type RangeKey } from "../history.ts";
import { isAuthFailure } from "../live.ts";
import type { Device, Reading, Twin } from "../types.ts";

interface Entry {
  chart: LiveChart;
  value: HTMLElement;
  note: HTMLElement;
  unit: string | null;
  /** Bumped by each load, so a slow answer for an older range is dropped. */
  loads: number;
}

/** RFC 4180 CSV of a chart's points: time (ISO 8601), value, unit. */
export function chartCsv(device: string, metric: string, unit: string | null, rows: { t: number; v: number }[]): string {
  const quote = (text: string) => (/[",\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text);
  const lines = ["time,device,metric,value,unit"];
  for (const r of rows) lines.push([new Date(r.t).toISOString(), quote(device), quote(metric), String(r.v), quote(unit ?? "")].join(","));
  return `${lines.join("\r\n")}\r\n`;
}

function download(name: string, text: string): void {
  const url = URL.createObjectURL(new Blob([text], { type: "text/csv;charset=utf-8" }));
  const a = h("a", { href: url, download: name, hidden: true });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

export function chartsSection(ctx: Ctx, device: Device, twin: Twin) {
  let range: RangeKey = "1h";
  const select = h(
    "select",
    { id: "chart-range", name: "range" },
    (Object.keys(RANGES) as RangeKey[]).map((key) => h("option", { value: key, selected: key === range }, RANGES[key].label)),
  );
  const grid = h("div", { class: "grid charts" });
  const element = h(
    "section",
    { "aria-labelledby": "charts-title" },
    h("div", { class: "section-head" }, h("h2", { id: "charts-title" }, "Readings"), h("label", { for: "chart-range" }, "Range "), select),
    grid,
  );
  const entries = new Map<string, Entry>();
  const readings: Record<string, Reading> = { ...twin.reported.readings, ...(ctx.store.devices.get(device.id)?.readings ?? {}) };

  const load = (metric: string) => {
    const entry = entries.get(metric);
    if (!entry) return;
    const mine = ++entry.loads;
    const chosen = range;
    setText(entry.note, "Loading…");
    loadHistory(ctx.api, device.id, metric, chosen).then(
      (history) => {
        if (mine !== entry.loads) return;
        // One unit per chart: older readings in another unit (°F before °C) would be off the scale.
        const points = history.filter((p) => p.unit === entry.unit);
        entry.chart.replace(points, RANGES[chosen].minutes * 60_000);
        const span = chosen === "1h" ? "in the last hour" : `averaged over the last ${RANGES[chosen].label}`;
        setText(
          entry.note,
          points.length
            ? `${points.length} ${chosen === "1h" ? "reading" : "point"}${points.length === 1 ? "" : "s"} ${span}, then live`
            : "No history yet; live points appear here",
        );
        entry.note.setAttribute("data-points", String(points.length));
      },
      (error: unknown) => {
        if (mine === entry.loads && !isAuthFailure(error)) setText(entry.note, `History unavailable: ${(error as Error).message}`);
      },
    );
  };

  const add = (metric: string, reading: Reading) => {
    const value = h("p", { class: "big-value", "data-metric": metric, "data-value": String(reading.value) }, formatReading(reading));
    const box = h("div", { class: "chart", role: "img", "aria-label": `${metric} over the chosen range` });
    const note = h("p", { class: "muted small" });
    const unit = unitOrNull(reading.unit);
    const title = `${metric.replaceAll("_", " ")}${unit ? ` (${unit})` : ""}`;
    const csv = h("button", { type: "button", class: "link-button", "data-csv": metric }, `Download ${metric} as CSV`);
    grid.append(
      h("article", { class: "card chart-card", "data-chart": metric }, h("header", {}, h("h3", {}, title), value), box, note, csv),
    );
    const chart = new LiveChart(box, { title, unit, stepped: typeof reading.value === "boolean" });
    entries.set(metric, { chart, value, note, unit, loads: 0 });
    csv.addEventListener("click", () => download(`${device.id}-${metric}-${range}.csv`, chartCsv(device.id, metric, unit, chart.rows())));
    load(metric);
  };
  select.addEventListener("change", () => {
    range = select.value as RangeKey;
    for (const metric of entries.keys()) load(metric);
  });
  const metrics = Object.keys(readings).sort();
  if (metrics.length === 0) grid.append(h("p", { class: "muted empty-readings" }, "No readings yet. They appear here as they arrive."));
  for (const metric of metrics) add(metric, readings[metric] as Reading);

  return {
    element,
    reading(metric: string, reading: Reading, live: boolean) {
      let entry = entries.get(metric);
      if (!entry) {
        grid.querySelector(".empty-readings")?.remove();
        add(metric, reading);
        entry = entries.get(metric);
      }
      if (!entry) return;
      setText(entry.value, formatReading(reading));
      entry.value.setAttribute("data-value", String(reading.value));
      if (live) flash(entry.value);
      const v = typeof reading.value === "boolean" ? Number(reading.value) : reading.value;
      const t = Date.parse(reading.at);
      if (Number.isFinite(t) && Number.isFinite(v) && unitOrNull(reading.unit) === entry.unit) entry.chart.append(t, v);
    },
    dispose() {
      for (const { chart } of entries.values()) chart.destroy();
    },
  };
}
