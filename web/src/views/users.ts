/**
 * People (admins): issue a login token with a role (shown once, with a copy button) and revoke
 * issued ones (POST /v1/auth/token grant "issue", GET /v1/auth/tokens, DELETE /v1/auth/tokens/:id;
 * docs/auth.md). A revoked person is signed out when their access token next needs refreshing.
 */
import type { IssuedTokensAnswer } from "../../../shared/schemas/api/auth.ts";
import { seg } from "../api.ts";
import { badge, loadInto } from "../components.ts";
import type { View } from "../context.ts";
import { h, setText } from "../dom.ts";
import { time } from "../format.ts";
import { failure, field, select } from "./manage-devices.ts";

export const usersView: View = (root, ctx) => {
  root.append(h("div", { class: "page-head" }, h("h1", {}, "People")));
  if (!ctx.can("admin")) {
    root.append(h("p", { class: "muted", "data-denied": "" }, "Issuing and revoking login tokens needs the admin role."));
    return undefined;
  }
  const list = h("div", { id: "token-list" });
  const listMessage = h("p", { class: "form-message", role: "alert" });
  let leave = () => {};
  const refresh = () => {
    leave();
    leave = loadInto(
      list,
      () => ctx.api.get<IssuedTokensAnswer>("/v1/auth/tokens"),
      ({ tokens }) => {
        if (tokens.length === 0) list.append(h("p", { class: "muted empty" }, "No login tokens issued yet."));
        const rows = tokens.map((t) => {
          const expired = Date.parse(t.expires_at) < Date.now();
          const state = t.revoked_at ? "revoked" : expired ? "expired" : "valid";
          const revoke = h("button", { type: "button", class: "danger" }, `Revoke ${t.sub}`);
          revoke.addEventListener("click", () =>
            ctx.api.send("DELETE", `/v1/auth/tokens/${seg(t.id)}`).then(refresh, (e: unknown) => setText(listMessage, failure(e))),
          );
          return h(
            "tr",
            { "data-login-token": t.id, "data-state": state },
            h("th", { scope: "row" }, t.sub),
            h("td", {}, t.role),
            h("td", {}, badge(state === "valid" ? "online" : "offline", state)),
            h("td", {}, time(t.issued_at)),
            h("td", {}, time(t.expires_at)),
            h("td", {}, state === "valid" ? revoke : ""),
          );
        });
        if (rows.length)
          list.append(
            h(
              "div",
              { class: "table-wrap" },
              h(
                "table",
                { class: "table" },
                h(
                  "thead",
                  {},
                  h(
                    "tr",
                    {},
                    ["person", "role", "state", "issued", "expires", ""].map((c) => h("th", { scope: "col" }, c)),
                  ),
                ),
                h("tbody", {}, rows),
              ),
            ),
          );
      },
      "the login tokens",
    );
  };
  const sub = h("input", { id: "user-sub", required: true, pattern: "[A-Za-z0-9@._\\-]{1,128}", autocomplete: "off" });
  const role = select("role", [
    ["viewer", "viewer: sees everything"],
    ["operator", "operator: also commands, desired state, alerts, automations"],
    ["admin", "admin: also devices, rooms, people, replays"],
  ]);
  role.id = "user-role";
  const days = h("input", { id: "user-days", type: "number", min: "1", max: "30", value: "30" });
  const message = h("p", { class: "form-message", role: "alert", id: "user-message" });
  const issued = h("div");
  const form = h(
    "form",
    { class: "manage-form", "aria-label": "Issue a login token" },
    field("Person", sub, "a name or email: letters, digits, @ . _ -"),
    field("Role", role),
    field("Valid for (days)", days, "at most the edge's refresh-token lifetime"),
    h("p", {}, h("button", { type: "submit", class: "primary" }, "Issue login token")),
    message,
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    setText(message, "");
    const body = { grant_type: "issue", sub: sub.value.trim(), role: role.value, ttl_s: Math.round(Number(days.value) * 86_400) };
    ctx.api.send<{ refresh_token: string; sub: string; role: string; expires_at: string }>("POST", "/v1/auth/token", body).then(
      (answer) => {
        const copy = h("button", { type: "button", class: "copy" }, "Copy login token");
        copy.addEventListener("click", () => void navigator.clipboard?.writeText(answer.refresh_token).then(() => setText(copy, "Copied")));
        issued.replaceChildren(
          h(
            "section",
            { class: "card token-panel", "data-issued-for": answer.sub },
            h("h2", {}, `Login token for ${answer.sub} (${answer.role})`),
            h("p", { role: "alert" }, `Shown once; valid until ${time(answer.expires_at)}. They paste it on the sign-in screen.`),
            h("p", {}, h("code", { class: "token", "data-token": "" }, answer.refresh_token), " ", copy),
          ),
        );
        form.reset();
        refresh();
      },
      (error: unknown) => setText(message, `Not issued: ${failure(error)}`),
    );
  });
  root.append(form, issued, h("h2", {}, "Issued login tokens"), listMessage, list);
  refresh();
  return () => leave();
};
