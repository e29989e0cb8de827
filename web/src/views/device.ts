/**
 * One device: live charts per metric (history, then live points), the twin's reported, desired
 * and delta documents, the command form for operators with each command's status as it moves,
 * and the device's recent validation errors.
 */
import { ApiError, seg } from "../api.ts";
import { badge, loadInto, problem, setBadge, throttle } from "../components.ts";
import type { Ctx, View } from "../context.ts";
import { h, setText } from "../dom.ts";
import { ago, formatReading, isEmptyObject, json, roomLabel, time } from "../format.ts";
import { isAuthFailure } from "../live.ts";
import { type Command, type Device, type Reading, type StoredError, TERMINAL_COMMAND_STATUSES, type Twin } from "../types.ts";
import { chartsSection } from "./charts.ts";
import { manageSection } from "./manage-devices.ts";

export const deviceView: View = (root, ctx, params) => {
  const id = params.id ?? "";
  const disposers: (() => void)[] = [];
  const stopLoad = loadInto(
    root,
    () => Promise.all([ctx.api.get<{ device: Device }>(`/v1/devices/${seg(id)}`), ctx.api.get<Twin>(`/v1/devices/${seg(id)}/twin`)]),
    ([{ device }, twin]) => disposers.push(...renderDevice(root, ctx, device, twin)),
    "Loading the device…",
  );
  return () => {
    stopLoad();
    for (const dispose of disposers) dispose();
  };
};

function renderDevice(root: HTMLElement, ctx: Ctx, device: Device, twin: Twin): (() => void)[] {
  const disposers: (() => void)[] = [];
  const status = badge(twin.availability.status);
  const lastSeen = h("span", { "data-ago": twin.last_seen ?? "" }, ago(twin.last_seen));
  root.append(
    h("nav", { class: "crumbs", "aria-label": "Breadcrumb" }, h("a", { href: "#/devices" }, "Devices"), " › ", device.id),
    h(
      "div",
      { class: "page-head" },
      h("h1", {}, device.name ?? device.id),
      status,
      h(
        "p",
        { class: "muted" },
        `${device.id} · ${device.type} · ${device.class} · `,
        device.room ? h("a", { href: `#/rooms/${seg(device.room)}` }, roomLabel(device.room)) : "no room",
        " · last seen ",
        lastSeen,
      ),
    ),
  );

  const charts = chartsSection(ctx, device, twin);
  disposers.push(charts.dispose);
  const twinPanel = twinSection(ctx, device, twin);
  const commands = commandsSection(ctx, device);
  disposers.push(commands.dispose);
  const errors = errorsSection(ctx, device);
  disposers.push(errors.dispose);
  root.append(charts.element, twinPanel.element, commands.element, errors.element, manageSection(ctx, device));

  disposers.push(
    ctx.store.on((event) => {
      if (event.kind === "availability" && event.device === device.id) setBadge(status, event.availability.status);
      if (event.kind === "reading" && event.device === device.id) {
        lastSeen.setAttribute("data-ago", event.reading.at);
        setText(lastSeen, ago(event.reading.at));
        charts.reading(event.metric, event.reading, event.live);
        twinPanel.reading(event.metric, event.reading);
      }
      if (event.kind === "command" && event.device === device.id) commands.update(event.data.id, event.data.status);
      if (event.kind === "resync") commands.refresh();
    }),
  );
  return disposers;
}

// ---------------------------------------------------------------------------------------------
// Twin

