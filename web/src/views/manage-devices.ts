/**
 * Managing devices (admins, as the registry API requires): add one (#/add-device) and see its
 * token once with ready-to-copy snippets; on a device's page, edit it, rotate its token, or
 * delete it after typing its id. Everyone else sees what they may not do, and why.
 */
import { ApiError, seg } from "../api.ts";
import type { Ctx, View } from "../context.ts";
import { h, setText } from "../dom.ts";
import { deviceSnippets } from "../snippets.ts";
import type { Device } from "../types.ts";

/** The edge's answer as text for a form: each field at fault, or the message. */
export function failure(error: unknown): string {
  if (error instanceof ApiError) return error.issues.length ? error.issues.map((i) => `${i.path}: ${i.message}`).join("; ") : error.message;
  return error instanceof Error ? error.message : String(error);
}

function copyButton(label: string, text: () => string): HTMLButtonElement {
  const button = h("button", { type: "button", class: "copy" }, `Copy ${label}`);
  button.addEventListener("click", () => {
    const done = (ok: boolean) => {
      setText(button, ok ? "Copied" : "Select and copy it by hand");
      setTimeout(() => setText(button, `Copy ${label}`), 2000);
    };
    (navigator.clipboard?.writeText(text()) ?? Promise.reject(new Error("no clipboard"))).then(
      () => done(true),
      () => done(false),
    );
  });
  return button;
}

let fieldIds = 0;
export function field(label: string, input: HTMLInputElement | HTMLSelectElement, hint?: string): HTMLElement {
  input.id ||= `f-${++fieldIds}`;
  const hintEl = hint ? h("span", { class: "muted small", id: `${input.id}-hint` }, hint) : null;
  if (hintEl) input.setAttribute("aria-describedby", hintEl.id);
  return h("div", { class: "field" }, h("label", { for: input.id }, label), input, hintEl);
}

export const select = (name: string, options: [string, string][], value?: string) =>
  h(
    "select",
    { name, id: `f-${name}` },
    options.map(([v, text]) => h("option", { value: v, selected: v === value }, text)),
  );

/** The token, once, with the snippets that use it. */
export function tokenPanel(device: Pick<Device, "id" | "type">, token: string, verb: string): HTMLElement {
  const snippets = deviceSnippets(location.origin, device, token);
  return h(
    "section",
    { class: "card token-panel", "aria-labelledby": "token-title", "data-token-for": device.id },
    h("h2", { id: "token-title" }, `${verb} ${device.id}: its token`),
    h("p", { role: "alert" }, "This token is shown once. Store it on the device now; the edge keeps only its hash."),
    h(
      "p",
      {},
      h("code", { class: "token", "data-token": "" }, token),
      " ",
      copyButton("token", () => token),
    ),
    snippets.map((s) =>
      h(
        "details",
        { class: "snippet", "data-snippet": s.id, open: s.id === "curl" },
        h("summary", {}, s.label),
        h("pre", { class: "json" }, s.text),
        copyButton(s.label.split(" (")[0] ?? s.label, () => s.text),
      ),
    ),
    h("p", {}, h("a", { href: `#/devices/${seg(device.id)}` }, `Open ${device.id}`)),
  );
}

export const addDeviceView: View = (root, ctx) => {
  root.append(h("div", { class: "page-head" }, h("h1", {}, "Add a device")));
  if (!ctx.can("admin")) {
    root.append(h("p", { class: "muted", "data-denied": "" }, "Adding devices needs the admin role."));
    return undefined;
  }
  const rooms = [...new Set([...ctx.store.devices.values()].map((s) => s.device.room).filter((r): r is string => !!r))].sort();
  const id = h("input", { id: "add-id", name: "id", required: true, pattern: "[a-z0-9][a-z0-9_\\-]{0,63}", autocomplete: "off" });
  const name = h("input", { id: "add-name", name: "name", autocomplete: "off" });
  const type = h("input", { id: "add-type", name: "type", required: true, list: "device-types", autocomplete: "off" });
  const room = h("input", { id: "add-room", name: "room", list: "device-rooms", autocomplete: "off" });
  const klass = select("class", [
    ["mains", "mains (online within 2 min)"],
    ["battery", "battery (online within 60 min)"],
  ]);
  const kind = select("kind", [
    ["device", "device"],
    ["service", "service (publishes to exchanges it is given)"],
  ]);
  const publish = h("input", { id: "add-publish", name: "publish", autocomplete: "off", placeholder: "sensors:sensors.temperature.*" });
  const message = h("p", { class: "form-message", role: "alert", id: "add-device-message" });
  const result = h("div");
  const form = h(
    "form",
    { class: "manage-form", "aria-label": "Add a device" },
    field("Id", id, "a-z, 0-9, _ and -; it names the device everywhere"),
    field("Name", name),
    field("Type", type, "e.g. temperature, energy, motion: it sets the routing key sensors.<type>.<room>"),
    field("Room", room, "a new name creates the room"),
    field("Power class", klass),
    field("Kind", kind),
    field("Publish permissions", publish, "exchange:pattern, space-separated; empty: the least a device of its type needs"),
    h(
      "datalist",
      { id: "device-types" },
      ["temperature", "humidity", "energy", "motion", "pressure", "switch"].map((t) => h("option", { value: t })),
    ),
    h(
      "datalist",
      { id: "device-rooms" },
      rooms.map((r) => h("option", { value: r })),
    ),
    h("button", { type: "submit", class: "primary" }, "Add device"),
    message,
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    setText(message, "");
    const body = {
      id: id.value.trim(),
      type: type.value.trim(),
      class: klass.value,
      kind: kind.value,
      ...(name.value.trim() && { name: name.value.trim() }),
      ...(room.value.trim() && { room: room.value.trim() }),
      ...(publish.value.trim() && { publish: publish.value.trim().split(/[\s,]+/) }),
    };
    ctx.api.send<{ device: Device; token: string }>("POST", "/v1/devices", body).then(
      ({ device, token }) => {
        form.remove();
        result.replaceChildren(tokenPanel(device, token, "Added"));
        void ctx.reloadFleet();
      },
      (error: unknown) => setText(message, `Not added: ${failure(error)}`),
    );
  });
  root.append(form, result);
  return undefined;
};

