/**
 * GET /metrics: Prometheus text format (0.0.4) for Prometheus, Grafana Agent or the dashboard's
 * pipeline page. Counters and histograms come from `metric_counters` (shared/metrics.ts); gauges
 * are read at scrape time: devices by availability, dead letters by queue and status, consumer
 * counts per queue, an estimated queue backlog, D1 size, open live sockets. Takes the
 * METRICS_TOKEN secret (a scraper's credential that can do nothing else) or an admin token.
 */
import { Hono } from "hono";
import { hubName, hubStub } from "../../durable-objects/stubs";
import { readQueueStats } from "../../queues/history";
import { QUEUES } from "../../shared/bus/topology";
import { bearerToken } from "../../shared/credentials";
import { bucketsOf, FAMILIES, type Labels, labelText, parseLabelText } from "../../shared/metrics";
import { ApiError } from "../errors";
import { type AppEnv, authenticate, sameSecret } from "../middleware/auth";

interface Series {
  labels: Labels | string;
  value: number;
}

/** One metric family as exposed: its # HELP and # TYPE, then its sample lines. */
interface Exposed {
  name: string;
  type: "gauge" | "counter" | "histogram";
  help: string;
  lines: string[];
}

async function isMetricsToken(env: Env, token: string | undefined): Promise<boolean> {
  return Boolean(env.METRICS_TOKEN && token) && sameSecret(token as string, env.METRICS_TOKEN);
}

function sample(name: string, labels: Labels | string, value: number): string {
  const text = typeof labels === "string" ? labels : labelText(labels);
  return `${name}${text ? `{${text}}` : ""} ${Number.isNaN(value) ? "NaN" : value}`;
}

function family(name: string, type: Exposed["type"], help: string, series: Series[]): Exposed {
  return { name, type, help, lines: series.map((s) => sample(name, s.labels, s.value)) };
}

function render(families: Exposed[]): string {
  return `${families.flatMap((f) => [`# HELP ${f.name} ${f.help}`, `# TYPE ${f.name} ${f.type}`, ...f.lines]).join("\n")}\n`;
}

/** The stored counters and histograms, each histogram's label sets kept together (buckets, _sum, _count). */
async function storedFamilies(env: Env): Promise<Exposed[]> {
  const { results } = await env.DB.prepare("SELECT name, labels, value FROM metric_counters ORDER BY name, labels").all<{
    name: string;
    labels: string;
    value: number;
  }>();
  const out: Exposed[] = [];
  for (const [name, def] of Object.entries(FAMILIES)) {
    if (def.type === "counter") {
      const rows = results.filter((r) => r.name === name);
      if (rows.length > 0) out.push(family(name, "counter", def.help, rows));
      continue;
    }
    const rows = results.filter((r) => [`${name}_bucket`, `${name}_sum`, `${name}_count`].includes(r.name));
    if (rows.length === 0) continue;
    // Stored per bucket (shared/metrics.ts); exposed cumulative, every bound, +Inf = _count.
    const groups = new Map<string, { labels: Record<string, string>; perBucket: Map<string, number>; sum: number; count: number }>();
    for (const r of rows) {
      const { le, ...labels } = parseLabelText(r.labels);
      const key = labelText(labels);
      const group = groups.get(key) ?? { labels, perBucket: new Map(), sum: 0, count: 0 };
      groups.set(key, group);
      if (r.name.endsWith("_bucket")) group.perBucket.set(le ?? "+Inf", (group.perBucket.get(le ?? "+Inf") ?? 0) + r.value);
      else if (r.name.endsWith("_sum")) group.sum = r.value;
      else group.count = r.value;
    }
    const lines = [...groups.values()].flatMap((g) => {
      let cumulative = 0;
      const buckets = [...bucketsOf(name).map(String), "+Inf"].map((le) => {
        cumulative += g.perBucket.get(le) ?? 0;
        return sample(`${name}_bucket`, { ...g.labels, le }, cumulative);
      });
      return [...buckets, sample(`${name}_sum`, g.labels, g.sum), sample(`${name}_count`, g.labels, g.count)];
    });
    out.push({ name, type: "histogram", help: def.help, lines });
  }
  return out;
}

