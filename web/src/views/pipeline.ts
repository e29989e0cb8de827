/**
 * Pipeline health (seed 002's monitoring list): throughput, latency per stage, errors and
 * rejections, queue counts and backlog, dead letters, devices, dashboards and storage — drawn
 * from GET /metrics, the numbers Prometheus and Grafana read, refreshed every 10 s. Rates are
 * the difference between two refreshes. Admins only (the endpoint's rule). The bill: the
 * estimated monthly cost at the average rate since the billable counters started, priced with
 * the dated table in shared/billing-prices.ts (the same as `edgemesh cost` and bench/cost).
 */
import { estimateSinceStart } from "../../../shared/billing-estimate.ts";
import { daysUntilD1Full, PRICES_AS_OF } from "../../../shared/billing-prices.ts";
import { ApiError } from "../api.ts";
import { loading, problem } from "../components.ts";
import type { View } from "../context.ts";
import { h, setText } from "../dom.ts";
import { formatNumber } from "../format.ts";
import { isAuthFailure } from "../live.ts";
import { histogram, labelValues, parseMetrics, type Sample, total } from "../prometheus.ts";

const REFRESH_MS = 10_000;

const STAGES = [
  { id: "ingest", label: "Ingest (HTTP request)", metric: "edgemesh_ingest_duration_seconds" },
  { id: "twin", label: "Twin (check, store, route)", metric: "edgemesh_twin_duration_seconds" },
  { id: "routing", label: "Routing (received → consumer)", metric: "edgemesh_routing_lag_seconds" },
  { id: "sinks", label: "Sinks (consumer batch)", metric: "edgemesh_sink_duration_seconds" },
] as const;

function ms(seconds: number | undefined): string {
  if (seconds === undefined || !Number.isFinite(seconds)) return "—";
  return seconds < 1 ? `${formatNumber(seconds * 1000)} ms` : `${formatNumber(seconds)} s`;
}

function bytes(n: number): string {
  const units = ["B", "kB", "MB", "GB"];
  let value = n;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit++;
  }
  return `${formatNumber(value)} ${units[unit]}`;
}

function tile(id: string, label: string, value: number, shown: string, note = ""): HTMLElement {
  return h(
    "div",
    { class: "card tile", "data-metric": id, "data-value": String(value) },
    h("span", { class: "muted small" }, label),
    h("strong", { class: "tile-value" }, shown),
    note ? h("span", { class: "muted small" }, note) : null,
  );
}

function table(id: string, head: string[], rows: { key: string; attr: string; cells: (string | number)[] }[], empty: string): HTMLElement {
  if (rows.length === 0) return h("p", { class: "empty", id }, empty);
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      { class: "table", id },
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          head.map((c) => h("th", { scope: "col" }, c)),
        ),
      ),
      h(
        "tbody",
        {},
        rows.map((r) =>
          h(
            "tr",
            { [r.attr]: r.key },
            r.cells.map((c) => h("td", {}, typeof c === "number" ? formatNumber(c) : c)),
          ),
        ),
      ),
    ),
  );
}

