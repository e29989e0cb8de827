/**
 * Seed 000's system alerts inside workerd: the monitor (queues/system-monitor.ts) measures the
 * edge and the default rules of migration 0030 raise and clear alerts through the AlertActors,
 * as any rule does: dead letters above a rate, the series store unavailable and its breaker
 * open (an injected outage: D1 cannot be stopped), a LAN agent without its socket.
 */
import { env } from "cloudflare:workers";
import { beforeEach, describe, expect, it } from "vitest";
import { resetBreakers } from "../../platform/series/resilience";
import { checkSystem, EDGE_SOURCE } from "../../queues/system-monitor";
import type { SeriesStore } from "../../shared/series/store";
import { ADMIN, call, createDevice, eventually, json, uniqueId } from "./helpers";

const RULES = {
  deadLetters: "5e5e0000-0000-4000-8000-000000000001",
  breaker: "5e5e0000-0000-4000-8000-000000000002",
  series: "5e5e0000-0000-4000-8000-000000000003",
  agent: "5e5e0000-0000-4000-8000-000000000004",
  backlog: "5e5e0000-0000-4000-8000-000000000005",
};

interface AlertView {
  id: string;
  rule_id: string;
  device: string;
  status: string;
  severity: string;
  value?: number;
}

async function alertOf(rule: string, device: string): Promise<AlertView | undefined> {
  const body = await json<{ alerts: AlertView[] }>(
    await call(`/api/monitoring/alerts?rule_id=${rule}&device=${device}`, { headers: ADMIN }),
  );
  return body.alerts[0];
}

async function statusBecomes(rule: string, device: string, status: string): Promise<AlertView> {
  return eventually(
    async () => {
      const alert = await alertOf(rule, device);
      return alert?.status === status ? alert : undefined;
    },
    10_000,
    `${status} alert of rule ${rule} on ${device}`,
  );
}

/** A store whose every call fails, as D1 would if it were down. */
const down = (): SeriesStore => {
  const fail = () => Promise.reject(new Error("D1_ERROR: the database is unavailable (injected)"));
  return {
    kind: "d1",
    write: fail,
    partials: fail,
    raw: fail,
    latest: fail,
    rollupState: fail,
    rollup: fail,
    prune: fail,
    close: async () => {},
  };
};

/** Minutes apart, and after every earlier call: each check is a new observation. */
let clock = Date.now();
const next = () => {
  clock += 6 * 60_000;
  return clock;
};

beforeEach(() => resetBreakers());

describe("system alerts", () => {
  it("the default rules are ordinary rules an operator sees (and could tune)", async () => {
    const body = await json<{ rules: { id: string; name: string; enabled: boolean }[] }>(
      await call("/api/monitoring/alert_rules", { headers: ADMIN }),
    );
    expect(body.rules.filter((r) => Object.values(RULES).includes(r.id)).map((r) => r.enabled)).toEqual([true, true, true, true, true]);
  });

  it("dead letters above the rate raise an alert, and it clears when they stop", async () => {
    const now = next();
    const failedAt = new Date(now - 60_000).toISOString();
    const insert = env.DB.prepare(
      "INSERT INTO dead_letters (message_id, source, queue, exchange, routing_key, error_code, error_message, attempts, failed_at, envelope) VALUES (?, 'tester', 'metrics.sensors', 'metrics', 'metrics.sensors.x', 'boom', 'boom', 3, ?, '{}')",
    );
    await env.DB.batch(Array.from({ length: 21 }, (_, i) => insert.bind(uniqueId(`dl${i}`), failedAt)));
    const measured = await checkSystem(env, { now });
    expect(measured.edge.dead_letters_5m).toBeGreaterThanOrEqual(21);
    const fired = await statusBecomes(RULES.deadLetters, EDGE_SOURCE, "active");
    expect(fired).toMatchObject({ severity: "warning", value: measured.edge.dead_letters_5m });

    // Five minutes later none are new: cleared.
    expect((await checkSystem(env, { now: next() })).edge.dead_letters_5m).toBe(0);
    await statusBecomes(RULES.deadLetters, EDGE_SOURCE, "cleared");
  });

  it("a queue whose consumer took nothing for 5 minutes while messages wait is a backlog alert, cleared once it catches up", async () => {
    const now = next();
    const queue = uniqueId("stuck.queue");
    const tenMinutesAgo = new Date(now - 10 * 60_000).toISOString();
    // The twins sent 3 messages to the queue; its consumer delivered 1, ten minutes ago, and nothing since.
    await env.DB.prepare("INSERT INTO metric_counters (name, labels, value, updated_at) VALUES ('edgemesh_routed_messages_total', ?, 3, ?)")
      .bind(`queue="${queue}"`, tenMinutesAgo)
      .run();
    const stats = env.DB.prepare(
      "INSERT INTO queue_stats (queue, delivered, retried, dead_lettered, updated_at) VALUES (?1, ?2, 0, ?3, ?4) " +
        "ON CONFLICT (queue) DO UPDATE SET delivered = ?2, dead_lettered = ?3, updated_at = ?4",
    );
    await stats.bind(queue, 1, 0, tenMinutesAgo).run();
    const measured = await checkSystem(env, { now });
    expect(measured.edge.queue_backlog_age_s).toBeGreaterThanOrEqual(600);
    await statusBecomes(RULES.backlog, EDGE_SOURCE, "active");
    // It catches up: two more handled (one delivered, one dead-lettered).
    await stats.bind(queue, 2, 1, new Date(now - 60_000).toISOString()).run();
    expect((await checkSystem(env, { now: next() })).edge.queue_backlog_age_s).toBe(0);
    await statusBecomes(RULES.backlog, EDGE_SOURCE, "cleared");
  });

  it("the series store unavailable, then its breaker open, raise critical alerts; both clear once it answers", async () => {
    const first = await checkSystem(env, { now: next(), open: down });
    expect(first.edge.series_available).toBe(0);
    await statusBecomes(RULES.series, EDGE_SOURCE, "active");
    // Probes keep failing: the breaker opens.
    const second = await checkSystem(env, { now: next(), open: down });
    expect(second.edge.series_breaker_open).toBe(1);
    expect(await statusBecomes(RULES.breaker, EDGE_SOURCE, "active")).toMatchObject({ severity: "critical" });

    resetBreakers();
    const back = await checkSystem(env, { now: next() });
    expect(back.edge).toMatchObject({ series_available: 1, series_breaker_open: 0 });
    await statusBecomes(RULES.series, EDGE_SOURCE, "cleared");
    await statusBecomes(RULES.breaker, EDGE_SOURCE, "cleared");
  });

  it("a LAN agent without its wake-up socket is offline; the alert clears when it connects", async () => {
    const agent = await createDevice({ id: uniqueId("agent"), kind: "service", type: "agent" });
    const measured = await checkSystem(env, { now: next() });
    expect(measured.agents[agent.device.id]).toEqual({ agent_online: 0 });
    await statusBecomes(RULES.agent, agent.device.id, "active");

    const res = await call("/v1/agent/stream", { headers: { authorization: `Bearer ${agent.token}`, upgrade: "websocket" } });
    expect(res.status).toBe(101);
    const ws = res.webSocket as WebSocket;
    ws.accept();
    try {
      expect((await checkSystem(env, { now: next() })).agents[agent.device.id]).toEqual({ agent_online: 1 });
      await statusBecomes(RULES.agent, agent.device.id, "cleared");
    } finally {
      ws.close();
    }
  });
});