/** On a device's page: edit, rotate the token, delete (admins). */
export function manageSection(ctx: Ctx, device: Device): HTMLElement {
  const section = h("section", { "aria-labelledby": "manage-title", class: "manage" }, h("h2", { id: "manage-title" }, "Manage"));
  if (!ctx.can("admin")) {
    section.append(h("p", { class: "muted" }, "Admins can edit this device, rotate its token or delete it."));
    return section;
  }
  const name = h("input", { name: "name", value: device.name ?? "" });
  const type = h("input", { name: "type", value: device.type, required: true });
  const room = h("input", { name: "room", value: device.room ?? "" });
  const klass = select(
    "class",
    [
      ["mains", "mains"],
      ["battery", "battery"],
    ],
    device.class,
  );
  name.id = "edit-name";
  type.id = "edit-type";
  room.id = "edit-room";
  klass.id = "edit-class";
  const message = h("p", { class: "form-message", role: "status", id: "manage-message" });
  const edit = h(
    "form",
    { class: "manage-form", "aria-label": "Edit the device" },
    field("Name", name),
    field("Type", type),
    field("Room", room, "empty: no room; a new name creates the room"),
    field("Power class", klass),
    h("button", { type: "submit" }, "Save changes"),
  );
  edit.addEventListener("submit", (event) => {
    event.preventDefault();
    const patch = { name: name.value.trim() || null, type: type.value.trim(), class: klass.value, room: room.value.trim() || null };
    ctx.api.send<{ device: Device }>("PATCH", `/v1/devices/${seg(device.id)}`, patch).then(
      () => {
        setText(message, "Saved.");
        void ctx.reloadFleet();
      },
      (error: unknown) => setText(message, `Not saved: ${failure(error)}`),
    );
  });

  const tokenArea = h("div");
  const rotate = h("button", { type: "button" }, "Rotate token…");
  rotate.addEventListener("click", () => {
    const yes = h("button", { type: "button", class: "primary" }, "Rotate now");
    const no = h("button", { type: "button" }, "Cancel");
    tokenArea.replaceChildren(h("p", { role: "alert" }, "The current token stops working at once. ", yes, " ", no));
    no.addEventListener("click", () => tokenArea.replaceChildren());
    yes.addEventListener("click", () =>
      ctx.api.send<{ device: Device; token: string }>("POST", `/v1/devices/${seg(device.id)}/token`).then(
        ({ token }) => tokenArea.replaceChildren(tokenPanel(device, token, "Rotated")),
        (error: unknown) => tokenArea.replaceChildren(h("p", { role: "alert" }, `Not rotated: ${failure(error)}`)),
      ),
    );
    yes.focus();
  });

  const confirmId = h("input", { id: "delete-confirm", autocomplete: "off" });
  const remove = h("button", { type: "button", class: "danger", disabled: true }, "Delete device");
  confirmId.addEventListener("input", () => {
    remove.disabled = confirmId.value !== device.id;
  });
  remove.addEventListener("click", () => {
    if (confirmId.value !== device.id) return;
    ctx.api.send("DELETE", `/v1/devices/${seg(device.id)}`).then(
      () => {
        void ctx.reloadFleet();
        location.hash = "#/devices";
      },
      (error: unknown) => setText(message, `Not deleted: ${failure(error)}`),
    );
  });
  section.append(
    edit,
    message,
    h("h3", {}, "Token"),
    rotate,
    tokenArea,
    h("h3", {}, "Delete"),
    h("p", {}, field(`Type ${device.id} to confirm: its token stops working and it leaves its room. There is no undo.`, confirmId), remove),
  );
  return section;
}
