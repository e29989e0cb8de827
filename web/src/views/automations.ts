/**
 * Automations (docs/automations.md): each with its trigger, conditions, actions and recent runs;
 * operators create one with a form over the schema (shared/schemas/automations.ts) — a trigger
 * (threshold, event, schedule), at most one twin condition, one action (a command or a desired
 * change) — and enable, disable or delete them.
 */
import type { Automation, AutomationRun } from "../../../shared/schemas/automations.ts";
import { seg } from "../api.ts";
import { badge, loadInto } from "../components.ts";
import type { View } from "../context.ts";
import { h, setText } from "../dom.ts";
import { time } from "../format.ts";
import { failure, field, select } from "./manage-devices.ts";

const OUTCOME_TONE: Record<string, string> = { succeeded: "succeeded", skipped: "expired", failed: "failed" };

export function describeTrigger(t: Automation["trigger"]): string {
  if (t.type === "threshold") return `${t.metric} ${t.op} ${t.value}${t.device ? ` on ${t.device}` : ""}`;
  if (t.type === "event") return `event ${t.routing_key}${t.event_type ? ` (${t.event_type})` : ""}`;
  if (t.type === "schedule") return t.cron ? `cron ${t.cron}${t.timezone ? ` ${t.timezone}` : ""}` : `every ${t.every_seconds} s`;
  return `alert ${t.status ?? "active"}`;
}

function describeAction(a: Automation["actions"][number]): string {
  if (a.type === "command") return `command ${a.command} → ${a.device}`;
  if (a.type === "room_command") return `command ${a.command} → room ${a.room}`;
  if (a.type === "desired") return `desired ${JSON.stringify(a.patch)} → ${a.device}`;
  return a.type;
}

function runsList(runs: AutomationRun[]): HTMLElement {
  if (runs.length === 0) return h("p", { class: "muted small" }, "No runs yet.");
  return h(
    "ul",
    { class: "plain-list runs" },
    runs.map((r) =>
      h(
        "li",
        { "data-run": r.id, "data-outcome": r.outcome },
        badge(OUTCOME_TONE[r.outcome] ?? "queued", r.outcome),
        ` ${time(r.at)} · ${r.latency_ms} ms${r.reason ? ` · ${r.reason}` : ""}`,
      ),
    ),
  );
}

/** A JSON object from a text field, or an error naming the field. */
function jsonObject(text: string, what: string): Record<string, unknown> {
  const value: unknown = JSON.parse(text.trim() || "{}");
  if (typeof value !== "object" || value === null || Array.isArray(value)) throw new Error(`${what} must be a JSON object`);
  return value as Record<string, unknown>;
}

