/** Dead letters: what failed on which queue and why, live from the `system` hub; admins replay them. */

import type { DeadLetter, DeadLetterList } from "../../../shared/schemas/api/dead-letter.ts";
import { sourceOf } from "../../../shared/schemas/api/dead-letter.ts";
import { ApiError } from "../api.ts";
import { badge, loadInto, refreshOnLive, statusSelect } from "../components.ts";
import type { View } from "../context.ts";
import { h, setText } from "../dom.ts";
import { time } from "../format.ts";
import { isAuthFailure } from "../live.ts";

export const deadLettersView: View = (root, ctx, _params, query) => {
  let status = query.get("status") ?? "pending";
  const admin = ctx.can("admin");
  const select = statusSelect(ctx, "dl-status", ["pending", "replayed", "all"], status, (chosen) => {
    status = chosen;
    load();
  });
  const total = h("p", { class: "muted", "aria-live": "polite" });
  const message = h("p", { class: "form-message", role: "status" });
  const fresh = h("p", { class: "notice", hidden: true, role: "status" });
  const list = h("div", { id: "dead-letter-list" });
  const replayAll = admin
    ? h(
        "button",
        {
          type: "button",
          class: "primary",
          onclick: () => void replay({ all: true }, "every pending dead letter"),
        },
        "Replay all pending",
      )
    : null;

  root.append(
    h("div", { class: "page-head" }, h("h1", {}, "Dead letters"), total),
    h(
      "p",
      { class: "muted" },
      "Messages a queue could not process after its retries, or that no binding took. Replaying sends one back to the queue it failed on.",
    ),
    h("div", { class: "filters" }, h("label", { for: "dl-status" }, "Status", select), replayAll),
    fresh,
    message,
    list,
  );

  const replay = async (body: unknown, what: string) => {
    setText(message, `Replaying ${what}…`);
    try {
      const answer = await ctx.api.send<{ replayed?: number; pending?: number }>("POST", "/v1/dead-letters/replay", body);
      setText(
        message,
        `Replayed ${answer.replayed ?? "the"} message${answer.replayed === 1 ? "" : "s"}${answer.pending ? `; ${answer.pending} still pending` : ""}.`,
      );
      load();
    } catch (error) {
      if (!isAuthFailure(error)) setText(message, `Replay failed: ${error instanceof ApiError ? error.message : String(error)}`);
    }
  };

  const row = (d: DeadLetter) =>
    h(
      "article",
      { class: "card dead-letter", "data-dead-letter": String(d.id) },
      h("div", { class: "command-head" }, h("strong", {}, d.queue), badge(d.status === "pending" ? "failed" : "succeeded", d.status)),
      h("p", { class: "small" }, h("code", {}, d.error.code), ` ${d.error.message}`),
      h(
        "p",
        { class: "muted small" },
        `${time(d.failed_at)} · ${d.attempts} attempt${d.attempts === 1 ? "" : "s"} · ${d.exchange} / ${d.routing_key}`,
        sourceOf(d) ? ` · from ${sourceOf(d)}` : "",
      ),
      h("details", {}, h("summary", {}, `message ${d.message_id}`), h("pre", { class: "json" }, JSON.stringify(d.message, null, 2))),
      admin && d.status === "pending"
        ? h("button", { type: "button", onclick: () => void replay({ ids: [d.id] }, `dead letter ${d.id}`) }, "Replay")
        : null,
    );

  let stop = () => {};
  const load = () => {
    stop();
    fresh.hidden = true;
    stop = loadInto(
      list,
      () => ctx.api.get<DeadLetterList>(`/v1/dead-letters?status=${encodeURIComponent(status)}&limit=100`),
      (page) => {
        setText(total, `${page.total} ${status === "all" ? "in all" : status}`);
        if (replayAll) (replayAll as HTMLButtonElement).disabled = status === "replayed" || page.total === 0;
        list.append(
          page.dead_letters.length
            ? h("div", { class: "list" }, page.dead_letters.map(row))
            : h("p", { class: "empty" }, "Nothing here. Good."),
        );
      },
      "Loading dead letters…",
    );
  };
  load();

  // New dead letters arrive on the system hub: say so and refresh the list.
  let arrived = 0;
  const unfollow = refreshOnLive(
    ctx,
    "dead_letter",
    fresh,
    (event) => {
      arrived++;
      return `${arrived} new dead letter${arrived === 1 ? "" : "s"} just arrived (latest on ${String(event.data.queue ?? "?")}).`;
    },
    load,
    () => status !== "replayed",
  );
  return () => {
    stop();
    unfollow();
  };
};
