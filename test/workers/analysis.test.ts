/**
 * The default analysis on the stream (issue 16 item 6, docs/ai.md): a device of a type never seen
 * before gets a baseline per metric with no rule; an anomaly raises an alert with its evidence
 * and publishes a result on the `ai` exchange; a disabled anomaly rule silences a metric, an
 * enabled one tunes it; the baselines survive the actor's restart.
 */
import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { evaluateAlerts } from "../../queues/alert-rules";
import { ANALYSIS_OPTIONS, DEFAULT_ANALYSIS_RULE_ID, PERSIST_MS } from "../../shared/analysis";
import { robustScore } from "../../shared/anomaly";
import { gaussian, seededRandom } from "../../shared/random";
import type { StoredAlert } from "../../shared/repos/alerts";
import type { AlertRule } from "../../shared/schemas/alerts";
import type { EnvelopeOf } from "../../shared/schemas/message";
import { ADMIN, call, createDevice, eventually, json, post, uniqueId } from "./helpers";

const H = { ...ADMIN, "content-type": "application/json" };

async function alertsOf(device: string): Promise<StoredAlert[]> {
  const res = await call(`/api/monitoring/alerts?device=${device}`, { headers: ADMIN });
  expect(res.status).toBe(200);
  return (await json<{ alerts: StoredAlert[] }>(res)).alerts;
}

async function createRule(body: Record<string, unknown>): Promise<AlertRule> {
  const res = await call("/api/monitoring/alert_rules", { method: "POST", headers: H, body: JSON.stringify(body) });
  expect(res.status, await res.clone().text()).toBe(201);
  return (await json<{ rule: AlertRule }>(res)).rule;
}

/** A steady series with normal noise σ = 0.1 (seeded, the same each run): the baseline's normal. */
const NOISE = (() => {
  const random = seededRandom(16);
  return Array.from({ length: 100 }, () => 0.1 * gaussian(random));
})();
const normal = (i: number, base: number) => base + (NOISE[i % NOISE.length] as number);

let seq = 0;
/** A reading as the sensor consumer hands it to the rules: `metrics.sensors.<type>.<room>`, edge time `at`. */
function reading(device: string, at: number, payload: Record<string, number>): EnvelopeOf<"metric"> {
  seq++;
  const id = `an-${device}-${seq}`;
  const time = new Date(at).toISOString();
  return {
    id,
    correlation_id: id,
    source: device,
    type: "metric",
    exchange: "metrics",
    routing_key: "metrics.sensors.soil-probe.garden",
    timestamp: time,
    received_at: time,
    payload,
    metadata: {},
    schema_version: 1,
  };
}

/** `n` normal readings of each metric a second apart, from `t0`. */
function warmUp(device: string, t0: number, n: number, bases: Record<string, number>): EnvelopeOf<"metric">[] {
  return Array.from({ length: n }, (_, i) =>
    reading(device, t0 + i * 1000, Object.fromEntries(Object.entries(bases).map(([m, b]) => [m, normal(i, b)]))),
  );
}