export const automationsView: View = (root, ctx) => {
  const operator = ctx.can("operator");
  const list = h("div", { id: "automation-list" });
  const listMessage = h("p", { class: "form-message", role: "alert" });
  root.append(h("div", { class: "page-head" }, h("h1", {}, "Automations")));
  let leave = () => {};
  const refresh = () => {
    leave();
    leave = loadInto(
      list,
      () => ctx.api.get<{ automations: Automation[] }>("/api/automations"),
      ({ automations }) => {
        if (automations.length === 0) list.append(h("p", { class: "muted empty" }, "No automations yet."));
        for (const a of automations) {
          const runs = h("div", {}, h("p", { class: "muted small" }, "Loading runs…"));
          ctx.api.get<{ runs: AutomationRun[] }>(`/api/automations/${seg(a.id)}/runs?limit=5`).then(
            ({ runs: got }) => runs.replaceChildren(runsList(got)),
            (error: unknown) => runs.replaceChildren(h("p", { class: "muted small" }, `Runs unavailable: ${failure(error)}`)),
          );
          const toggle = h("button", { type: "button" }, a.enabled ? "Disable" : "Enable");
          toggle.addEventListener("click", () => {
            const { id: _id, ...rest } = a as Automation & Record<string, unknown>;
            const body = Object.fromEntries(
              Object.entries({ ...rest, enabled: !a.enabled }).filter(([k]) =>
                ["name", "description", "trigger", "conditions", "decision", "actions", "enabled"].includes(k),
              ),
            );
            ctx.api.send("PUT", `/api/automations/${seg(a.id)}`, body).then(refresh, (e: unknown) => setText(listMessage, failure(e)));
          });
          const remove = h("button", { type: "button", class: "danger" }, "Delete…");
          remove.addEventListener("click", () => {
            const yes = h("button", { type: "button", class: "danger" }, `Delete ${a.name}`);
            yes.addEventListener("click", () =>
              ctx.api.send("DELETE", `/api/automations/${seg(a.id)}`).then(refresh, (e: unknown) => setText(listMessage, failure(e))),
            );
            remove.replaceWith(yes);
            yes.focus();
          });
          list.append(
            h(
              "article",
              { class: "card", "data-automation": a.id },
              h("header", {}, h("h3", {}, a.name), badge(a.enabled ? "online" : "offline", a.enabled ? "enabled" : "disabled")),
              h(
                "p",
                {},
                `When ${describeTrigger(a.trigger)}`,
                a.conditions.length ? ` if ${a.conditions.length} condition${a.conditions.length === 1 ? "" : "s"} hold` : "",
                `: ${a.actions.map(describeAction).join("; ")}`,
              ),
              h("h4", {}, "Recent runs"),
              runs,
              operator ? h("p", {}, toggle, " ", remove) : null,
            ),
          );
        }
      },
      "the automations",
    );
  };
  if (!operator) {
    root.append(h("p", { class: "muted" }, "Operators and admins can create automations."), listMessage, list);
    refresh();
    return () => leave();
  }

  const devices = [...ctx.store.devices.keys()].sort();
  const deviceOptions = (none: string): [string, string][] => [["", none], ...devices.map((d): [string, string] => [d, d])];
  const name = h("input", { id: "auto-name", required: true, maxlength: 128 });
  const trigger = select("trigger", [
    ["threshold", "a reading crosses a threshold"],
    ["event", "an event arrives"],
    ["schedule", "on a schedule"],
  ]);
  trigger.id = "auto-trigger";
  const tMetric = h("input", { id: "auto-metric", placeholder: "e.g. temperature" });
  const tOp = select("op", [
    ["gt", "above (>)"],
    ["gte", "at or above (≥)"],
    ["lt", "below (<)"],
    ["lte", "at or below (≤)"],
  ]);
  tOp.id = "auto-op";
  const tValue = h("input", { id: "auto-value", type: "number", step: "any", value: "0" });
  const tDevice = select("trigger-device", deviceOptions("any device"));
  tDevice.id = "auto-trigger-device";
  const tRoutingKey = h("input", { id: "auto-routing-key", placeholder: "e.g. home.*.*.state_changed" });
  const tEvery = h("input", { id: "auto-every", type: "number", min: "60", value: "3600" });
  const cDevice = select("condition-device", deviceOptions("no condition"));
  cDevice.id = "auto-condition-device";
  const cPath = h("input", { id: "auto-condition-path", placeholder: "e.g. availability.status" });
  const cOp = select("condition-op", [
    ["eq", "="],
    ["ne", "≠"],
    ["gt", ">"],
    ["gte", "≥"],
    ["lt", "<"],
    ["lte", "≤"],
  ]);
  cOp.id = "auto-condition-op";
  const cValue = h("input", { id: "auto-condition-value", placeholder: 'JSON, e.g. "online" or 21' });
  const aType = select("action", [
    ["command", "send a command"],
    ["desired", "change desired state"],
  ]);
  aType.id = "auto-action";
  const aDevice = select(
    "action-device",
    devices.map((d): [string, string] => [d, d]),
  );
  aDevice.id = "auto-action-device";
  const aCommand = h("input", { id: "auto-command", placeholder: "e.g. set_mode" });
  const aJson = h("input", { id: "auto-json", value: "{}", placeholder: '{"mode": "eco"}' });
  const message = h("p", { class: "form-message", role: "alert", id: "auto-message" });
  const groups = {
    threshold: [field("Metric", tMetric), field("Comparison", tOp), field("Value", tValue), field("Only device", tDevice)],
    event: [field("Routing key pattern", tRoutingKey)],
    schedule: [field("Every (s)", tEvery)],
  };
  const show = () => {
    for (const [key, els] of Object.entries(groups)) for (const el of els) el.hidden = key !== trigger.value;
  };
  trigger.addEventListener("change", show);
  const form = h(
    "form",
    { class: "manage-form", "aria-label": "New automation" },
    field("Name", name),
    h("fieldset", {}, h("legend", {}, "When"), field("Trigger", trigger), ...Object.values(groups).flat()),
    h(
      "fieldset",
      {},
      h("legend", {}, "Only if (optional)"),
      field("Device", cDevice),
      field("Twin path", cPath),
      field("Comparison", cOp),
      field("Value", cValue),
    ),
    h(
      "fieldset",
      {},
      h("legend", {}, "Then"),
      field("Action", aType),
      field("Device", aDevice),
      field("Command (for a command)", aCommand),
      field("Parameters or desired patch (JSON object)", aJson),
    ),
    h("p", {}, h("button", { type: "submit", class: "primary" }, "Create automation")),
    message,
  );
  show();
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    setText(message, "");
    let body: Record<string, unknown>;
    try {
      const t =
        trigger.value === "threshold"
          ? {
              type: "threshold",
              metric: tMetric.value.trim(),
              op: tOp.value,
              value: Number(tValue.value),
              ...(tDevice.value && { device: tDevice.value }),
            }
          : trigger.value === "event"
            ? { type: "event", routing_key: tRoutingKey.value.trim() }
            : { type: "schedule", every_seconds: Number(tEvery.value) };
      const conditions = cDevice.value
        ? [{ device: cDevice.value, path: cPath.value.trim(), op: cOp.value, value: JSON.parse(cValue.value.trim() || "null") as unknown }]
        : [];
      const json = jsonObject(aJson.value, "the parameters");
      const action =
        aType.value === "command"
          ? { type: "command", device: aDevice.value, command: aCommand.value.trim(), parameters: json }
          : { type: "desired", device: aDevice.value, patch: json };
      body = { name: name.value.trim(), trigger: t, conditions, actions: [action] };
    } catch (error) {
      setText(message, `Not created: ${failure(error)}`);
      return;
    }
    ctx.api.send("POST", "/api/automations", body).then(
      () => {
        form.reset();
        show();
        setText(message, `Created “${String(body.name)}”.`);
        refresh();
      },
      (error: unknown) => setText(message, `Not created: ${failure(error)}`),
    );
  });
  root.append(h("details", { class: "layout", open: true }, h("summary", {}, "New automation"), form), listMessage, list);
  refresh();
  return () => leave();
};
