/**
 * Alert rules (docs/alerts.md): the list, and for operators a form over the rule schema
 * (shared/schemas/alerts.ts: threshold, rate of change, absence) with a preview of how often a
 * threshold rule would have fired on the last 24 h of one device's data; enable, disable, delete.
 */
import type { AlertRule } from "../../../shared/schemas/alerts.ts";
import { seg } from "../api.ts";
import { badge, loadInto } from "../components.ts";
import type { View } from "../context.ts";
import { h, setText } from "../dom.ts";
import { failure, field, select } from "./manage-devices.ts";

const OPS: [string, string][] = [
  ["gt", "above (>)"],
  ["gte", "at or above (≥)"],
  ["lt", "below (<)"],
  ["lte", "at or below (≤)"],
];
const SYMBOL: Record<string, string> = { gt: ">", gte: "≥", lt: "<", lte: "≤" };

export function describeCondition(rule: Pick<AlertRule, "metric" | "condition" | "for_seconds">): string {
  const c = rule.condition;
  const held = rule.for_seconds ? ` for ${rule.for_seconds} s` : "";
  if (c.type === "threshold") return `${rule.metric} ${SYMBOL[c.op ?? ""] ?? c.op} ${c.value}${held}`;
  if (c.type === "rate_of_change")
    return `${rule.metric} changes ${SYMBOL[c.op ?? ""] ?? c.op} ${c.value} per ${c.per_seconds ?? 60} s${held}`;
  if (c.type === "absence") return `no reading for ${c.seconds} s`;
  return c.type;
}

/** How many times a threshold would have started holding over these values, oldest first. */
export function firings(values: number[], op: string, threshold: number): number {
  const holds = (v: number) => (op === "gt" ? v > threshold : op === "gte" ? v >= threshold : op === "lt" ? v < threshold : v <= threshold);
  let count = 0;
  let before = false;
  for (const v of values) {
    const now = holds(v);
    if (now && !before) count++;
    before = now;
  }
  return count;
}