describe("the default analysis on the stream", () => {
  it("a device of a new type: normal readings, then an anomaly → an alert with evidence and a result on the ai exchange; back to normal clears it", {
    timeout: 90_000,
  }, async () => {
    const { device, token } = await createDevice({ id: uniqueId("soil"), type: "soil-probe", room: "garden" });
    // Warm-up: 22 normal readings (the default needs 20 before its first verdict).
    for (let i = 0; i < 22; i++) expect((await post("/v1/telemetry", token, { payload: { moisture: normal(i, 40) } })).status).toBe(202);
    // No verdict on normal readings.
    await eventually(
      async () => {
        const body = await json<{ series: { points: unknown[] }[] }>(
          await call(`/v1/series?metric=moisture&device=${device.id}&bucket=raw`, { headers: ADMIN }),
        );
        return (body.series[0]?.points.length ?? 0) >= 22 ? true : undefined;
      },
      20_000,
      "the warm-up readings stored",
    );
    expect(await alertsOf(device.id)).toEqual([]);

    expect((await post("/v1/telemetry", token, { payload: { moisture: 75 } })).status).toBe(202);
    const [alert] = await eventually(
      async () => {
        const list = await alertsOf(device.id);
        return list.length ? list : undefined;
      },
      20_000,
      "the anomaly alert",
    );
    expect(alert).toMatchObject({ rule_id: DEFAULT_ANALYSIS_RULE_ID, status: "active", metric: "moisture", value: 75 });
    expect(alert?.evidence).toMatchObject({ metric: "moisture", value: 75, threshold: 5, window: 22 });
    expect(alert?.evidence?.level).toBeCloseTo(40, 0);
    expect(alert?.evidence?.sigma).toBeGreaterThan(0);
    expect(alert?.evidence?.score).toBeGreaterThanOrEqual(5);
    expect(alert?.title).toContain("moisture anomalous");

    // The analysis result, as the `ai` side's queue got it.
    const result = await eventually(
      async () => {
        const body = await json<{
          messages: { type: string; routing_key: string; source: string; steps: { queue: string; status: string }[] }[];
        }>(await call(`/v1/messages?correlation_id=${alert?.id}&type=inference_result`, { headers: ADMIN }));
        return body.messages.find((m) => m.steps.some((s) => s.queue === "ai.inference.results" && s.status === "delivered"));
      },
      20_000,
      "the analysis result on ai.inference.results",
    );
    expect(result).toMatchObject({ routing_key: `ai.result.edgemesh-baseline.${device.id}.moisture`, source: "ai-analysis" });

    // Back to normal: the alert clears.
    expect((await post("/v1/telemetry", token, { payload: { moisture: 40.1 } })).status).toBe(202);
    const cleared = await eventually(
      async () => (await alertsOf(device.id)).find((a) => a.id === alert?.id && a.status === "cleared"),
      20_000,
      "the alert cleared",
    );
    expect(cleared.cleared_at).toBeDefined();
  });

  it("a disabled anomaly rule for a device's metric silences the default there; its other metrics stay analysed", async () => {
    const device = uniqueId("quiet");
    await createRule({
      name: "no analysis of moisture",
      device,
      metric: "moisture",
      condition: { type: "anomaly" },
      severity: "info",
      enabled: false,
    });
    const t0 = Date.now() - 300_000;
    await evaluateAlerts(env, warmUp(device, t0, 25, { moisture: 40, temperature: 20 }));
    await evaluateAlerts(env, [reading(device, t0 + 30_000, { moisture: 90, temperature: 35 })]);
    const alerts = await alertsOf(device);
    expect(alerts.map((a) => a.metric)).toEqual(["temperature"]);
    expect(alerts[0]?.rule_id).toBe(DEFAULT_ANALYSIS_RULE_ID);
  });

  it("an anomaly rule for a metric tunes it: its threshold decides, not the default's", async () => {
    const t0 = Date.now() - 300_000;
    // A deviation the default (score ≥ 5) lets pass but a rule with score ≥ 2 does not.
    const history = Array.from({ length: 25 }, (_, i) => normal(i, 40));
    const value = 40.35;
    const byDefault = robustScore(history.slice(-60), value, ANALYSIS_OPTIONS).score;
    const byRule = robustScore(history.slice(-60), value).score;
    expect(byDefault).toBeLessThan(5);
    expect(byRule).toBeGreaterThanOrEqual(2);

    const plain = uniqueId("plain");
    await evaluateAlerts(env, warmUp(plain, t0, 25, { moisture: 40 }));
    await evaluateAlerts(env, [reading(plain, t0 + 30_000, { moisture: value })]);
    expect(await alertsOf(plain)).toEqual([]);

    const tuned = uniqueId("tuned");
    const rule = await createRule({
      name: "touchy moisture",
      device: tuned,
      metric: "moisture",
      condition: { type: "anomaly", score: 2, window: 30, min_samples: 20 },
      severity: "warning",
    });
    await evaluateAlerts(env, warmUp(tuned, t0, 25, { moisture: 40 }));
    await evaluateAlerts(env, [reading(tuned, t0 + 30_000, { moisture: value })]);
    const alerts = await alertsOf(tuned);
    expect(alerts.map((a) => [a.rule_id, a.metric, a.status])).toEqual([[rule.id, "moisture", "active"]]);
  });

  it("a slow sensor whose actor is evicted between readings keeps every reading; a fast one writes its row once per PERSIST_MS", async () => {
    const slow = uniqueId("slow");
    const t0 = Date.now() - 3_600_000;
    const rowOf = (device: string) =>
      runInDurableObject(env.ALERT_ACTOR.getByName(device), async (_i, state) =>
        JSON.parse(state.storage.sql.exec<{ body: string }>("SELECT body FROM baselines WHERE metric = 'moisture'").one().body),
      ) as Promise<{ values: number[] }>;
    for (let i = 0; i < 6; i++) {
      await evaluateAlerts(env, [reading(slow, t0 + i * 300_000, { moisture: normal(i, 40) })]);
      await runInDurableObject(env.ALERT_ACTOR.getByName(slow), async (_i, state) => {
        state.abort("test: evicted between readings");
      }).catch(() => undefined);
    }
    expect((await rowOf(slow)).values).toHaveLength(6);

    // A fast device, one reading per call: its first reading is written, the next ones wait for PERSIST_MS.
    const fast = uniqueId("fast");
    for (let i = 0; i < 10; i++) await evaluateAlerts(env, [reading(fast, t0 + i * 1000, { moisture: normal(i, 40) })]);
    // The stored row is the one written with the first reading; the other nine are in memory only.
    expect((await rowOf(fast)).values).toHaveLength(1);
    expect(PERSIST_MS).toBeGreaterThanOrEqual(10_000);
  });

  it("the baselines survive the actor's restart (no re-warming); a redelivered batch changes nothing", async () => {
    const device = uniqueId("restart");
    const t0 = Date.now() - 300_000;
    const batch = warmUp(device, t0, 24, { moisture: 40 });
    await evaluateAlerts(env, batch);
    await runInDurableObject(env.ALERT_ACTOR.getByName(device), async (_i, state) => {
      state.abort("test: restart");
    }).catch(() => undefined);
    // The same batch again (a redelivery): skipped, so the window does not take the readings twice.
    await evaluateAlerts(env, batch);
    const stored = await runInDurableObject(env.ALERT_ACTOR.getByName(device), async (_i, state) =>
      JSON.parse(state.storage.sql.exec<{ body: string }>("SELECT body FROM baselines WHERE metric = 'moisture'").one().body),
    );
    expect((stored as { values: number[] }).values).toHaveLength(24);
    const spike = reading(device, t0 + 30_000, { moisture: 70 });
    await evaluateAlerts(env, [spike]);
    const [alert] = await alertsOf(device);
    expect(alert).toMatchObject({ status: "active", metric: "moisture", evidence: { window: 24, reading_id: spike.id } });

    // Restarted again: an operator acknowledges it like any other alert (the actor finds it in its row).
    await runInDurableObject(env.ALERT_ACTOR.getByName(device), async (_i, state) => {
      state.abort("test: restart");
    }).catch(() => undefined);
    const ack = await call(`/api/monitoring/alerts/${alert?.id}/acknowledge`, { method: "POST", headers: H, body: "{}" });
    expect(ack.status, await ack.clone().text()).toBe(200);
    expect((await alertsOf(device))[0]?.status).toBe("acknowledged");
  });

  it("a device's own default (an anomaly rule without a metric) sets its alerts; disabling it clears them, and a rule taking a metric over clears that one", async () => {
    const device = uniqueId("own");
    const own = await createRule({ name: "pump analysis", device, condition: { type: "anomaly", score: 6 }, severity: "critical" });
    const t0 = Date.now() - 300_000;
    await evaluateAlerts(env, warmUp(device, t0, 25, { flow: 30, pressure: 2 }));
    await evaluateAlerts(env, [reading(device, t0 + 30_000, { flow: 60, pressure: 9 })]);
    const fired = await alertsOf(device);
    expect(fired.map((a) => [a.rule_id, a.metric, a.severity, a.status]).sort()).toEqual([
      [own.id, "flow", "critical", "active"],
      [own.id, "pressure", "critical", "active"],
    ]);
    // A rule for `pressure` takes it over: its open default alert clears with the next batch.
    await createRule({ name: "pressure by rule", device, metric: "pressure", condition: { type: "anomaly", score: 50 }, severity: "info" });
    await evaluateAlerts(env, [reading(device, t0 + 31_000, { flow: 60, pressure: 9 })]);
    expect((await alertsOf(device)).filter((a) => a.status === "active").map((a) => a.metric)).toEqual(["flow"]);
    // Disabling the device's default clears the rest at once (the API rechecks the device).
    const res = await call(`/api/monitoring/alert_rules/${own.id}`, {
      method: "PATCH",
      headers: H,
      body: JSON.stringify({ enabled: false }),
    });
    expect(res.status).toBe(200);
    await eventually(
      async () => ((await alertsOf(device)).every((a) => a.status === "cleared") ? true : undefined),
      10_000,
      "the default's alerts cleared",
    );
  });

  it("the default is an ordinary rule: listed, and an anomaly rule without a metric is accepted while a bad one names its field", async () => {
    const rules = await json<{ rules: { id: string; enabled: boolean; condition: { type: string; score: number } }[] }>(
      await call("/api/monitoring/alert_rules", { headers: ADMIN }),
    );
    expect(rules.rules.find((r) => r.id === DEFAULT_ANALYSIS_RULE_ID)).toMatchObject({
      enabled: true,
      condition: { type: "anomaly", score: 5 },
    });
    const bad = await call("/api/monitoring/alert_rules", {
      method: "POST",
      headers: H,
      body: JSON.stringify({ name: "x", device: "a-device", condition: { type: "anomaly", window: 5 }, severity: "info" }),
    });
    expect(bad.status).toBe(400);
    const body = await json<{ error: { code: string; issues: { path: string }[] } }>(bad);
    expect(body.error.issues.map((i) => i.path)).toEqual(["condition.window"]);
  });
});
