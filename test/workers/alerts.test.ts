/** Alert rules API, each condition type, holds, dedup, lifecycle, timers and the stream path, inside workerd. */
import { createExecutionContext, createMessageBatch, getQueueResult, runDurableObjectAlarm } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import type { Observation } from "../../durable-objects/alert-actor";
import { alertStub } from "../../durable-objects/stubs";
import { consume } from "../../queues/consumer";
import { enrich, notifier } from "../../queues/consumers/notifier";
import { cacheKey, inferenceCache } from "../../queues/inference";
import { NotifyFailed, notify, resetChannelBreakers } from "../../queues/notify";
import { findQueue } from "../../shared/bus/topology";
import { type StoredAlert, saveAlert } from "../../shared/repos/alerts";
import type { AlertRule } from "../../shared/schemas/alerts";
import { InferenceRequestPayload } from "../../shared/schemas/message";
import { ADMIN, call, createDevice, eventually, json, post, uniqueId } from "./helpers";

const H = { ...ADMIN, "content-type": "application/json" };

async function createRule(body: Record<string, unknown>): Promise<AlertRule> {
  const res = await call("/api/monitoring/alert_rules", { method: "POST", headers: H, body: JSON.stringify(body) });
  expect(res.status, await res.clone().text()).toBe(201);
  return (await json<{ rule: AlertRule }>(res)).rule;
}

async function alertsOf(device: string): Promise<StoredAlert[]> {
  const res = await call(`/api/monitoring/alerts?device=${device}`, { headers: ADMIN });
  expect(res.status).toBe(200);
  return (await json<{ alerts: StoredAlert[] }>(res)).alerts;
}

/** A device of its own, a rule on it, and its actor. */
async function ruleOnNewDevice(prefix: string, fields: Record<string, unknown>) {
  const device = uniqueId(prefix);
  const rule = await createRule({ name: prefix, device, ...fields });
  return { device, rule, actor: alertStub(env, device) };
}

let seq = 0;
function obs(rule: AlertRule, at: number, readings: Record<string, number>): Observation {
  seq++;
  return { id: `obs-${Date.now()}-${seq}`, routing_key: "metrics.sensors.temperature.lab", at, readings, rules: [rule.id] };
}

async function phases(device: string) {
  return alertStub(env, device).states();
}

/** Due timers run on their own within milliseconds; this runs any still pending and waits for `check`. */
async function afterTimers<T>(device: string, check: () => Promise<T | undefined>, what: string): Promise<T> {
  return eventually(
    async () => {
      await runDurableObjectAlarm(env.ALERT_ACTOR.getByName(device));
      return check();
    },
    5_000,
    what,
  );
}

