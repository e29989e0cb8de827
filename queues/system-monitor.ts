/**
 * Seed 000's system alerts (docs/alerts.md): every minute the edge measures itself — dead letters
 * of the last 5 minutes, the age of the oldest message no consumer has taken yet, the series
 * store's circuit breaker and a probe of the store, each LAN
 * agent's wake-up socket — and hands the figures to the alert rules as `metric` messages of the
 * edge (`metrics.system.edgemesh.health`) and of each agent (`metrics.system.agent.<id>`). The
 * default rules (migration 0030) raise, escalate and clear alerts through the same AlertActors,
 * notifier and #/alerts screen as any rule. The figures go to the rules directly, not through the
 * metrics queue: that path stores in the series store first, the very store whose outage must
 * raise an alert.
 */
import { CircuitState } from "cockatiel";
import { agentLinkStub } from "../durable-objects/stubs";
import { breakerFor, type CallOptions, readWithRetries, SeriesUnavailable } from "../platform/series/resilience";
import type { Envelope } from "../shared/schemas/message";
import { evaluateAlerts } from "./alert-rules";

/** The edge's own principal in these messages: its alerts are the device `edgemesh`'s. */
export const EDGE_SOURCE = "edgemesh";
export const DEAD_LETTER_WINDOW_MS = 5 * 60_000;
/** How far back the backlog is looked for: older messages are the dead letters' and the archive's business. */
export const BACKLOG_WINDOW_MS = 60 * 60_000;
/** The monitor's cron in wrangler.toml (the hourly one is housekeeping). */
export const SYSTEM_CRON = "* * * * *";

export interface SystemReadings {
  edge: { dead_letters_5m: number; series_available: number; series_breaker_open: number; queue_backlog_age_s: number };
  agents: Record<string, { agent_online: number }>;
}

export interface MonitorOptions {
  now?: number;
  /** How the series store is opened for the probe (tests inject an outage). */
  open?: CallOptions["open"];
}

export async function systemReadings(env: Env, options: MonitorOptions = {}): Promise<SystemReadings> {
  const now = options.now ?? Date.now();
  const since = new Date(now - DEAD_LETTER_WINDOW_MS).toISOString();
  const [deadLetters, backlog, agents] = await Promise.all([
    env.DB.prepare("SELECT COUNT(*) AS n FROM dead_letters WHERE failed_at > ?").bind(since).first<{ n: number }>(),
    // The backlog: per queue, the messages the twins sent (their routing counter) minus those its
    // consumer delivered or dead-lettered; while that is above 0, its age is the time since the
    // consumer last made progress (or since the queue first got messages, when it never has).
    // No history row per accepted message exists to ask (issue 13), and Queues tells Workers no backlog.
    env.DB.prepare(
      `SELECT MIN(COALESCE(s.updated_at, r.first_at)) AS oldest FROM (
         SELECT substr(labels, instr(labels, 'queue="') + 7, instr(substr(labels, instr(labels, 'queue="') + 7), '"') - 1) AS queue,
                SUM(value) AS routed, MIN(updated_at) AS first_at
         FROM metric_counters WHERE name = 'edgemesh_routed_messages_total' GROUP BY 1) r
       LEFT JOIN queue_stats s ON s.queue = r.queue
       WHERE r.routed - COALESCE(s.delivered, 0) - COALESCE(s.dead_lettered, 0) > 0 AND COALESCE(s.updated_at, r.first_at) <= ?1`,
    )
      .bind(new Date(now).toISOString())
      .first<{ oldest: string | null }>(),
    env.DB.prepare("SELECT id FROM devices WHERE kind = 'service' AND type = 'agent' ORDER BY id LIMIT 200").all<{ id: string }>(),
  ]);
  let available = 1;
  let breakerOpen = 0;
  try {
    await readWithRetries(env, (store) => store.latest({ metrics: ["series_probe"] }), { ...(options.open && { open: options.open }) });
  } catch (error) {
    if (!(error instanceof SeriesUnavailable)) throw error;
    available = 0;
    if (error.breakerOpen) breakerOpen = 1;
  }
  if (breakerFor(env).policy.state === CircuitState.Open) breakerOpen = 1;
  const online = await Promise.all(agents.results.map(async (a) => (await agentLinkStub(env, a.id).sockets()) > 0));
  return {
    edge: {
      dead_letters_5m: deadLetters?.n ?? 0,
      series_available: available,
      series_breaker_open: breakerOpen,
      queue_backlog_age_s: backlog?.oldest ? Math.max(0, Math.round((now - Date.parse(backlog.oldest)) / 1000)) : 0,
    },
    agents: Object.fromEntries(agents.results.map((a, i) => [a.id, { agent_online: online[i] ? 1 : 0 }])),
  };
}

function message(source: string, routingKey: string, payload: Record<string, number>, now: number): Envelope {
  const at = new Date(now).toISOString();
  // One id per source and minute: a second run in the same minute is the same observation.
  const id = `system-${Math.floor(now / 60_000)}`;
  return {
    id,
    correlation_id: id,
    source,
    type: "metric",
    exchange: "metrics",
    routing_key: routingKey,
    timestamp: at,
    received_at: at,
    payload,
    metadata: { monitor: "system" },
    schema_version: 1,
  } as Envelope;
}

/** Measures and evaluates the system rules; returns what it measured. */
export async function checkSystem(env: Env, options: MonitorOptions = {}): Promise<SystemReadings> {
  const now = options.now ?? Date.now();
  const readings = await systemReadings(env, { ...options, now });
  const messages = [
    message(EDGE_SOURCE, `metrics.system.${EDGE_SOURCE}.health`, readings.edge, now),
    ...Object.entries(readings.agents).map(([agent, values]) => message(agent, `metrics.system.agent.${agent}`, values, now)),
  ];
  await evaluateAlerts(env, messages, { analysis: false });
  return readings;
}