export const alertRulesView: View = (root, ctx) => {
  const list = h("div", { id: "rule-list" });
  root.append(
    h("nav", { class: "crumbs", "aria-label": "Breadcrumb" }, h("a", { href: "#/alerts" }, "Alerts"), " › rules"),
    h("div", { class: "page-head" }, h("h1", {}, "Alert rules")),
  );
  const operator = ctx.can("operator");
  const listMessage = h("p", { class: "form-message", role: "alert" });
  let leave = () => {};
  const refresh = () => {
    leave();
    leave = loadInto(
      list,
      () => ctx.api.get<{ rules: AlertRule[] }>("/api/monitoring/alert_rules"),
      ({ rules }) => {
        if (rules.length === 0) list.append(h("p", { class: "muted empty" }, "No alert rules yet."));
        for (const rule of rules) {
          const toggle = h("button", { type: "button" }, rule.enabled ? "Disable" : "Enable");
          toggle.addEventListener("click", () =>
            ctx.api.send("PATCH", `/api/monitoring/alert_rules/${seg(rule.id)}`, { enabled: !rule.enabled }).then(refresh, fail),
          );
          const remove = h("button", { type: "button", class: "danger" }, "Delete…");
          remove.addEventListener("click", () => {
            const yes = h("button", { type: "button", class: "danger" }, `Delete ${rule.name}`);
            yes.addEventListener("click", () => ctx.api.send("DELETE", `/api/monitoring/alert_rules/${seg(rule.id)}`).then(refresh, fail));
            remove.replaceWith(yes);
            yes.focus();
          });
          list.append(
            h(
              "article",
              { class: "card", "data-rule": rule.id },
              h("header", {}, h("h3", {}, rule.name), badge(rule.enabled ? "online" : "offline", rule.enabled ? "enabled" : "disabled")),
              h(
                "p",
                {},
                badge(rule.severity === "critical" ? "failed" : rule.severity === "warning" ? "stale" : "queued", rule.severity),
                " ",
                describeCondition(rule),
              ),
              h("p", { class: "muted small" }, rule.device ? `device ${rule.device}` : "every device"),
              operator ? h("p", {}, toggle, " ", remove) : null,
            ),
          );
        }
      },
      "the rules",
    );
  };
  const fail = (error: unknown) => setText(listMessage, failure(error));
  if (!operator) {
    root.append(h("p", { class: "muted" }, "Operators and admins can create alert rules."), list);
    refresh();
    return () => leave();
  }

  const devices = [...ctx.store.devices.keys()].sort();
  const name = h("input", { id: "rule-name", required: true, maxlength: 128 });
  const metric = h("input", { id: "rule-metric", autocomplete: "off", placeholder: "e.g. temperature" });
  const device = select("device", [["", "any device"], ...devices.map((d): [string, string] => [d, d])]);
  device.id = "rule-device";
  const type = select("type", [
    ["threshold", "threshold"],
    ["rate_of_change", "rate of change"],
    ["absence", "no reading for a while"],
  ]);
  type.id = "rule-type";
  const op = select("op", OPS);
  op.id = "rule-op";
  const value = h("input", { id: "rule-value", type: "number", step: "any", value: "0" });
  const seconds = h("input", { id: "rule-seconds", type: "number", min: "1", value: "600" });
  const forSeconds = h("input", { id: "rule-for", type: "number", min: "0", max: "86400", value: "0" });
  const severity = select("severity", [
    ["warning", "warning"],
    ["critical", "critical"],
    ["info", "info"],
  ]);
  severity.id = "rule-severity";
  const message = h("p", { class: "form-message", role: "alert", id: "rule-message" });
  const preview = h("p", { class: "muted", role: "status", id: "rule-preview" });
  const previewButton = h("button", { type: "button" }, "Preview on the last 24 h");
  const valueField = field("Value", value);
  const secondsField = field("Seconds (per, or without a reading)", seconds);
  const showFields = () => {
    valueField.hidden = type.value === "absence";
    op.parentElement?.toggleAttribute("hidden", type.value === "absence");
    secondsField.hidden = type.value === "threshold";
  };
  type.addEventListener("change", showFields);
  const condition = () =>
    type.value === "absence"
      ? { type: "absence", seconds: Number(seconds.value) }
      : type.value === "rate_of_change"
        ? { type: "rate_of_change", op: op.value, value: Number(value.value), per_seconds: Number(seconds.value) }
        : { type: "threshold", op: op.value, value: Number(value.value) };
  previewButton.addEventListener("click", () => {
    if (type.value !== "threshold" || !device.value || !metric.value.trim()) {
      setText(preview, "The preview needs a threshold rule on one device and a metric.");
      return;
    }
    const end = new Date();
    const q = new URLSearchParams({
      metric: metric.value.trim(),
      device: device.value,
      start: new Date(end.getTime() - 86_400_000).toISOString(),
      end: end.toISOString(),
      bucket: "raw",
      limit: "10000",
    });
    setText(preview, "Reading the last 24 h…");
    ctx.api.get<{ series: { points: { value: number }[] }[] }>(`/v1/series?${q}`).then(
      (answer) => {
        const values = answer.series.flatMap((s) => s.points.map((p) => p.value));
        const n = firings(values, op.value, Number(value.value));
        preview.setAttribute("data-firings", String(n));
        setText(preview, `Over ${values.length} readings of the last 24 h it would have fired ${n} time${n === 1 ? "" : "s"}.`);
      },
      (error: unknown) => setText(preview, `No preview: ${failure(error)}`),
    );
  });
  const form = h(
    "form",
    { class: "manage-form", "aria-label": "New alert rule" },
    field("Name", name),
    field("Metric", metric),
    field("Device", device),
    field("Condition", type),
    field("Comparison", op),
    valueField,
    secondsField,
    field("Holds for (s) before firing", forSeconds),
    field("Severity", severity),
    h("p", {}, h("button", { type: "submit", class: "primary" }, "Create rule"), " ", previewButton),
    preview,
    message,
  );
  showFields();
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    setText(message, "");
    const body = {
      name: name.value.trim(),
      ...(metric.value.trim() && { metric: metric.value.trim() }),
      ...(device.value && { device: device.value }),
      condition: condition(),
      for_seconds: Number(forSeconds.value || 0),
      severity: severity.value,
    };
    ctx.api.send("POST", "/api/monitoring/alert_rules", body).then(
      () => {
        form.reset();
        showFields();
        setText(message, `Created “${body.name}”.`);
        refresh();
      },
      (error: unknown) => setText(message, `Not created: ${failure(error)}`),
    );
  });
  root.append(h("details", { class: "layout", open: true }, h("summary", {}, "New rule"), form), listMessage, list);
  refresh();
  return () => leave();
};