describe("alert rules API", () => {
  it("rejects a bad rule naming every field at fault", async () => {
    const res = await call("/api/monitoring/alert_rules", {
      method: "POST",
      headers: H,
      body: JSON.stringify({
        name: "",
        condition: { type: "threshold", op: "above", value: "30" },
        severity: "loud",
        channels: [
          { type: "webhook", url: "ftp://x" },
          { type: "webhook", url: "https://evil.example/", secret: "ADMIN_TOKEN" },
        ],
        routing_key: "metrics..x",
        extra: 1,
      }),
    });
    expect(res.status).toBe(400);
    const body = await json<{ error: { code: string; issues: { path: string }[] } }>(res);
    expect(body.error.code).toBe("invalid_payload");
    const paths = body.error.issues.map((i) => i.path);
    for (const p of ["name", "condition.op", "condition.value", "severity", "channels.0.url", "channels.1.secret", "routing_key", "extra"])
      expect(paths).toContain(p);
  });

  it("needs the metric for conditions that read one", async () => {
    const res = await call("/api/monitoring/alert_rules", {
      method: "POST",
      headers: H,
      body: JSON.stringify({ name: "x", condition: { type: "threshold", op: "gt", value: 1 }, severity: "info" }),
    });
    expect(res.status).toBe(400);
    const body = await json<{ error: { issues: { path: string }[] } }>(res);
    expect(body.error.issues.map((i) => i.path)).toEqual(["metric"]);
  });

  it("creates, lists, gets, patches, replaces with If-Match, and deletes", async () => {
    const rule = await createRule({
      name: "hot",
      metric: "temperature",
      condition: { type: "threshold", op: "gt", value: 30 },
      severity: "warning",
    });
    expect(rule.version).toBe(1);
    expect(rule.for_seconds).toBe(0);
    const listed = await json<{ rules: AlertRule[] }>(await call("/api/monitoring/alert_rules", { headers: ADMIN }));
    expect(listed.rules.map((r) => r.id)).toContain(rule.id);

    const patched = await call(`/api/monitoring/alert_rules/${rule.id}`, {
      method: "PATCH",
      headers: H,
      body: JSON.stringify({ severity: "critical" }),
    });
    expect(patched.status).toBe(200);
    const after = (await json<{ rule: AlertRule }>(patched)).rule;
    expect(after).toMatchObject({ severity: "critical", version: 2, name: "hot" });

    const badPatch = await call(`/api/monitoring/alert_rules/${rule.id}`, {
      method: "PATCH",
      headers: H,
      body: JSON.stringify({ metric: null }),
    });
    expect(badPatch.status).toBe(400);

    const stale = await call(`/api/monitoring/alert_rules/${rule.id}`, {
      method: "PUT",
      headers: { ...H, "if-match": '"1"' },
      body: JSON.stringify({ name: "hot", metric: "temperature", condition: { type: "threshold", op: "gt", value: 31 }, severity: "info" }),
    });
    expect(stale.status).toBe(412);

    const put = await call(`/api/monitoring/alert_rules/${rule.id}`, {
      method: "PUT",
      headers: { ...H, "if-match": '"2"' },
      body: JSON.stringify({
        name: "hotter",
        metric: "temperature",
        condition: { type: "threshold", op: "gt", value: 31 },
        severity: "info",
      }),
    });
    expect(put.status).toBe(200);
    expect((await json<{ rule: AlertRule }>(put)).rule).toMatchObject({ name: "hotter", version: 3 });

    expect((await call(`/api/monitoring/alert_rules/${rule.id}`, { method: "DELETE", headers: ADMIN })).status).toBe(204);
    expect((await call(`/api/monitoring/alert_rules/${rule.id}`, { headers: ADMIN })).status).toBe(404);
    expect((await call(`/api/monitoring/alert_rules/${rule.id}`, { method: "DELETE", headers: ADMIN })).status).toBe(404);
  });

  it("needs an operator to write and a credential to read", async () => {
    expect((await call("/api/monitoring/alert_rules")).status).toBe(401);
  });
});

