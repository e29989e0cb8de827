/** Automations inside workerd: validation, each trigger type, conditions, each action, runs recorded once. */
import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { nextDue } from "../../durable-objects/automation-clock";
import { clockStub } from "../../durable-objects/stubs";
import { runAutomations } from "../../queues/automations";
import { cacheKey, inferenceCache } from "../../queues/inference";
import { crossed, forgetCrossing } from "../../shared/repos/automations";
import type { Automation, AutomationRun } from "../../shared/schemas/automations";
import { type Envelope, InferenceRequestPayload } from "../../shared/schemas/message";
import { ADMIN, call, createDevice, eventually, json, post, uniqueId } from "./helpers";

const H = { ...ADMIN, "content-type": "application/json" };

async function createAutomation(body: Record<string, unknown>): Promise<Automation> {
  const res = await call("/api/automations", { method: "POST", headers: H, body: JSON.stringify(body) });
  expect(res.status, await res.clone().text()).toBe(201);
  return (await json<{ automation: Automation }>(res)).automation;
}

async function runsOf(id: string): Promise<AutomationRun[]> {
  const res = await call(`/api/automations/${id}/runs`, { headers: ADMIN });
  expect(res.status).toBe(200);
  return (await json<{ runs: AutomationRun[] }>(res)).runs;
}

async function commandsOf(device: string): Promise<{ command: string; correlation_id: string; parameters: Record<string, unknown> }[]> {
  const res = await call(`/v1/devices/${device}/commands`, { headers: ADMIN });
  expect(res.status).toBe(200);
  return (await json<{ commands: { command: string; correlation_id: string; parameters: Record<string, unknown> }[] }>(res)).commands;
}

let n = 0;
function message(
  type: "metric" | "alert" | "event",
  source: string,
  routingKey: string,
  payload: Record<string, unknown>,
  metadata = {},
): Envelope {
  const now = new Date().toISOString();
  const id = `auto-${Date.now()}-${++n}`;
  return {
    id,
    correlation_id: id,
    source,
    exchange: type === "metric" ? "metrics" : type === "alert" ? "alerts" : "home.events",
    routing_key: routingKey,
    type,
    timestamp: now,
    received_at: now,
    metadata,
    schema_version: 1,
    payload,
  } as Envelope;
}

describe("automations API", () => {
  it("rejects a bad automation naming each field", async () => {
    const res = await call("/api/automations", {
      method: "POST",
      headers: H,
      body: JSON.stringify({
        name: "x",
        trigger: { type: "event", routing_key: "home..x" },
        actions: [],
        conditions: [{ device: "Bad Id", path: "a", op: "eq", value: 1 }],
      }),
    });
    expect(res.status).toBe(400);
    const body = await json<{ error: { code: string; issues: { path: string }[] } }>(res);
    expect(body.error.code).toBe("invalid_payload");
    expect(body.error.issues.map((i) => i.path).sort()).toEqual(["actions", "conditions.0.device", "trigger.routing_key"]);
  });

  it("creates, gets, replaces and deletes", async () => {
    const a = await createAutomation({
      name: "a",
      trigger: { type: "alert" },
      actions: [{ type: "desired", device: "x1", patch: { on: true } }],
    });
    expect(a.trigger).toEqual({ type: "alert", status: "active" });
    const put = await call(`/api/automations/${a.id}`, {
      method: "PUT",
      headers: H,
      body: JSON.stringify({ name: "b", trigger: { type: "alert" }, actions: [{ type: "desired", device: "x1", patch: { on: false } }] }),
    });
    expect(put.status).toBe(200);
    expect((await json<{ automation: Automation }>(put)).automation).toMatchObject({ name: "b", version: 2 });
    expect((await call(`/api/automations/${a.id}`, { method: "DELETE", headers: ADMIN })).status).toBe(204);
    expect((await call(`/api/automations/${a.id}`, { headers: ADMIN })).status).toBe(404);
  });
});

