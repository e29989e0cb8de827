/**
 * Managing rooms (admins, as the rooms API requires): create one, rename it, move devices into
 * it. Moving a device out happens by moving it elsewhere or on its page (Room: empty).
 */
import { seg } from "../api.ts";
import type { Ctx } from "../context.ts";
import { h, setText } from "../dom.ts";
import { roomLabel } from "../format.ts";
import { failure, field } from "./manage-devices.ts";

/** #/rooms: a new room. */
export function newRoomForm(ctx: Ctx): HTMLElement | null {
  if (!ctx.can("admin")) return null;
  const id = h("input", { id: "room-id", required: true, pattern: "[a-z0-9][a-z0-9_\\-]{0,63}", autocomplete: "off" });
  const name = h("input", { id: "room-name", autocomplete: "off" });
  const message = h("p", { class: "form-message", role: "alert" });
  const form = h(
    "form",
    { class: "manage-form", "aria-label": "New room" },
    field("Room id", id, "a-z, 0-9, _ and -"),
    field("Name", name, "how it reads, e.g. Living room"),
    h("button", { type: "submit", class: "primary" }, "Create room"),
    message,
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const body = { id: id.value.trim(), ...(name.value.trim() && { name: name.value.trim() }) };
    ctx.api.send("POST", "/v1/rooms", body).then(
      () => {
        void ctx.reloadFleet();
        location.hash = `#/rooms/${seg(body.id)}`;
      },
      (error: unknown) => setText(message, `Not created: ${failure(error)}`),
    );
  });
  return h("details", { class: "layout" }, h("summary", {}, "New room"), form);
}

/** #/rooms/<id>: rename, and move a device here. */
export function roomManageSection(ctx: Ctx, room: { id: string; name: string | null }, members: Set<string>): HTMLElement | null {
  if (!ctx.can("admin")) return null;
  const message = h("p", { class: "form-message", role: "status", id: "room-message" });
  const name = h("input", { id: "room-rename", value: room.name ?? "", autocomplete: "off" });
  const rename = h(
    "form",
    { class: "manage-form", "aria-label": "Rename the room" },
    field("Name", name, "empty: the id is shown"),
    h("button", { type: "submit" }, "Rename"),
  );
  rename.addEventListener("submit", (event) => {
    event.preventDefault();
    ctx.api.send("PATCH", `/v1/rooms/${seg(room.id)}`, { name: name.value.trim() || null }).then(
      () => ctx.rerender(),
      (error: unknown) => setText(message, `Not renamed: ${failure(error)}`),
    );
  });
  const others = [...ctx.store.devices.values()]
    .filter((s) => !members.has(s.device.id))
    .sort((a, b) => a.device.id.localeCompare(b.device.id));
  const pick = h(
    "select",
    { id: "room-move-device" },
    others.map((s) => h("option", { value: s.device.id }, `${s.device.name ?? s.device.id} (${roomLabel(s.device.room)})`)),
  );
  const move = h(
    "form",
    { class: "manage-form", "aria-label": "Move a device into the room" },
    field("Device", pick),
    h("button", { type: "submit", disabled: others.length === 0 }, "Move here"),
  );
  move.addEventListener("submit", (event) => {
    event.preventDefault();
    if (!pick.value) return;
    ctx.api.send("PUT", `/v1/rooms/${seg(room.id)}/devices/${seg(pick.value)}`).then(
      () => ctx.reloadFleet().then(() => ctx.rerender()),
      (error: unknown) => setText(message, `Not moved: ${failure(error)}`),
    );
  });
  return h(
    "section",
    { "aria-labelledby": "room-manage-title", class: "manage" },
    h("h2", { id: "room-manage-title" }, "Manage"),
    rename,
    move,
    message,
  );
}
