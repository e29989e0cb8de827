/** Alerts: what the alert rules raised, live from the `system` hub; operators acknowledge them (docs/alerts.md). */
import type { DeliveryStatus, Alert as SharedAlert } from "../../../shared/schemas/alerts.ts";
import { ApiError } from "../api.ts";
import { badge, loadInto, refreshOnLive, statusSelect } from "../components.ts";
import type { View } from "../context.ts";
import { h, setText } from "../dom.ts";
import { time } from "../format.ts";
import { isAuthFailure } from "../live.ts";

/** An alert as GET /v1/alerts answers it: the alert and its deliveries (shared/repos/alerts.ts StoredAlert). */
type Alert = SharedAlert & { deliveries: DeliveryStatus[] };

const num = (n: number) => String(Number(n.toPrecision(4)));

/** Badge colours: the dashboard's status classes. */
const TONE: Record<string, string> = {
  critical: "failed",
  warning: "stale",
  info: "queued",
  active: "failed",
  acknowledged: "stale",
  cleared: "succeeded",
};

export const alertsView: View = (root, ctx, _params, query) => {
  let status = query.get("status") ?? "active";
  const operator = ctx.can("operator");
  const select = statusSelect(ctx, "alert-status", ["active", "acknowledged", "cleared", "all"], status, (chosen) => {
    status = chosen;
    load();
  });
  const message = h("p", { class: "form-message", role: "status" });
  const fresh = h("p", { class: "notice", hidden: true, role: "status" });
  const list = h("div", { id: "alert-list" });
  root.append(
    h("div", { class: "page-head" }, h("h1", {}, "Alerts"), h("a", { href: "#/alert-rules", id: "rules-link" }, "Alert rules")),
    h("p", { class: "muted" }, "Raised by the alert rules as readings arrive; each lists where its notifications went."),
    h("div", { class: "filters" }, h("label", { for: "alert-status" }, "Status", select)),
    fresh,
    message,
    list,
  );

  const acknowledge = async (alert: Alert) => {
    try {
      await ctx.api.send("POST", `/api/monitoring/alerts/${alert.id}/acknowledge`, {});
      setText(message, `Acknowledged: ${alert.title}`);
      load();
    } catch (error) {
      if (!isAuthFailure(error)) setText(message, `Acknowledging failed: ${error instanceof ApiError ? error.message : String(error)}`);
    }
  };

  const row = (a: Alert) =>
    h(
      "article",
      { class: "card alert", "data-alert": a.id, "data-severity": a.severity },
      h(
        "div",
        { class: "command-head" },
        h("strong", {}, a.title),
        badge(TONE[a.severity] ?? "queued", a.severity),
        badge(TONE[a.status] ?? "queued", a.status),
      ),
      h(
        "p",
        { class: "muted small" },
        `${time(a.started_at)} · ${a.device} · rule ${a.rule_name}`,
        a.escalated ? " · escalated" : "",
        a.acknowledged_by ? ` · acknowledged by ${a.acknowledged_by}` : "",
      ),
      // The default analysis' evidence (docs/ai.md): the reading against its baseline.
      a.evidence
        ? h(
            "p",
            { class: "small", "data-evidence": a.evidence.metric },
            `${a.evidence.metric} ${num(a.evidence.value)} vs baseline ${num(a.evidence.level)} ± ${num(a.evidence.sigma)} · ` +
              `z ${num(a.evidence.score)} (≥ ${a.evidence.threshold}) over ${a.evidence.window} readings · ${time(a.evidence.at)}`,
          )
        : null,
      a.deliveries.length
        ? h(
            "p",
            { class: "small" },
            a.deliveries.map((d) => `${d.type}: ${d.status}${d.attempts > 1 ? ` (${d.attempts} attempts)` : ""}`).join(" · "),
          )
        : null,
      operator && a.status === "active" ? h("button", { type: "button", onclick: () => void acknowledge(a) }, "Acknowledge") : null,
    );

  let stop = () => {};
  const load = () => {
    stop();
    fresh.hidden = true;
    stop = loadInto(
      list,
      () =>
        ctx.api.get<{ alerts: Alert[] }>(
          `/api/monitoring/alerts?limit=100${status === "all" ? "" : `&status=${encodeURIComponent(status)}`}`,
        ),
      (page) => {
        list.append(page.alerts.length ? h("div", { class: "list" }, page.alerts.map(row)) : h("p", { class: "empty" }, "No alerts here."));
      },
      "Loading alerts…",
    );
  };
  load();

  // Alert changes arrive on the system hub: say so and refresh the list.
  const unfollow = refreshOnLive(
    ctx,
    "alert",
    fresh,
    (event) => `Alert ${String(event.data.transition ?? "changed")}: ${String(event.data.title ?? "")}`,
    load,
  );
  return () => {
    stop();
    unfollow();
  };
};
