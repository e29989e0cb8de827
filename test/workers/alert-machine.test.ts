/** The alert rule state machine on its own (durable-objects/alert-actor/rules.ts): no storage, no clock but the one passed in. */
import { describe, expect, it } from "vitest";
import * as machine from "../../durable-objects/alert-actor/rules";
import { type AlertRule, AlertRuleInput } from "../../shared/schemas/alerts";

function rule(fields: Record<string, unknown>): AlertRule {
  const input = AlertRuleInput.parse({ name: "hot", severity: "warning", metric: "temperature", ...fields });
  return { ...input, id: "r1", version: 1, created_at: "2026-01-01T00:00:00Z", updated_at: "2026-01-01T00:00:00Z" };
}

const obs = (at: number, temperature: number) => ({
  id: `m${at}`,
  routing_key: "metrics.sensors.t.lab",
  at,
  readings: { temperature },
  rules: ["r1"],
});

describe("the alert rule state machine", () => {
  it("holds, waits for_seconds in pending, fires, and clears when the condition stops holding", () => {
    const r = rule({ condition: { type: "threshold", op: "gt", value: 30 }, for_seconds: 60 });
    const s = machine.fresh(r);
    const at = (t: number, v: number) => machine.step("dev", s, machine.holds(r, s, obs(t, v), v, undefined), t, v, `m${t}`);
    expect(at(0, 31)).toBeUndefined();
    expect(s.phase).toBe("pending");
    expect(at(30_000, 32)).toBeUndefined();
    const fired = at(60_000, 33);
    expect(fired).toMatchObject({
      type: "alert",
      metadata: { transition: "fired" },
      payload: { status: "active", value: 33, device: "dev" },
    });
    expect(s.phase).toBe("active");
    const cleared = at(90_000, 20);
    expect(cleared).toMatchObject({ metadata: { transition: "cleared" }, payload: { status: "cleared" } });
    expect(s.phase).toBe("ok");
  });

  it("goes back to ok from pending without firing when the reading drops in time", () => {
    const r = rule({ condition: { type: "threshold", op: "gt", value: 30 }, for_seconds: 60 });
    const s = machine.fresh(r);
    machine.step("dev", s, true, 0, 31);
    expect(machine.step("dev", s, false, 10_000, 25)).toBeUndefined();
    expect(s.phase).toBe("ok");
    expect(machine.nextDue(s)).toBeNull();
  });

  it("fires an absence of data on the clock, at the time nextDue names", () => {
    const r = rule({ condition: { type: "absence", seconds: 120 } });
    const s = machine.fresh(r);
    s.last_at = 1_000;
    expect(machine.nextDue(s)).toBe(121_000);
    expect(machine.due("dev", s, 60_000)).toBeUndefined();
    expect(machine.due("dev", s, 121_000)).toMatchObject({ metadata: { transition: "fired" } });
  });
});