async function scrapeGauges(env: Env): Promise<Exposed[]> {
  const [devices, deadLetters, stats, size, routed, rooms, since] = await Promise.all([
    env.DB.prepare("SELECT kind, availability, COUNT(*) AS n FROM devices GROUP BY kind, availability").all<{
      kind: string;
      availability: string;
      n: number;
    }>(),
    env.DB.prepare("SELECT queue, status, COUNT(*) AS n FROM dead_letters GROUP BY queue, status").all<{
      queue: string;
      status: string;
      n: number;
    }>(),
    readQueueStats(env),
    env.DB.prepare("SELECT 1").run(),
    env.DB.prepare("SELECT labels, value FROM metric_counters WHERE name = 'edgemesh_routed_messages_total'").all<{
      labels: string;
      value: number;
    }>(),
    env.DB.prepare("SELECT id FROM rooms UNION SELECT DISTINCT room FROM devices WHERE room IS NOT NULL").all<{ id: string }>(),
    env.DB.prepare(
      "SELECT MIN(COALESCE(created_at, updated_at)) AS since FROM metric_counters WHERE name = 'edgemesh_billable_ops_total'",
    ).first<{ since: string | null }>(),
  ]);
  const sinceSeconds = since?.since ? Date.parse(since.since) / 1000 : Number.NaN;
  const routedByQueue = new Map(routed.results.map((r) => [/queue="([^"]*)"/.exec(r.labels)?.[1] ?? "", r.value]));
  const hubs = ["system", ...[null, ...rooms.results.map((r) => r.id)].map(hubName)];
  const sockets = await Promise.all(
    hubs.map(async (hub) => {
      try {
        return { hub, n: (await hubStub(env, hub).stats()).sockets };
      } catch {
        return { hub, n: Number.NaN };
      }
    }),
  );
  return [
    family(
      "edgemesh_devices",
      "gauge",
      "Registered devices and services by kind and availability (the registry's copy)",
      devices.results.map((r) => ({ labels: { kind: r.kind, availability: r.availability }, value: r.n })),
    ),
    family(
      "edgemesh_dead_letters",
      "gauge",
      "Dead letters kept, by queue and status (pending, replayed)",
      deadLetters.results.map((r) => ({ labels: { queue: r.queue, status: r.status }, value: r.n })),
    ),
    family(
      "edgemesh_queue_messages_total",
      "counter",
      "Messages per queue by consumer outcome (the topology's counts, kept by the consumers)",
      QUEUES.flatMap((q) => {
        const c = stats.get(q.name) ?? { delivered: 0, retried: 0, dead_lettered: 0 };
        return Object.entries(c).map(([outcome, value]) => ({ labels: { queue: q.name, outcome }, value }));
      }),
    ),
    family(
      "edgemesh_queue_backlog_estimate",
      "gauge",
      "Routed at ingest minus delivered and dead-lettered: an estimate (Queues expose no backlog to a Worker)",
      QUEUES.filter((q) => routedByQueue.has(q.name)).map((q) => {
        const c = stats.get(q.name) ?? { delivered: 0, retried: 0, dead_lettered: 0 };
        return { labels: { queue: q.name }, value: Math.max(0, (routedByQueue.get(q.name) ?? 0) - c.delivered - c.dead_lettered) };
      }),
    ),
    family("edgemesh_d1_size_bytes", "gauge", "Size of the D1 database (registry, history, metrics, and the D1 series store)", [
      { labels: {}, value: size.meta.size_after ?? 0 },
    ]),
    family(
      "edgemesh_billable_since_timestamp_seconds",
      "gauge",
      "When the billable-operation counters started (Unix seconds); total / (now - this) is their average rate",
      Number.isNaN(sinceSeconds) ? [] : [{ labels: {}, value: sinceSeconds }],
    ),
    family(
      "edgemesh_live_connections",
      "gauge",
      "Open dashboard WebSockets per live hub (NaN when a hub did not answer)",
      sockets.filter((s) => s.n !== 0).map((s) => ({ labels: { hub: s.hub }, value: s.n })),
    ),
  ];
}

export const metricsRoutes = new Hono<AppEnv>().get("/", async (c) => {
  const token = bearerToken(c.req.header("authorization"));
  if (!(await isMetricsToken(c.env, token))) {
    const principal = await authenticate(c);
    if (principal.role !== "admin") throw new ApiError("forbidden", "metrics need the METRICS_TOKEN or the admin role");
  }
  const [stored, gauges] = await Promise.all([storedFamilies(c.env), scrapeGauges(c.env)]);
  return c.body(render([...stored, ...gauges]), 200, {
    "content-type": "text/plain; version=0.0.4; charset=utf-8",
    "cache-control": "no-store",
  });
});