function render(samples: Sample[], previous: { samples: Sample[]; at: number } | undefined, at: number): HTMLElement[] {
  const accepted = total(samples, "edgemesh_ingest_messages_total", { outcome: "accepted" });
  const rate = (now: number, name: string, where: Record<string, string>) => {
    if (!previous) return "";
    const per = (now - total(previous.samples, name, where)) / ((at - previous.at) / 1000);
    return `${formatNumber(Math.max(0, per))}/s now`;
  };
  const online = total(samples, "edgemesh_devices", { availability: "online" });
  const tiles = h(
    "div",
    { class: "tiles", id: "pipeline-tiles" },
    tile(
      "accepted",
      "Messages accepted",
      accepted,
      formatNumber(accepted),
      rate(accepted, "edgemesh_ingest_messages_total", { outcome: "accepted" }),
    ),
    tile(
      "rejected",
      "Rejected",
      total(samples, "edgemesh_ingest_messages_total", { outcome: "rejected" }),
      formatNumber(total(samples, "edgemesh_ingest_messages_total", { outcome: "rejected" })),
    ),
    tile(
      "duplicates",
      "Duplicates",
      total(samples, "edgemesh_ingest_messages_total", { outcome: "duplicate" }),
      formatNumber(total(samples, "edgemesh_ingest_messages_total", { outcome: "duplicate" })),
    ),
    tile(
      "dead-letters",
      "Dead letters pending",
      total(samples, "edgemesh_dead_letters", { status: "pending" }),
      formatNumber(total(samples, "edgemesh_dead_letters", { status: "pending" })),
    ),
    tile("devices-online", "Devices online", online, `${formatNumber(online)} / ${formatNumber(total(samples, "edgemesh_devices"))}`),
    tile(
      "dashboards",
      "Live connections",
      total(samples, "edgemesh_live_connections"),
      formatNumber(total(samples, "edgemesh_live_connections")),
    ),
    tile("storage", "D1 storage", total(samples, "edgemesh_d1_size_bytes"), bytes(total(samples, "edgemesh_d1_size_bytes"))),
  );

  const stages = table(
    "pipeline-stages",
    ["Stage", "Count", "Mean", "p50", "p99"],
    STAGES.flatMap((s) => {
      const summary = histogram(samples, s.metric);
      return summary
        ? [{ key: s.id, attr: "data-stage", cells: [s.label, summary.count, ms(summary.mean), ms(summary.p50), ms(summary.p99)] }]
        : [];
    }),
    "No message has gone through yet.",
  );

  const queues = labelValues(samples, "edgemesh_queue_messages_total", "queue");
  const queueRows = queues
    .map((queue) => ({
      queue,
      routed: total(samples, "edgemesh_routed_messages_total", { queue }),
      delivered: total(samples, "edgemesh_queue_messages_total", { queue, outcome: "delivered" }),
      retried: total(samples, "edgemesh_queue_messages_total", { queue, outcome: "retried" }),
      dead: total(samples, "edgemesh_queue_messages_total", { queue, outcome: "dead_lettered" }),
      backlog: total(samples, "edgemesh_queue_backlog_estimate", { queue }),
      sink: histogram(samples, "edgemesh_sink_duration_seconds", { queue }),
    }))
    .filter((q) => q.routed + q.delivered + q.retried + q.dead > 0);
  const queueTable = table(
    "pipeline-queues",
    ["Queue", "Routed at ingest", "Delivered", "Retried", "Dead-lettered", "Backlog (est.)", "Sink p99"],
    queueRows.map((q) => ({
      key: q.queue,
      attr: "data-queue",
      cells: [q.queue, q.routed, q.delivered, q.retried, q.dead, q.backlog, ms(q.sink?.p99)],
    })),
    "No queue has carried a message yet.",
  );

  const rejections = table(
    "pipeline-rejections",
    ["Code", "Messages"],
    labelValues(samples, "edgemesh_ingest_rejections_total", "code").map((code) => ({
      key: code,
      attr: "data-code",
      cells: [code, total(samples, "edgemesh_ingest_rejections_total", { code })],
    })),
    "No message was rejected.",
  );
  const errorCodes = labelValues(samples, "edgemesh_http_requests_total", "code").filter(Boolean);
  const errors = table(
    "pipeline-errors",
    ["Error code", "Answers"],
    errorCodes.map((code) => ({ key: code, attr: "data-code", cells: [code, total(samples, "edgemesh_http_requests_total", { code })] })),
    "No request was answered with an error.",
  );

  return [
    tiles,
    h("h2", {}, "Estimated monthly cost"),
    bill(samples, at),
    h("h2", {}, "Latency by stage"),
    stages,
    h("h2", {}, "Queues"),
    queueTable,
    h(
      "div",
      { class: "columns" },
      h("section", {}, h("h2", {}, "Rejections by code"), rejections),
      h("section", {}, h("h2", {}, "HTTP errors by code"), errors),
    ),
  ];
}