function twinSection(ctx: Ctx, device: Device, initial: Twin) {
  let twin = initial;
  const version = h("span", { "data-twin-version": "" });
  const counters = h("span", { class: "muted" });
  const readingsBody = h("tbody");
  const reportedState = h("pre", { class: "json", "data-doc": "reported" });
  const desired = h("pre", { class: "json", "data-doc": "desired" });
  const delta = h("pre", { class: "json", "data-doc": "delta" });
  const message = h("p", { class: "form-message", role: "status" });

  const draw = () => {
    setText(version, `version ${twin.version}`);
    setText(counters, `${twin.counters.accepted} accepted · ${twin.counters.duplicates} duplicates · ${twin.counters.rejected} rejected`);
    readingsBody.replaceChildren(
      ...Object.entries(twin.reported.readings)
        .sort(([a], [b]) => a.localeCompare(b))
        .map(([metric, r]) => readingRow(metric, r)),
    );
    setText(reportedState, isEmptyObject(twin.reported.state) ? "{}" : json(twin.reported.state));
    setText(desired, isEmptyObject(twin.desired) ? "{}" : json(twin.desired));
    setText(delta, isEmptyObject(twin.delta) ? "{} — in sync" : json(twin.delta));
    delta.classList.toggle("out-of-sync", !isEmptyObject(twin.delta));
  };
  const readingRow = (metric: string, r: Reading) =>
    h(
      "tr",
      { "data-reading": metric },
      h("th", { scope: "row" }, metric),
      h("td", {}, formatReading(r)),
      h("td", { class: "muted" }, time(r.at)),
    );

  const refresh = async () => {
    try {
      twin = await ctx.api.get<Twin>(`/v1/devices/${seg(device.id)}/twin`);
      draw();
    } catch (error) {
      if (!isAuthFailure(error)) setText(message, `Could not refresh: ${(error as Error).message}`);
    }
  };

  let editor: HTMLElement | null = null;
  if (ctx.can("operator")) {
    const patch = h("textarea", { id: "desired-patch", rows: 3, spellcheck: "false" }, '{"setpoint": 21}');
    editor = h(
      "form",
      {
        class: "desired-form",
        onsubmit: async (e: Event) => {
          e.preventDefault();
          let body: unknown;
          try {
            body = JSON.parse(patch.value);
          } catch {
            setText(message, "The patch is not valid JSON.");
            return;
          }
          try {
            twin = await ctx.api.send<Twin>(
              "PATCH",
              `/v1/devices/${seg(device.id)}/twin/desired`,
              { desired: body },
              {
                headers: { "if-match": `"${twin.version}"` },
              },
            );
            draw();
            setText(message, `Desired state changed (version ${twin.version}).`);
          } catch (error) {
            if (isAuthFailure(error)) return;
            const api = error instanceof ApiError ? error : undefined;
            setText(
              message,
              api?.code === "precondition_failed"
                ? "Someone changed it first: refreshed, check and apply again."
                : `Not applied: ${(error as Error).message}`,
            );
            if (api?.code === "precondition_failed") void refresh();
          }
        },
      },
      h("label", { for: "desired-patch" }, "Change desired state (JSON merge patch; null deletes a key)"),
      patch,
      h("button", { type: "submit" }, "Apply"),
    );
  }

  draw();
  const element = h(
    "section",
    { "aria-labelledby": "twin-title", class: "twin" },
    h(
      "div",
      { class: "section-head" },
      h("h2", { id: "twin-title" }, "Twin"),
      version,
      h("button", { type: "button", onclick: () => void refresh() }, "Refresh"),
    ),
    h("p", {}, counters),
    h(
      "div",
      { class: "grid docs" },
      h(
        "article",
        { class: "card" },
        h("h3", {}, "Reported"),
        h(
          "table",
          { class: "table" },
          h(
            "thead",
            {},
            h("tr", {}, h("th", { scope: "col" }, "reading"), h("th", { scope: "col" }, "value"), h("th", { scope: "col" }, "at")),
          ),
          readingsBody,
        ),
        h("h4", {}, "State"),
        reportedState,
      ),
      h("article", { class: "card" }, h("h3", {}, "Desired"), desired, editor),
      h(
        "article",
        { class: "card" },
        h("h3", {}, "Delta"),
        h("p", { class: "muted small" }, "Desired keys the device does not report yet."),
        delta,
      ),
    ),
    message,
  );
  return {
    element,
    reading(metric: string, reading: Reading) {
      twin.reported.readings[metric] = reading;
      const row = readingsBody.querySelector(`tr[data-reading="${CSS.escape(metric)}"]`);
      if (row) row.replaceWith(readingRow(metric, reading));
      else readingsBody.append(readingRow(metric, reading));
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Commands

const POLL_MS = 2000;

function commandsSection(ctx: Ctx, device: Device) {
  const list = h("ol", { class: "commands", id: "commands", "aria-live": "polite" });
  const items = new Map<string, { li: HTMLElement; command: Command; lastLive: number }>();
  const formMessage = h("p", { class: "form-message", role: "alert" });
  let pollTimer: ReturnType<typeof setInterval> | undefined;

  const render = (command: Command) => {
    const existing = items.get(command.id);
    // Answers can overtake each other (the POST's answer, a poll, a live update): never go back.
    if (existing && existing.command.history.length > command.history.length) return;
    const li = h(
      "li",
      { class: "card command", "data-command": command.id },
      h("div", { class: "command-head" }, h("strong", {}, command.command), badge(command.status)),
      isEmptyObject(command.parameters) ? null : h("code", { class: "small" }, JSON.stringify(command.parameters)),
      h(
        "p",
        { class: "muted small history" },
        command.history.map((step) => `${step.status} ${new Date(step.at).toLocaleTimeString()}`).join(" → ") || command.status,
      ),
      command.error ? h("p", { class: "error small" }, `Error: ${command.error}`) : null,
      command.result !== null && command.result !== undefined
        ? h("p", { class: "small" }, "Result: ", h("code", {}, JSON.stringify(command.result)))
        : null,
    );
    if (existing) existing.li.replaceWith(li);
    else list.prepend(li);
    items.set(command.id, { li, command, lastLive: existing?.lastLive ?? 0 });
    list.querySelector(".empty")?.remove();
    schedulePoll();
  };

  const fetchOne = async (commandId: string) => {
    try {
      const { command } = await ctx.api.get<{ command: Command }>(`/v1/devices/${seg(device.id)}/commands/${seg(commandId)}`);
      render(command);
    } catch {}
  };

  /** The live `command` stream moves statuses; while it is down or silent, poll (docs/live.md). */
  const schedulePoll = () => {
    const pending = [...items.values()].some((i) => !TERMINAL_COMMAND_STATUSES.includes(i.command.status));
    if (!pending) {
      clearInterval(pollTimer);
      pollTimer = undefined;
      return;
    }
    pollTimer ??= setInterval(() => {
      const now = Date.now();
      for (const item of items.values()) {
        if (TERMINAL_COMMAND_STATUSES.includes(item.command.status)) continue;
        if (ctx.live.state === "live" && now - Math.max(item.lastLive, Date.parse(item.command.created_at)) < 4000) continue;
        void fetchOne(item.command.id);
      }
    }, POLL_MS);
  };

  const refresh = async () => {
    try {
      const { commands } = await ctx.api.get<{ commands: Command[] }>(`/v1/devices/${seg(device.id)}/commands?limit=10`);
      for (const command of [...commands].reverse()) render(command);
      if (commands.length === 0 && !list.firstChild) list.append(h("li", { class: "empty muted" }, "No commands yet."));
    } catch (error) {
      if (!isAuthFailure(error)) list.replaceChildren(problem(error, () => void refresh()));
    }
  };

  let form: HTMLElement;
  if (ctx.can("operator")) {
    const name = h("input", { id: "command-name", name: "command", required: true, placeholder: "e.g. reboot", autocomplete: "off" });
    const parameters = h("textarea", { id: "command-params", name: "parameters", rows: 3, spellcheck: "false" }, "{}");
    const ttl = h("input", { id: "command-ttl", name: "ttl_s", type: "number", min: 1, step: 1, value: 300, inputmode: "numeric" });
    const submit = h("button", { type: "submit", class: "primary" }, "Send command");
    form = h(
      "form",
      {
        class: "command-form",
        "aria-label": "Send a command",
        onsubmit: async (e: Event) => {
          e.preventDefault();
          setText(formMessage, "");
          let params: unknown;
          try {
            params = parameters.value.trim() ? JSON.parse(parameters.value) : {};
          } catch {
            setText(formMessage, 'Parameters must be a JSON object, for example {"level": 3}.');
            return;
          }
          if (typeof params !== "object" || params === null || Array.isArray(params)) {
            setText(formMessage, "Parameters must be a JSON object.");
            return;
          }
          submit.disabled = true;
          try {
            const { command } = await ctx.api.send<{ command: Command }>("POST", `/v1/devices/${seg(device.id)}/commands`, {
              command: name.value.trim(),
              parameters: params,
              ttl_s: Number(ttl.value) || 300,
            });
            render(command);
            setText(formMessage, "");
          } catch (error) {
            if (!isAuthFailure(error)) {
              const api = error instanceof ApiError ? error : undefined;
              setText(formMessage, `Not sent: ${api?.issues.map((i) => `${i.path}: ${i.message}`).join("; ") || (error as Error).message}`);
            }
          } finally {
            submit.disabled = false;
          }
        },
      },
      h("label", { for: "command-name" }, "Command", name),
      h("label", { for: "command-params" }, "Parameters (JSON)", parameters),
      h("label", { for: "command-ttl" }, "Expires after (s)", ttl),
      submit,
      formMessage,
    );
  } else {
    form = h("p", { class: "muted" }, "Operators and admins can send commands to this device.");
  }

  void refresh();
  return {
    element: h("section", { "aria-labelledby": "commands-title" }, h("h2", { id: "commands-title" }, "Commands"), form, list),
    update(commandId: string, status: string) {
      const item = items.get(commandId);
      if (!item) {
        void fetchOne(commandId);
        return;
      }
      item.lastLive = Date.now();
      if (item.command.status === status) return;
      // The live update names the status; the full command (history, result) comes from the API.
      item.command = {
        ...item.command,
        status: status as Command["status"],
        history: [...item.command.history, { status: status as Command["status"], at: new Date().toISOString() }],
      };
      render(item.command);
      if (TERMINAL_COMMAND_STATUSES.includes(item.command.status)) void fetchOne(commandId);
    },
    refresh: throttle(() => void refresh(), 1000),
    dispose() {
      clearInterval(pollTimer);
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Validation errors

function errorsSection(ctx: Ctx, device: Device) {
  const body = h("div", { id: "device-errors" });
  const load = () =>
    loadInto(
      body,
      () => ctx.api.get<{ errors: StoredError[] }>(`/v1/devices/${seg(device.id)}/errors?limit=20`),
      ({ errors }) => {
        if (errors.length === 0) {
          body.append(h("p", { class: "muted" }, "No rejected messages."));
          return;
        }
        body.append(
          h(
            "ul",
            { class: "errors" },
            errors.map((e) =>
              h(
                "li",
                { class: "card" },
                h("div", { class: "command-head" }, h("code", {}, e.code), h("span", { class: "muted small" }, time(e.at))),
                e.message_id ? h("p", { class: "small muted" }, `message ${e.message_id}`) : null,
                h(
                  "ul",
                  { class: "issues small" },
                  e.issues.map((i) => h("li", {}, h("code", {}, i.path || "body"), ` ${i.message}`)),
                ),
              ),
            ),
          ),
        );
      },
      "Loading errors…",
    );
  let stop = load();
  return {
    element: h(
      "section",
      { "aria-labelledby": "errors-title" },
      h(
        "div",
        { class: "section-head" },
        h("h2", { id: "errors-title" }, "Validation errors"),
        h(
          "button",
          {
            type: "button",
            onclick: () => {
              stop();
              stop = load();
            },
          },
          "Refresh",
        ),
      ),
      body,
    ),
    dispose: () => stop(),
  };
}