describe("AlertActor conditions and lifecycle", () => {
  it("threshold: fires once per episode (dedup), then clears", async () => {
    const { device, rule, actor } = await ruleOnNewDevice("thr", {
      name: "hot",
      metric: "temperature",
      condition: { type: "threshold", op: "gt", value: 30 },
      severity: "warning",
    });
    const now = Date.now();
    const r1 = await actor.evaluate(
      device,
      [rule],
      [obs(rule, now - 3000, { temperature: 31 }), obs(rule, now - 2000, { temperature: 35 })],
    );
    expect(r1.changes).toBe(1);
    const active = await alertsOf(device);
    expect(active).toHaveLength(1);
    expect(active[0]).toMatchObject({ status: "active", rule_id: rule.id, value: 31, severity: "warning" });

    const cleared = await actor.evaluate(device, [rule], [obs(rule, now - 1000, { temperature: 20 })]);
    expect(cleared.changes).toBe(1);
    const again = await actor.evaluate(device, [rule], [obs(rule, now, { temperature: 40 })]);
    expect(again.changes).toBe(1);
    const all = await alertsOf(device);
    expect(all.map((a) => a.status).sort()).toEqual(["active", "cleared"]);
    expect(new Set(all.map((a) => a.id)).size).toBe(2);
  });

  it("skips a message it has evaluated (redelivery)", async () => {
    const { device, rule } = await ruleOnNewDevice("dup", {
      name: "hot",
      metric: "temperature",
      condition: { type: "threshold", op: "gt", value: 30 },
      severity: "info",
    });
    const o = obs(rule, Date.now(), { temperature: 50 });
    expect((await alertStub(env, device).evaluate(device, [rule], [o])).evaluated).toBe(1);
    expect((await alertStub(env, device).evaluate(device, [rule], [o])).evaluated).toBe(0);
  });

  it("for_seconds: pending until the condition held long enough; a break resets it", async () => {
    const { device, rule, actor } = await ruleOnNewDevice("hold", {
      name: "held",
      metric: "temperature",
      condition: { type: "threshold", op: "gte", value: 30 },
      for_seconds: 60,
      severity: "warning",
    });
    const t0 = Date.now() - 600_000;
    await actor.evaluate(device, [rule], [obs(rule, t0, { temperature: 30 }), obs(rule, t0 + 30_000, { temperature: 31 })]);
    expect((await phases(device))[0]?.phase).toBe("pending");
    await actor.evaluate(device, [rule], [obs(rule, t0 + 40_000, { temperature: 10 })]);
    expect((await phases(device))[0]?.phase).toBe("ok");
    await actor.evaluate(device, [rule], [obs(rule, t0 + 50_000, { temperature: 33 }), obs(rule, t0 + 100_000, { temperature: 33 })]);
    expect((await phases(device))[0]?.phase).toBe("pending");
    // Still holding at the last reading and nothing since: the alarm fires it when the hold is over.
    const states = await afterTimers(
      device,
      async () => ((await phases(device))[0]?.phase === "active" ? phases(device) : undefined),
      "the hold to end",
    );
    expect(states[0]?.alert?.value).toBe(33);
  });

  it("rate of change: fires on a fast rise between consecutive readings", async () => {
    const { device, rule, actor } = await ruleOnNewDevice("rate", {
      name: "rising",
      metric: "temperature",
      condition: { type: "rate_of_change", op: "gt", value: 2, per_seconds: 60 },
      severity: "warning",
    });
    const t0 = Date.now() - 600_000;
    // +1 per minute: no alert; then +5 in a minute: alert.
    await actor.evaluate(device, [rule], [obs(rule, t0, { temperature: 20 }), obs(rule, t0 + 60_000, { temperature: 21 })]);
    expect((await phases(device))[0]?.phase).toBe("ok");
    await actor.evaluate(device, [rule], [obs(rule, t0 + 120_000, { temperature: 26 })]);
    expect((await phases(device))[0]?.phase).toBe("active");
  });

  it("absence: fires when the data stops, clears when it comes back", async () => {
    const { device, rule, actor } = await ruleOnNewDevice("abs", {
      name: "silent",
      metric: "temperature",
      condition: { type: "absence", seconds: 60 },
      severity: "critical",
    });
    await actor.evaluate(device, [rule], [obs(rule, Date.now() - 120_000, { temperature: 20 })]);
    expect((await phases(device))[0]?.phase).toBe("ok");
    await afterTimers(device, async () => ((await phases(device))[0]?.phase === "active" ? true : undefined), "the absence alert");
    const [alert] = await alertsOf(device);
    expect(alert?.title).toContain("no temperature for 60 s");
    await actor.evaluate(device, [rule], [obs(rule, Date.now(), { temperature: 21 })]);
    expect((await phases(device))[0]?.phase).toBe("ok");
    expect((await alertsOf(device))[0]?.status).toBe("cleared");
  });

  it("anomaly: a spike against a noisy but steady series fires", async () => {
    const { device, rule, actor } = await ruleOnNewDevice("anom", {
      name: "odd",
      metric: "power",
      condition: { type: "anomaly", score: 5, window: 60, min_samples: 20 },
      severity: "warning",
    });
    const t0 = Date.now() - 600_000;
    const steady = Array.from({ length: 40 }, (_, i) => obs(rule, t0 + i * 1000, { power: 100 + ((i * 7) % 5) - 2 }));
    await actor.evaluate(device, [rule], steady);
    expect((await phases(device))[0]?.phase).toBe("ok");
    await actor.evaluate(device, [rule], [obs(rule, t0 + 50_000, { power: 160 })]);
    const states = await phases(device);
    expect(states[0]?.phase).toBe("active");
    expect(states[0]?.alert?.value).toBeGreaterThan(5);
  });

  it("acknowledge stops re-notification; escalation raises an unacknowledged alert to critical", async () => {
    const { device, rule, actor } = await ruleOnNewDevice("esc", {
      name: "leak",
      metric: "water",
      condition: { type: "threshold", op: "gt", value: 0 },
      severity: "warning",
      renotify_seconds: 60,
      escalate_after_seconds: 120,
    });
    // Fired long ago (edge time of the reading): both timers are due.
    await actor.evaluate(device, [rule], [obs(rule, Date.now() - 600_000, { water: 1 })]);
    // Escalation first (the second message), then the due re-notification (the third); then the next is a minute away.
    let alert: StoredAlert | undefined = await afterTimers(
      device,
      async () => (await alertsOf(device)).find((a) => a.notifications === 3),
      "escalation and re-notification",
    );
    expect(alert).toMatchObject({ severity: "critical", escalated: true, status: "active" });

    const operator = await call(`/api/monitoring/alerts/${alert?.id}/acknowledge`, { method: "POST", headers: ADMIN });
    expect(operator.status, await operator.clone().text()).toBe(200);
    [alert] = await alertsOf(device);
    expect(alert).toMatchObject({ status: "acknowledged", acknowledged_by: "admin", notifications: 3 });
    // Nothing is due any more.
    expect(await runDurableObjectAlarm(env.ALERT_ACTOR.getByName(device))).toBe(false);
    const twice = await call(`/api/monitoring/alerts/${alert?.id}/acknowledge`, { method: "POST", headers: ADMIN });
    expect(twice.status).toBe(200);
    expect(
      (await call("/api/monitoring/alerts/00000000-0000-0000-0000-000000000000/acknowledge", { method: "POST", headers: ADMIN })).status,
    ).toBe(404);
  });

  it("a deleted rule's alert clears at once, though no timer of its own would wake the actor", async () => {
    const { device, rule } = await ruleOnNewDevice("del", {
      name: "gone",
      metric: "x",
      condition: { type: "threshold", op: "gt", value: 0 },
      severity: "info",
    });
    await alertStub(env, device).evaluate(device, [rule], [obs(rule, Date.now() - 120_000, { x: 1 })]);
    expect((await alertsOf(device))[0]?.status).toBe("active");
    expect((await call(`/api/monitoring/alert_rules/${rule.id}`, { method: "DELETE", headers: ADMIN })).status).toBe(204);
    expect((await alertsOf(device))[0]?.status).toBe("cleared");
    expect(await phases(device)).toEqual([]);
  });

  it("a disabled rule's alert clears at once", async () => {
    const { device, rule } = await ruleOnNewDevice("off", {
      name: "off",
      metric: "x",
      condition: { type: "threshold", op: "gt", value: 0 },
      severity: "info",
    });
    await alertStub(env, device).evaluate(device, [rule], [obs(rule, Date.now() - 120_000, { x: 1 })]);
    const patched = await call(`/api/monitoring/alert_rules/${rule.id}`, {
      method: "PATCH",
      headers: { ...ADMIN, "content-type": "application/json" },
      body: JSON.stringify({ enabled: false }),
    });
    expect(patched.status, await patched.clone().text()).toBe(200);
    expect((await alertsOf(device))[0]?.status).toBe("cleared");
  });

  it("an alert fired and cleared by one batch ends cleared (the outbox keeps their order)", async () => {
    const { device, rule } = await ruleOnNewDevice("flap", {
      name: "flap",
      metric: "x",
      condition: { type: "threshold", op: "gt", value: 10 },
      severity: "warning",
    });
    const at = Date.now() - 60_000;
    await alertStub(env, device).evaluate(device, [rule], [obs(rule, at, { x: 20 }), obs(rule, at + 1000, { x: 1 })]);
    const alerts = await alertsOf(device);
    expect(alerts.map((a) => a.status)).toEqual(["cleared"]);
  });
});