function usd(n: number): string {
  return `$${n.toFixed(2)}`;
}

/** The month's bill at the current rate: what is counted, what is included, what it costs. */
function bill(samples: Sample[], at: number): HTMLElement {
  const estimate = estimateSinceStart(samples, at);
  if (!estimate) return h("p", { class: "empty", id: "pipeline-cost" }, "No billable operation counted yet.");
  const d1 = total(samples, "edgemesh_d1_size_bytes");
  // D1's whole size over the time since counting began: meaningless in the first hour (schema, registry).
  const days = estimate.window_seconds >= 3600 ? daysUntilD1Full((d1 / estimate.window_seconds) * 86_400, d1) : Number.NaN;
  const lines = estimate.bill.lines.filter((l) => l.quantity > 0);
  return h(
    "section",
    { id: "pipeline-cost" },
    h(
      "div",
      { class: "tiles" },
      tile(
        "cost-usage",
        "Usage beyond included quotas",
        estimate.bill.monthly_usd,
        `${usd(estimate.bill.monthly_usd)} / month`,
        `at ${formatNumber(estimate.messages_per_month)} messages a month`,
      ),
      tile("cost-base", "Workers Paid plan", estimate.bill.base_usd, `${usd(estimate.bill.base_usd)} / month`, "the subscription, apart"),
      tile(
        "d1-full",
        "D1 full (10 GB) in",
        days,
        Number.isNaN(days) ? "—" : Number.isFinite(days) ? `${formatNumber(Math.round(days))} days` : "never",
        Number.isNaN(days)
          ? "estimated after the first hour of counting"
          : "at the growth since counting began; past that, move the series to TimescaleDB (docs/series.md)",
      ),
    ),
    table(
      "pipeline-cost-lines",
      ["Line", "A month at this rate", "Included", "Cost"],
      lines.map((l) => ({ key: l.key, attr: "data-line", cells: [l.line, Math.round(l.quantity), l.included, usd(l.usd)] })),
      "Nothing billed yet.",
    ),
    h(
      "p",
      { class: "muted small" },
      `Average rate over the ${estimate.window_seconds < 120 ? `${formatNumber(Math.round(estimate.window_seconds))} s` : `${formatNumber(Math.round(estimate.window_seconds / 60))} minutes`} since the counters started; Cloudflare list prices as of ${PRICES_AS_OF} (docs/cost.md). Workers CPU time and Durable Object duration are not counted.`,
    ),
  );
}

export const pipelineView: View = (root, ctx) => {
  const updated = h("p", { class: "muted", "aria-live": "polite", id: "pipeline-updated" });
  const body = h("div", { id: "pipeline" }, loading("Reading the metrics…"));
  root.append(
    h("div", { class: "page-head" }, h("h1", {}, "Pipeline health"), updated),
    h(
      "p",
      { class: "muted" },
      "Throughput, latency per stage, errors and queues, from GET /metrics (what Prometheus and Grafana read). Refreshes every 10 s.",
    ),
    body,
  );
  if (!ctx.can("admin")) {
    body.replaceChildren(problem(new ApiError({ status: 403, code: "forbidden", message: "The pipeline's metrics need the admin role." })));
    return undefined;
  }
  let previous: { samples: Sample[]; at: number } | undefined;
  let alive = true;
  const refresh = async () => {
    try {
      const text = await ctx.api.text("/metrics", { headers: { accept: "text/plain" } });
      if (!alive) return;
      const samples = parseMetrics(text);
      const at = Date.now();
      body.replaceChildren(...render(samples, previous, at));
      body.dataset.samples = String(samples.length);
      previous = { samples, at };
      setText(updated, `Updated ${new Date(at).toLocaleTimeString()}`);
    } catch (error) {
      if (alive && !isAuthFailure(error)) body.replaceChildren(problem(error, () => void refresh()));
    }
  };
  void refresh();
  const timer = setInterval(() => void refresh(), REFRESH_MS);
  return () => {
    alive = false;
    clearInterval(timer);
  };
};
