/**
 * The AlertActor's storage, lean (issue 13): DO SQLite rows written per observation counted at
 * the cursor (`rowsWritten`), the state and the dedupe on message id after a restart (a fresh
 * instance over the same storage, as after an eviction), and no double firing.
 */
import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { AlertActor, type Observation } from "../../durable-objects/alert-actor";
import { ActorStore, CHECKPOINT } from "../../durable-objects/alert-actor/store";
import { alertStub } from "../../durable-objects/stubs";
import type { StoredAlert } from "../../shared/repos/alerts";
import type { AlertRule } from "../../shared/schemas/alerts";
import { ADMIN, call, countRowsOf, json, uniqueId } from "./helpers";

const H = { ...ADMIN, "content-type": "application/json" };

async function createRule(body: Record<string, unknown>): Promise<AlertRule> {
  const res = await call("/api/monitoring/alert_rules", { method: "POST", headers: H, body: JSON.stringify(body) });
  expect(res.status, await res.clone().text()).toBe(201);
  return (await json<{ rule: AlertRule }>(res)).rule;
}

async function alertsOf(device: string): Promise<StoredAlert[]> {
  return (await json<{ alerts: StoredAlert[] }>(await call(`/api/monitoring/alerts?device=${device}`, { headers: ADMIN }))).alerts;
}

/** Counts the rows every statement of the actor writes from now on. */
const countRows = (device: string) => countRowsOf(env.ALERT_ACTOR.getByName(device));

/** Two rules as bench/cost configures a temperature sensor: a threshold and an absence. */
async function twoRules(device: string): Promise<AlertRule[]> {
  return [
    await createRule({
      name: "hot",
      device,
      metric: "temperature",
      condition: { type: "threshold", op: "gt", value: 30 },
      severity: "warning",
    }),
    await createRule({ name: "silent", device, metric: "temperature", condition: { type: "absence", seconds: 600 }, severity: "info" }),
  ];
}

let seq = 0;
function observations(rules: AlertRule[], n: number, start: number, temperature: number): Observation[] {
  return Array.from({ length: n }, (_, i) => ({
    id: `la-${Date.now()}-${++seq}`,
    routing_key: "metrics.sensors.temperature.lab",
    at: start + i * 10,
    readings: { temperature },
    rules: rules.map((r) => r.id),
  }));
}

describe("AlertActor rows written", () => {
  for (const perCall of [25, 1]) {
    it(`writes ~1 DO row per evaluation call, not per reading (100 temperature readings, ${perCall} per call, 2 rules)`, async () => {
      const device = uniqueId("lar");
      const rules = await twoRules(device);
      const actor = alertStub(env, device);
      // The first call creates the rules' states: counted from the second on, as a running actor.
      await actor.evaluate(device, rules, observations(rules, 1, Date.now() - 200_000, 20));
      const rows = await countRows(device);
      const start = Date.now() - 100_000;
      for (let i = 0; i < 100; i += perCall) {
        const answer = await actor.evaluate(device, rules, observations(rules, perCall, start + i * 10, 20));
        expect(answer.evaluated).toBe(perCall);
      }
      const written = rows();
      console.warn(
        `MEASURE alert actor, 100 readings in calls of ${perCall}, 2 rules: do_rows_written=${written} (${written / 100}/reading)`,
      );
      // One journal row per call (and a checkpoint's few rows every CHECKPOINT calls); the old
      // actor wrote a `seen` row and two state rows per reading: 4-6 a reading.
      expect(written).toBeLessThanOrEqual(100 / perCall + 3);
    });
  }
});

describe("AlertActor across a restart", () => {
  it("keeps its states and the seen ids, fires once and clears once", async () => {
    const device = uniqueId("lax");
    const rules = await twoRules(device);
    const [hot, silent] = rules as [AlertRule, AlertRule];
    const stub = env.ALERT_ACTOR.getByName(device);
    const start = Date.now() - 60_000;
    const firing = observations(rules, 3, start, 40);
    expect(await alertStub(env, device).evaluate(device, rules, firing)).toMatchObject({ evaluated: 3, changes: 1 });
    const warm = observations(rules, 5, start + 1_000, 41);
    await alertStub(env, device).evaluate(device, rules, warm);

    await runInDurableObject(stub, async (_instance, state) => {
      // A fresh instance over the same storage, as after an eviction: nothing in memory.
      const restored = new ActorStore(state.storage.sql).states();
      expect(restored.get(hot.id)).toMatchObject({ phase: "active", last_value: 41, last_at: warm.at(-1)?.at });
      expect(restored.get(silent.id)?.last_at).toBe(warm.at(-1)?.at);
      const fresh = new AlertActor(state, env);
      // A redelivered batch: every id was seen, nothing is evaluated, nothing fires again.
      expect(await fresh.evaluate(device, rules, [...firing, ...warm])).toEqual({ evaluated: 0, changes: 0 });
      // A new reading, still hot: no second alert.
      expect(await fresh.evaluate(device, rules, observations(rules, 1, start + 2_000, 42))).toEqual({ evaluated: 1, changes: 0 });
    });
    await runInDurableObject(stub, async (_instance, state) => {
      const fresh = new AlertActor(state, env);
      expect((await fresh.states()).find((s) => s.rule_id === hot.id)?.phase).toBe("active");
      const cool = observations(rules, 1, start + 3_000, 20);
      expect(await fresh.evaluate(device, rules, cool)).toEqual({ evaluated: 1, changes: 1 });
      expect(await fresh.evaluate(device, rules, cool)).toEqual({ evaluated: 0, changes: 0 });
    });
    const alerts = await alertsOf(device);
    expect(alerts).toHaveLength(1);
    expect(alerts[0]).toMatchObject({ rule_id: hot.id, status: "cleared", notifications: 1 });
  });

  it("a checkpoint writes the moved states, and the journal past it restores the rest", async () => {
    const device = uniqueId("lac");
    const rules = await twoRules(device);
    const actor = alertStub(env, device);
    const start = Date.now() - 500_000;
    let last = 0;
    for (let i = 0; i < CHECKPOINT + 5; i++) {
      const obs = observations(rules, 1, start + i * 100, 20);
      last = obs[0]?.at ?? 0;
      await actor.evaluate(device, rules, obs);
    }
    await runInDurableObject(env.ALERT_ACTOR.getByName(device), async (_instance, state) => {
      const row = state.storage.sql.exec<{ last_at: number }>("SELECT last_at FROM state WHERE rule_id = ?", rules[0]?.id).one();
      // Written at the checkpoint (call CHECKPOINT), not at every reading since.
      expect(row.last_at).toBeLessThan(last);
      expect(row.last_at).toBeGreaterThan(start);
      expect(new ActorStore(state.storage.sql).states().get(rules[0]?.id ?? "")?.last_at).toBe(last);
    });
  });
});