describe("automation runs", () => {
  it("event on home.events (home.*.*.trigger → home.events.automations) → command to a device, through the real queues; recorded with its latency", async () => {
    const room = uniqueId("hall");
    const button = await createDevice({ id: uniqueId("btn"), type: "switch", room });
    const lamp = await createDevice({ id: uniqueId("lamp"), type: "light", room });
    const automation = await createAutomation({
      name: "button turns the lamp on",
      trigger: { type: "event", routing_key: `home.${room}.${button.device.id}.trigger` },
      actions: [{ type: "command", device: lamp.device.id, command: "turn_on", parameters: { brightness: 80 } }],
    });
    expect((await post("/v1/events", button.token, { payload: { event_type: "trigger", reason: "pressed" } })).status).toBe(202);
    const [run] = await eventually(
      async () => {
        const runs = await runsOf(automation.id);
        return runs.length ? runs : undefined;
      },
      15_000,
      "the run",
    );
    expect(run).toMatchObject({ outcome: "succeeded", actions: [{ type: "command", ok: true }] });
    expect(run?.latency_ms).toBeGreaterThanOrEqual(0);
    const commands = await commandsOf(lamp.device.id);
    expect(commands).toHaveLength(1);
    expect(commands[0]).toMatchObject({ command: "turn_on", parameters: { brightness: 80 }, correlation_id: run?.id });
  });

  it("threshold trigger fires on the crossing only; a redelivered message runs once; conditions can skip", async () => {
    const fan = await createDevice({ id: uniqueId("fan"), type: "fan" });
    const sensor = uniqueId("temp");
    const automation = await createAutomation({
      name: "hot → fan",
      trigger: { type: "threshold", metric: "temperature", op: "gt", value: 28, device: sensor },
      conditions: [{ device: fan.device.id, path: "availability.status", op: "ne", value: "gone" }],
      actions: [{ type: "command", device: fan.device.id, command: "start" }],
    });
    const hot1 = message("metric", sensor, `metrics.sensors.temperature.lab`, { temperature: 30 });
    const hot2 = message("metric", sensor, `metrics.sensors.temperature.lab`, { temperature: 31 });
    const cool = message("metric", sensor, `metrics.sensors.temperature.lab`, { temperature: 20 });
    const hot3 = message("metric", sensor, `metrics.sensors.temperature.lab`, { temperature: 29 });
    await runAutomations(env, [hot1, hot2], "threshold");
    await runAutomations(env, [hot1], "threshold");
    await runAutomations(env, [cool, hot3], "threshold");
    const runs = await runsOf(automation.id);
    expect(runs.map((r) => r.trigger_message_id).sort()).toEqual([hot1.id, hot3.id].sort());
    expect(await commandsOf(fan.device.id)).toHaveLength(2);

    const skipping = await createAutomation({
      name: "only when the fan is on",
      trigger: { type: "threshold", metric: "temperature", op: "gt", value: 28, device: sensor },
      conditions: [{ device: fan.device.id, path: "desired.power", op: "eq", value: "on" }],
      actions: [{ type: "command", device: fan.device.id, command: "boost" }],
    });
    const hot4 = message("metric", sensor, `metrics.sensors.temperature.lab`, { temperature: 35 });
    await runAutomations(env, [cool, hot4], "threshold");
    const [skipped] = await runsOf(skipping.id);
    expect(skipped).toMatchObject({ outcome: "skipped", actions: [] });
    expect(skipped?.reason).toContain("desired.power");
  });

  it("threshold triggers are evaluated set-based: two D1 round trips per batch however many messages and automations", async () => {
    const fan = await createDevice({ id: uniqueId("fan"), type: "fan" });
    const sensor = uniqueId("temp");
    const automations = await Promise.all(
      [28, 40, 50].map((value) =>
        createAutomation({
          name: `over ${value}`,
          trigger: { type: "threshold", metric: "temperature", op: "gt", value, device: sensor },
          actions: [{ type: "command", device: fan.device.id, command: "start" }],
        }),
      ),
    );
    // The real D1, with its round trips counted.
    let roundTrips = 0;
    const counted = (statement: D1PreparedStatement): D1PreparedStatement =>
      new Proxy(statement, {
        get(target, key) {
          const value = Reflect.get(target, key, target);
          if (typeof value !== "function") return value;
          if (key === "bind") return (...args: unknown[]) => counted(value.apply(target, args));
          if (key === "first" || key === "all" || key === "run" || key === "raw")
            return (...args: unknown[]) => {
              roundTrips++;
              return value.apply(target, args);
            };
          return value.bind(target);
        },
      });
    const db = new Proxy(env.DB, {
      get(target, key) {
        if (key === "prepare") return (sql: string) => counted(target.prepare(sql));
        if (key === "batch")
          return (statements: D1PreparedStatement[]) => {
            roundTrips++;
            return target.batch(statements);
          };
        return Reflect.get(target, key, target);
      },
    });
    const cool = Array.from({ length: 30 }, (_, i) =>
      message("metric", sensor, "metrics.sensors.temperature.lab", { temperature: 10 + i / 10 }),
    );
    expect(await runAutomations({ ...env, DB: db }, cool, "threshold")).toEqual([]);
    // The automations (one query) and every crossing state read and written (one batch).
    expect(roundTrips).toBe(2);
    // In message order inside one batch: hot, cool, hot crosses twice for the first automation.
    const [hot1, cooler, hot2] = [30, 20, 29].map((t) => message("metric", sensor, "metrics.sensors.temperature.lab", { temperature: t }));
    await runAutomations(env, [hot1, cooler, hot2] as Envelope[], "threshold");
    expect((await runsOf(automations[0]?.id ?? "")).map((r) => r.trigger_message_id).sort()).toEqual([hot1?.id, hot2?.id].sort());
    expect(await runsOf(automations[1]?.id ?? "")).toEqual([]);
  });

  it("alert trigger → desired state, a published event, and a failed action recorded", async () => {
    const heater = await createDevice({ id: uniqueId("heat"), type: "heater" });
    const ruleId = crypto.randomUUID();
    const automation = await createAutomation({
      name: "frost alert",
      trigger: { type: "alert", rule_id: ruleId, severity: "critical" },
      actions: [
        { type: "desired", device: heater.device.id, patch: { mode: "heat", target: 18 } },
        {
          type: "publish",
          routing_key: `home.cellar.${heater.device.id}.state_changed`,
          event_type: "state_changed",
          data: { reason: "frost" },
        },
        { type: "command", device: "no-such-device", command: "x" },
        { type: "command", device: heater.device.id, command: "never_reached" },
      ],
    });
    const alert = message("alert", "alert-manager", `alerts.critical.${heater.device.id}`, {
      severity: "critical",
      title: "frost",
      status: "active",
      rule_id: ruleId,
    });
    const cleared = message("alert", "alert-manager", `alerts.critical.${heater.device.id}`, {
      severity: "critical",
      title: "frost",
      status: "cleared",
      rule_id: ruleId,
    });
    await runAutomations(env, [alert, cleared], "alert");
    const runs = await runsOf(automation.id);
    expect(runs).toHaveLength(1);
    expect(runs[0]?.outcome).toBe("failed");
    expect(runs[0]?.actions.map((a) => [a.type, a.ok])).toEqual([
      ["desired", true],
      ["publish", true],
      ["command", false],
    ]);
    expect(runs[0]?.actions[1]?.detail).toMatchObject({ queues: ["home.events.state_changes"] });
    const twin = await json<{ desired: Record<string, unknown> }>(await call(`/v1/devices/${heater.device.id}/twin`, { headers: ADMIN }));
    expect(twin.desired).toMatchObject({ mode: "heat", target: 18 });
  });

  it("room command reaches every member; events from a deep automation chain are not run", async () => {
    const room = uniqueId("den");
    const a = await createDevice({ id: uniqueId("l1"), type: "light", room });
    const b = await createDevice({ id: uniqueId("l2"), type: "light", room });
    const automation = await createAutomation({
      name: "all off",
      trigger: { type: "event", routing_key: `home.${room}.#` },
      actions: [{ type: "room_command", room, command: "turn_off" }],
    });
    const deep = message("event", "automations", `home.${room}.x.trigger`, { event_type: "trigger" }, { automation_depth: 4 });
    const fresh = message("event", "automations", `home.${room}.x.trigger`, { event_type: "trigger" }, { automation_depth: 1 });
    await runAutomations(env, [deep, fresh], "event");
    const runs = await runsOf(automation.id);
    expect(runs.map((r) => r.trigger_message_id)).toEqual([fresh.id]);
    expect(runs[0]?.actions[0]?.detail).toMatchObject({ devices: expect.arrayContaining([a.device.id, b.device.id]) });
    for (const d of [a, b]) expect((await commandsOf(d.device.id)).map((c) => c.command)).toEqual(["turn_off"]);
  });

  it("AI decision step: proceeds on the model's yes (here from the cache), stops on no, fails clearly with no backend", async () => {
    const fan = await createDevice({ id: uniqueId("aifan"), type: "fan" });
    const sensor = uniqueId("aitemp");
    const automation = await createAutomation({
      name: "ask the model",
      trigger: { type: "event", routing_key: `home.ai.${sensor}.trigger` },
      decision: { model: "too-hot", readings: ["temperature", "humidity"] },
      actions: [{ type: "command", device: fan.device.id, command: "start" }],
    });
    const cache = inferenceCache(env);
    const ask = (t: number) =>
      InferenceRequestPayload.parse({ model: "too-hot", inputs: [{ name: "readings", shape: [1, 2], datatype: "FP64", data: [t, 40] }] });
    await cache.set(await cacheKey(ask(35)), [{ name: "predict", shape: [1, 1], datatype: "INT64", data: [1] }], 60);
    await cache.set(await cacheKey(ask(15)), [{ name: "predict", shape: [1, 1], datatype: "INT64", data: [0] }], 60);
    const event = (t: number) =>
      ({
        ...message("event", sensor, `home.ai.${sensor}.trigger`, { event_type: "trigger" }),
        type: "telemetry",
        payload: { temperature: t, humidity: 40 },
      }) as unknown as Envelope;
    const yes = event(35);
    const no = event(15);
    const unknown = event(25);
    await runAutomations(env, [yes, no, unknown], "event");
    const runs = new Map((await runsOf(automation.id)).map((r) => [r.trigger_message_id, r]));
    expect(runs.get(yes.id)).toMatchObject({ outcome: "succeeded", decision: { value: 1, cached: true } });
    expect(runs.get(no.id)).toMatchObject({ outcome: "skipped", decision: { value: 0 }, reason: "AI decision: 0, not 1" });
    expect(runs.get(unknown.id)).toMatchObject({ outcome: "failed", reason: "AI decision failed: ai_unavailable" });
    expect((await commandsOf(fan.device.id)).map((c) => c.command)).toEqual(["start"]);
  });

  it("schedule: the AutomationClock runs the automation on its alarm, once per slot", async () => {
    const lamp = await createDevice({ id: uniqueId("sched"), type: "light" });
    const automation = await createAutomation({
      name: "every minute",
      trigger: { type: "schedule", every_seconds: 60 },
      actions: [{ type: "command", device: lamp.device.id, command: "blink" }],
    });
    const clock = env.AUTOMATION_CLOCK.getByName("clock");
    await clockStub(env).sync();
    const planned = (await clockStub(env).schedule()).find((s) => s.automation_id === automation.id);
    expect(Date.parse(planned?.at ?? "")).toBeGreaterThan(Date.now() + 50_000);
    // Make the slot due now, as if a minute had passed.
    await runInDurableObject(clock, async (_i, state) => {
      state.storage.sql.exec("UPDATE due SET at = ? WHERE automation_id = ?", Date.now() - 1000, automation.id);
      await state.storage.setAlarm(Date.now());
    });
    await eventually(
      async () => {
        await runDurableObjectAlarm(clock);
        return (await runsOf(automation.id)).length > 0 ? true : undefined;
      },
      5_000,
      "the scheduled run",
    );
    const [run] = await runsOf(automation.id);
    expect(run).toMatchObject({ outcome: "succeeded", actions: [{ type: "command", ok: true }] });
    expect((await commandsOf(lamp.device.id)).map((c) => c.command)).toEqual(["blink"]);
    const next = (await clockStub(env).schedule()).find((s) => s.automation_id === automation.id);
    expect(Date.parse(next?.at ?? "")).toBeGreaterThan(Date.now());
    // Deleted: the clock forgets it.
    expect((await call(`/api/automations/${automation.id}`, { method: "DELETE", headers: ADMIN })).status).toBe(204);
    await clockStub(env).sync();
    expect((await clockStub(env).schedule()).some((s) => s.automation_id === automation.id)).toBe(false);
  });

  it("schedule by cron expression: validated, next times in the named time zone, planned by the clock", async () => {
    const bad = await call("/api/automations", {
      method: "POST",
      headers: H,
      body: JSON.stringify({
        name: "x",
        trigger: { type: "schedule", cron: "61 7 * * *" },
        actions: [{ type: "desired", device: "x", patch: { a: 1 } }],
      }),
    });
    expect(bad.status).toBe(400);
    expect((await json<{ error: { issues: { path: string }[] } }>(bad)).error.issues.map((i) => i.path)).toEqual(["trigger.cron"]);
    const both = await call("/api/automations", {
      method: "POST",
      headers: H,
      body: JSON.stringify({
        name: "x",
        trigger: { type: "schedule", cron: "0 7 * * *", every_seconds: 60 },
        actions: [{ type: "desired", device: "x", patch: { a: 1 } }],
      }),
    });
    expect(both.status).toBe(400);

    const weekdays = { type: "schedule" as const, cron: "0 7 * * 1-5", timezone: "Europe/Berlin" };
    // Monday 23 November 2026, 22:00 in Berlin → Tuesday 07:00 Berlin (06:00 UTC); Friday evening → Monday.
    expect(new Date(nextDue(weekdays, Date.parse("2026-11-23T21:00:00Z")) ?? 0).toISOString()).toBe("2026-11-24T06:00:00.000Z");
    expect(new Date(nextDue(weekdays, Date.parse("2026-11-27T18:00:00Z")) ?? 0).toISOString()).toBe("2026-11-30T06:00:00.000Z");

    const automation = await createAutomation({
      name: "mornings",
      trigger: weekdays,
      actions: [{ type: "desired", device: "x", patch: { a: 1 } }],
    });
    await clockStub(env).sync();
    const planned = (await clockStub(env).schedule()).find((s) => s.automation_id === automation.id);
    expect(planned?.at).toBe(new Date(nextDue(weekdays, Date.now()) ?? 0).toISOString());
    expect((await call(`/api/automations/${automation.id}`, { method: "DELETE", headers: ADMIN })).status).toBe(204);
  });
});

describe("threshold crossings (automation_edges)", () => {
  it("fire once per crossing, in one statement, and a forgotten crossing fires again", async () => {
    const automation = uniqueId("edge");
    const seen = [];
    for (const past of [true, true, false, false, true]) seen.push(await crossed(env.DB, automation, "dev-1", past));
    expect(seen).toEqual([true, false, false, false, true]);
    await forgetCrossing(env.DB, automation, "dev-1");
    expect(await crossed(env.DB, automation, "dev-1", true)).toBe(true);
    // Two at once: exactly one of them sees the crossing.
    const other = uniqueId("edge");
    const both = await Promise.all([crossed(env.DB, other, "dev-1", true), crossed(env.DB, other, "dev-1", true)]);
    expect(both.filter(Boolean)).toHaveLength(1);
  });
});