describe("on the stream", () => {
  it("telemetry → transformer → metrics consumer → AlertActor → alerts exchange → dashboard hub and archive", async () => {
    const { device, token } = await createDevice({ id: uniqueId("live"), type: "temperature", room: "lab" });
    const rule = await createRule({
      name: "lab hot",
      metric: "temperature",
      routing_key: "metrics.sensors.temperature.#",
      device: device.id,
      condition: { type: "threshold", op: "gt", value: 30 },
      severity: "critical",
    });
    expect((await post("/v1/telemetry", token, { payload: { temperature: 42 } })).status).toBe(202);
    const [alert] = await eventually(
      async () => {
        const list = await alertsOf(device.id);
        return list.length ? list : undefined;
      },
      15_000,
      "the alert",
    );
    expect(alert).toMatchObject({ rule_id: rule.id, status: "active", value: 42, severity: "critical" });
    // The alert feed announced it on the system hub's alert stream.
    await eventually(
      async () => {
        const rows = await env.LIVE_HUB.getByName("system");
        const { runInDurableObject } = await import("cloudflare:test");
        return runInDurableObject(rows, async (_i, state) => {
          const found = state.storage.sql
            // The hub persists its updates lazily, as blocks (durable-objects/live-hub.ts).
            .exec<{ body: string }>("SELECT body FROM update_blocks")
            .toArray()
            .some((r) => r.body.includes(alert?.id ?? "none") && r.body.includes('"stream":"alert"'));
          return found ? true : undefined;
        });
      },
      15_000,
      "the live alert update",
    );
  });
});

describe("notifier", () => {
  it("records failures per channel and dead-letters after the retries", async () => {
    const device = uniqueId("ntf");
    // Port 9 (discard) on loopback: nothing listens, a real connection failure.
    const rule = await createRule({
      name: "loud",
      metric: "x",
      device,
      condition: { type: "threshold", op: "gt", value: 0 },
      severity: "critical",
      channels: [{ type: "webhook", url: "http://127.0.0.1:9/hook" }],
    });
    // The alert is written directly, so the queues' own notifier never sees it: this test drives it.
    const at = new Date().toISOString();
    const alert = {
      id: crypto.randomUUID(),
      rule_id: rule.id,
      rule_name: rule.name,
      device,
      status: "active" as const,
      severity: "critical" as const,
      metric: "x",
      value: 1,
      title: "loud",
      started_at: at,
      updated_at: at,
      escalated: false,
      notifications: 1,
    };
    await saveAlert(env.DB, alert);
    const now = new Date().toISOString();
    const message = {
      id: `${alert.id}.manual.1`,
      correlation_id: alert.id,
      source: "alert-manager",
      exchange: "alerts",
      routing_key: `alerts.critical.${device}`,
      type: "alert",
      timestamp: now,
      received_at: now,
      metadata: {},
      schema_version: 1,
      payload: { ...alert, alert_id: alert.id },
    };
    const queue = findQueue("alerts.notifications");
    if (!queue) throw new Error("topology lost alerts.notifications");
    const run = async (attempts: number) => {
      const batch = createMessageBatch("edgemesh-alerts-notifications", [
        { id: `m${attempts}`, timestamp: new Date(), attempts, body: message },
      ]);
      const ctx = createExecutionContext();
      await consume(batch, { env, queue }, notifier);
      return getQueueResult(batch, ctx);
    };
    const first = await run(1);
    expect(first.retryMessages).toHaveLength(1);
    let [stored] = await alertsOf(device);
    expect(stored?.deliveries).toMatchObject([{ channel: 0, type: "webhook", status: "failed", attempts: 1 }]);
    const last = await run(4);
    expect(last.retryMessages).toHaveLength(0);
    expect(last.explicitAcks).toHaveLength(1);
    [stored] = await alertsOf(device);
    expect(stored?.deliveries).toMatchObject([{ channel: 0, status: "dead_lettered", attempts: 4 }]);
  });

  it("enrichment: the room, availability and recent values; an AI summary when AI_SUMMARY_MODEL is set", async () => {
    const { device, token } = await createDevice({ id: uniqueId("enr"), type: "temperature", room: "attic" });
    expect((await post("/v1/telemetry", token, { payload: { temperature: 21 } })).status).toBe(202);
    expect((await post("/v1/telemetry", token, { payload: { temperature: 23 } })).status).toBe(202);
    const at = new Date().toISOString();
    const alert = {
      id: crypto.randomUUID(),
      rule_id: "r",
      rule_name: "attic",
      device: device.id,
      status: "active" as const,
      severity: "warning" as const,
      metric: "temperature",
      value: 23,
      title: `attic warm on ${device.id}`,
      started_at: at,
      updated_at: at,
      escalated: false,
      notifications: 1,
    };
    const plain = await enrich(env, alert);
    expect(plain).toMatchObject({ room: "attic", availability: "online" });
    expect(plain.recent.map((r) => r.value)).toEqual(expect.arrayContaining([21, 23]));
    expect(plain.summary).toBeUndefined();
    // The summary model's answer, cached as the inference path would have cached it.
    const withModel = { ...env, AI_SUMMARY_MODEL: "summarizer" } as unknown as Env;
    const ask = InferenceRequestPayload.parse({
      model: "summarizer",
      inputs: [{ name: "text", shape: [1], datatype: "BYTES", data: [alert.title] }],
    });
    await inferenceCache(env).set(
      await cacheKey(ask),
      [{ name: "summary", shape: [1], datatype: "BYTES", data: ["The attic is warming steadily."] }],
      60,
    );
    expect((await enrich(withModel, alert)).summary).toBe("The attic is warming steadily.");
  });

  it("a channel's circuit breaker opens after 5 consecutive failures and then fails at once", async () => {
    resetChannelBreakers();
    // Port 9 on loopback: nothing listens, every send is a real connection failure.
    const channel = { type: "webhook" as const, url: "http://127.0.0.1:9/breaker" };
    const at = new Date().toISOString();
    const alert = {
      id: crypto.randomUUID(),
      rule_id: "r",
      rule_name: "b",
      device: "d",
      status: "active" as const,
      severity: "info" as const,
      title: "b",
      started_at: at,
      updated_at: at,
      escalated: false,
      notifications: 1,
    };
    const context = { room: null, availability: null, recent: [] };
    const outcomes: boolean[] = [];
    for (let i = 0; i < 7; i++) {
      const error = await notify(env, channel, alert, context).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(NotifyFailed);
      outcomes.push((error as NotifyFailed).circuitOpen);
    }
    expect(outcomes).toEqual([false, false, false, false, false, true, true]);
    // Another channel is not affected.
    const other = await notify(env, { ...channel, url: "http://127.0.0.1:9/other" }, alert, context).catch((e: NotifyFailed) => e);
    expect((other as NotifyFailed).circuitOpen).toBe(false);
    resetChannelBreakers();
  });
});

describe("alerts a device raises itself", () => {
  it("may not name a rule, an alert or another device: refused per message with the field, the rest accepted", async () => {
    const id = uniqueId("raiser");
    const { device, token } = await createDevice({ id, type: "temperature", room: "lab", publish: [`alerts:alerts.*.${id}`] });
    const alert = (extra: Record<string, unknown>) => ({ type: "alert", payload: { severity: "warning", title: "hot", ...extra } });
    const res = await post("/v1/events", token, [
      alert({ rule_id: "r-1" }),
      alert({ alert_id: "a-1" }),
      alert({ device: "someone-else" }),
      alert({ device: device.id }),
    ]);
    const body = await json<{ accepted: number; rejected: { index: number; code: string; issues: { path: string }[] }[] }>(res);
    expect(body.rejected.map((r) => [r.index, r.code, r.issues[0]?.path])).toEqual([
      [0, "forbidden", "payload.rule_id"],
      [1, "forbidden", "payload.alert_id"],
      [2, "source_mismatch", "payload.device"],
    ]);
    expect(body.accepted).toBe(1);
  });
});
