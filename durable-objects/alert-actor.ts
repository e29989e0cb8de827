/**
 * AlertActor: one Durable Object per device that holds the state of every alert rule for that
 * device — so evaluation is serialized per device, deduplication per rule and device is a primary
 * key, and time-based conditions (absence of data, the `for_seconds` hold, re-notification,
 * escalation) run on the object's one alarm rather than by polling. docs/alerts.md.
 *
 * The metrics consumer hands in each batch's readings with the rules that match them; the actor
 * is idempotent on message ids. Each lifecycle change (fired, re-notified, escalated,
 * acknowledged, cleared) is written to D1 and published as an `alert` message on the `alerts`
 * fanout exchange, where the notifier and the alert feed (archive, dashboard) take it.
 */
import { DurableObject } from "cloudflare:workers";
import { alertOfPayload, rulesById, saveAlert } from "../shared/alert-store";
import { RollingDetector } from "../shared/anomaly";
import { publish } from "../shared/bus/exchange";
import { newMessageId } from "../shared/ids";
import type { Alert, AlertCondition, AlertRule, Comparison } from "../shared/schemas/alerts";
import type { EnvelopeOf } from "../shared/schemas/message";

/** A reading as the consumer hands it in: the numbers of one message. */
export interface Observation {
  id: string;
  routing_key: string;
  /** Edge time of the message, ms. */
  at: number;
  readings: Record<string, number>;
  /** The rules (of those handed in) whose routing key, device and metric this message matches. */
  rules: string[];
}

type Phase = "ok" | "pending" | "active" | "acknowledged";

interface State {
  rule_id: string;
  phase: Phase;
  /** When the condition started to hold (pending), ms. */
  since: number | null;
  /** The last matching reading (absence; rate of change), ms and value. */
  last_at: number | null;
  last_value: number | null;
  alert: Alert | null;
  next_notify: number | null;
  escalate_at: number | null;
  rule: AlertRule;
}

interface StateRow {
  rule_id: string;
  phase: Phase;
  since: number | null;
  last_at: number | null;
  last_value: number | null;
  alert: string | null;
  next_notify: number | null;
  escalate_at: number | null;
  rule: string;
  [key: string]: SqlStorageValue;
}

const SCHEMA = `
  CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
  CREATE TABLE IF NOT EXISTS state (
    rule_id TEXT PRIMARY KEY, phase TEXT NOT NULL, since INTEGER, last_at INTEGER, last_value REAL,
    alert TEXT, next_notify INTEGER, escalate_at INTEGER, rule TEXT NOT NULL);
  CREATE TABLE IF NOT EXISTS windows (metric TEXT PRIMARY KEY, size INTEGER NOT NULL, values_json TEXT NOT NULL);
  CREATE TABLE IF NOT EXISTS seen (id TEXT PRIMARY KEY, seq INTEGER NOT NULL);
  CREATE TABLE IF NOT EXISTS outbox (id TEXT PRIMARY KEY, body TEXT NOT NULL, created INTEGER NOT NULL);
`;
const OUTBOX_RETRY_MS = 5_000;

const SEEN_KEPT = 2_000;
const ANOMALY_WINDOW_MAX = 500;

function compare(op: Comparison, a: number, b: number): boolean {
  switch (op) {
    case "gt":
      return a > b;
    case "gte":
      return a >= b;
    case "lt":
      return a < b;
    case "lte":
      return a <= b;
  }
}

const OP_TEXT: Record<Comparison, string> = { gt: ">", gte: "≥", lt: "<", lte: "≤" };

function describe(condition: AlertCondition, metric: string | undefined, value: number | undefined): string {
  const shown = value === undefined ? "" : ` (${Number(value.toFixed(4))})`;
  switch (condition.type) {
    case "threshold":
      return `${metric} ${OP_TEXT[condition.op]} ${condition.value}${shown}`;
    case "rate_of_change":
      return `${metric} changing ${OP_TEXT[condition.op]} ${condition.value} per ${condition.per_seconds} s${shown}`;
    case "absence":
      return `no ${metric ?? "data"} for ${condition.seconds} s`;
    case "anomaly":
      return `${metric} anomalous: robust z ≥ ${condition.score}${shown}`;
  }
}

export class AlertActor extends DurableObject<Env> {
  #flushing: Promise<boolean> = Promise.resolve(true);
  #detectors = new Map<string, RollingDetector>();

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    ctx.storage.sql.exec(SCHEMA);
  }

  #device(): string {
    return this.ctx.storage.sql.exec<{ value: string }>("SELECT value FROM meta WHERE key = 'device'").toArray()[0]?.value ?? "";
  }

  #load(ruleId: string): State | undefined {
    const row = this.ctx.storage.sql.exec<StateRow>("SELECT * FROM state WHERE rule_id = ?", ruleId).toArray()[0];
    if (!row) return undefined;
    return { ...row, alert: row.alert ? (JSON.parse(row.alert) as Alert) : null, rule: JSON.parse(row.rule) as AlertRule };
  }

  #save(s: State): void {
    this.ctx.storage.sql.exec(
      `INSERT OR REPLACE INTO state (rule_id, phase, since, last_at, last_value, alert, next_notify, escalate_at, rule)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      s.rule_id,
      s.phase,
      s.since,
      s.last_at,
      s.last_value,
      s.alert ? JSON.stringify(s.alert) : null,
      s.next_notify,
      s.escalate_at,
      JSON.stringify(s.rule),
    );
  }

  #detector(metric: string): RollingDetector {
    let detector = this.#detectors.get(metric);
    if (!detector) {
      const row = this.ctx.storage.sql
        .exec<{ values_json: string }>("SELECT values_json FROM windows WHERE metric = ?", metric)
        .toArray()[0];
      detector = new RollingDetector(ANOMALY_WINDOW_MAX, 1, row ? (JSON.parse(row.values_json) as number[]) : []);
      this.#detectors.set(metric, detector);
    }
    return detector;
  }

  /** Evaluates the rules on a device's new readings, in order; messages seen before are skipped. */
  async evaluate(device: string, rules: AlertRule[], observations: Observation[]): Promise<{ evaluated: number; changes: number }> {
    this.ctx.storage.sql.exec("INSERT OR IGNORE INTO meta (key, value) VALUES ('device', ?)", device);
    const outgoing: EnvelopeOf<"alert">[] = [];
    let evaluated = 0;
    const touchedWindows = new Set<string>();
    for (const obs of observations) {
      const fresh = this.ctx.storage.sql.exec(
        "INSERT OR IGNORE INTO seen (id, seq) VALUES (?, COALESCE((SELECT MAX(seq) FROM seen), 0) + 1)",
        obs.id,
      ).rowsWritten;
      if (fresh === 0) continue;
      evaluated++;
      // Anomaly scores are taken against the window before this reading joins it.
      const scores = new Map<string, number>();
      for (const rule of rules) {
        if (rule.condition.type !== "anomaly" || !rule.metric || !obs.rules.includes(rule.id)) continue;
        const value = obs.readings[rule.metric];
        if (value === undefined || scores.has(`${rule.metric}:${rule.id}`)) continue;
        const detector = this.#detector(rule.metric);
        const window = detector.values.slice(-rule.condition.window);
        const scored = window.length >= rule.condition.min_samples ? new RollingDetector(window.length, 1, window).push(value).score : 0;
        scores.set(`${rule.metric}:${rule.id}`, scored);
      }
      for (const metric of new Set(rules.flatMap((r) => (r.condition.type === "anomaly" && r.metric ? [r.metric] : [])))) {
        const value = obs.readings[metric];
        if (value === undefined) continue;
        this.#detector(metric).push(value);
        touchedWindows.add(metric);
      }
      for (const rule of rules) {
        if (!obs.rules.includes(rule.id)) continue;
        const value = rule.metric === undefined ? undefined : obs.readings[rule.metric];
        if (rule.condition.type !== "absence" && value === undefined) continue;
        const state = this.#load(rule.id) ?? this.#fresh(rule);
        state.rule = rule;
        const holds = this.#holds(rule, state, obs, value, scores.get(`${rule.metric}:${rule.id}`));
        state.last_at = obs.at;
        if (value !== undefined) state.last_value = value;
        const shown = rule.condition.type === "anomaly" ? scores.get(`${rule.metric}:${rule.id}`) : value;
        const change = this.#step(device, state, holds, obs.at, shown, obs.id);
        if (change) outgoing.push(change);
        this.#save(state);
      }
    }
    for (const metric of touchedWindows) {
      this.ctx.storage.sql.exec(
        "INSERT OR REPLACE INTO windows (metric, size, values_json) VALUES (?, ?, ?)",
        metric,
        ANOMALY_WINDOW_MAX,
        JSON.stringify(this.#detector(metric).values),
      );
    }
    this.ctx.storage.sql.exec("DELETE FROM seen WHERE seq <= (SELECT MAX(seq) FROM seen) - ?", SEEN_KEPT);
    await this.#emit(outgoing);
    await this.#schedule();
    return { evaluated, changes: outgoing.length };
  }

  #fresh(rule: AlertRule): State {
    return {
      rule_id: rule.id,
      phase: "ok",
      since: null,
      last_at: null,
      last_value: null,
      alert: null,
      next_notify: null,
      escalate_at: null,
      rule,
    };
  }

  /** Whether the rule's condition holds for this reading (absence: data arrived, so it does not). */
  #holds(rule: AlertRule, state: State, obs: Observation, value: number | undefined, score: number | undefined): boolean {
    const c = rule.condition;
    switch (c.type) {
      case "threshold":
        return value !== undefined && compare(c.op, value, c.value);
      case "rate_of_change": {
        if (value === undefined || state.last_at === null || state.last_value === null || obs.at <= state.last_at) return false;
        const rate = ((value - state.last_value) / ((obs.at - state.last_at) / 1000)) * c.per_seconds;
        return compare(c.op, rate, c.value);
      }
      case "absence":
        return false;
      case "anomaly":
        return score !== undefined && score >= c.score;
    }
  }

  /** One step of the lifecycle; returns the message to publish when the alert changed. */
  #step(device: string, s: State, holds: boolean, now: number, value: number | undefined, cause?: string): EnvelopeOf<"alert"> | undefined {
    if (holds) {
      if (s.phase === "ok") {
        s.phase = "pending";
        s.since = now;
      }
      if (s.phase === "pending" && now - (s.since ?? now) >= s.rule.for_seconds * 1000) return this.#fire(device, s, now, value, cause);
      if ((s.phase === "active" || s.phase === "acknowledged") && s.alert && value !== undefined) s.alert.value = value;
      return undefined;
    }
    if (s.phase === "pending") {
      s.phase = "ok";
      s.since = null;
      return undefined;
    }
    if (s.phase === "active" || s.phase === "acknowledged") return this.#clear(s, now, cause);
    return undefined;
  }

  #fire(device: string, s: State, now: number, value: number | undefined, cause?: string): EnvelopeOf<"alert"> {
    const at = new Date(now).toISOString();
    const rule = s.rule;
    s.phase = "active";
    s.since = null;
    s.alert = {
      id: newMessageId(),
      rule_id: rule.id,
      rule_name: rule.name,
      device,
      status: "active",
      severity: rule.severity,
      metric: rule.metric,
      value,
      title: `${rule.name}: ${describe(rule.condition, rule.metric, value)} on ${device}`,
      started_at: at,
      updated_at: at,
      escalated: false,
      notifications: 1,
    };
    s.next_notify = rule.renotify_seconds ? now + rule.renotify_seconds * 1000 : null;
    s.escalate_at = rule.escalate_after_seconds ? now + rule.escalate_after_seconds * 1000 : null;
    return this.#message(s.alert, "fired", cause);
  }

  #clear(s: State, now: number, cause?: string): EnvelopeOf<"alert"> | undefined {
    const alert = s.alert;
    s.phase = "ok";
    s.alert = null;
    s.next_notify = null;
    s.escalate_at = null;
    if (!alert) return undefined;
    const at = new Date(now).toISOString();
    return this.#message({ ...alert, status: "cleared", cleared_at: at, updated_at: at }, "cleared", cause);
  }

  /** Acknowledges the rule's current alert (when it is the one named); stops re-notification and escalation. */
  async acknowledge(ruleId: string, alertId: string, by: string): Promise<Alert | undefined> {
    const s = this.#load(ruleId);
    if (!s?.alert || s.alert.id !== alertId) return undefined;
    if (s.phase === "acknowledged") return s.alert;
    const at = new Date().toISOString();
    s.phase = "acknowledged";
    s.alert = { ...s.alert, status: "acknowledged", acknowledged_at: at, acknowledged_by: by, updated_at: at };
    s.next_notify = null;
    s.escalate_at = null;
    this.#save(s);
    await this.#emit([this.#message(s.alert, "acknowledged")]);
    await this.#schedule();
    return s.alert;
  }

  /** The rules' states, for tests and the admin view. */
  async states(): Promise<{ rule_id: string; phase: Phase; alert: Alert | null }[]> {
    return this.ctx.storage.sql
      .exec<StateRow>("SELECT * FROM state ORDER BY rule_id")
      .toArray()
      .map((r) => ({ rule_id: r.rule_id, phase: r.phase, alert: r.alert ? (JSON.parse(r.alert) as Alert) : null }));
  }

  /** Timers: holds that ran their time, absence of data, re-notification and escalation. */
  /** A rule was deleted or disabled: its alerts clear now, as the alarm would clear them. */
  async recheck(): Promise<void> {
    await this.alarm();
  }

  override async alarm(): Promise<void> {
    await this.#flush();
    const now = Date.now();
    const device = this.#device();
    const rows = this.ctx.storage.sql.exec<{ rule_id: string }>("SELECT rule_id FROM state").toArray();
    // Rules may have changed or gone since the last reading: the timers follow the stored rules.
    const current = await rulesById(
      this.env.DB,
      rows.map((r) => r.rule_id),
    );
    const outgoing: EnvelopeOf<"alert">[] = [];
    for (const { rule_id } of rows) {
      const s = this.#load(rule_id);
      if (!s) continue;
      const rule = current.get(rule_id);
      if (!rule?.enabled) {
        const cleared = this.#clear(s, now);
        if (cleared) outgoing.push(cleared);
        this.ctx.storage.sql.exec("DELETE FROM state WHERE rule_id = ?", rule_id);
        continue;
      }
      s.rule = rule;
      const change = this.#due(device, s, now);
      if (change) outgoing.push(change);
      this.#save(s);
    }
    await this.#emit(outgoing);
    await this.#schedule();
  }

  #due(device: string, s: State, now: number): EnvelopeOf<"alert"> | undefined {
    const c = s.rule.condition;
    if (c.type === "absence" && s.last_at !== null && now - s.last_at >= c.seconds * 1000) {
      if (s.phase === "ok") {
        // The silence itself is the condition: it started `seconds` after the last reading.
        s.phase = "pending";
        s.since = s.last_at + c.seconds * 1000;
      }
      if (s.phase === "pending" && now - (s.since ?? now) >= s.rule.for_seconds * 1000) return this.#fire(device, s, now, undefined);
      return undefined;
    }
    if (s.phase === "pending" && s.since !== null && now - s.since >= s.rule.for_seconds * 1000 && c.type !== "absence") {
      // The condition held at the last reading and nothing said otherwise since.
      return this.#fire(device, s, now, s.last_value ?? undefined);
    }
    if (s.phase !== "active" || !s.alert) return undefined;
    if (s.escalate_at !== null && now >= s.escalate_at && !s.alert.escalated) {
      s.escalate_at = null;
      s.alert = {
        ...s.alert,
        severity: "critical",
        escalated: true,
        notifications: s.alert.notifications + 1,
        updated_at: new Date(now).toISOString(),
      };
      return this.#message(s.alert, "escalated");
    }
    if (s.next_notify !== null && now >= s.next_notify) {
      s.next_notify = s.rule.renotify_seconds ? now + s.rule.renotify_seconds * 1000 : null;
      s.alert = { ...s.alert, notifications: s.alert.notifications + 1, updated_at: new Date(now).toISOString() };
      return this.#message(s.alert, "renotified");
    }
    return undefined;
  }

  #nextDue(s: State): number | null {
    const times: number[] = [];
    const c = s.rule.condition;
    if (c.type === "absence" && s.last_at !== null && s.phase !== "active" && s.phase !== "acknowledged")
      times.push(s.last_at + (c.seconds + s.rule.for_seconds) * 1000);
    if (s.phase === "pending" && s.since !== null) times.push(s.since + s.rule.for_seconds * 1000);
    if (s.phase === "active") {
      if (s.escalate_at !== null) times.push(s.escalate_at);
      if (s.next_notify !== null) times.push(s.next_notify);
    }
    return times.length ? Math.min(...times) : null;
  }

  async #schedule(): Promise<void> {
    const rows = this.ctx.storage.sql.exec<StateRow>("SELECT * FROM state").toArray();
    let next: number | null = null;
    for (const row of rows) {
      const due = this.#nextDue({
        ...row,
        alert: row.alert ? (JSON.parse(row.alert) as Alert) : null,
        rule: JSON.parse(row.rule) as AlertRule,
      });
      if (due !== null && (next === null || due < next)) next = due;
    }
    const unsent = this.ctx.storage.sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM outbox").one().n;
    if (unsent > 0) next = Math.min(next ?? Number.POSITIVE_INFINITY, Date.now() + OUTBOX_RETRY_MS);
    if (next === null) await this.ctx.storage.deleteAlarm();
    else await this.ctx.storage.setAlarm(Math.max(next, Date.now() + 10));
  }

  #message(alert: Alert, transition: string, cause?: string): EnvelopeOf<"alert"> {
    const now = new Date().toISOString();
    return {
      // Stable per alert and transition, so a retried publish is the same message.
      id: `${alert.id}.${transition}.${alert.notifications}`,
      correlation_id: alert.id,
      ...(cause ? { causation_id: cause } : {}),
      source: "alert-manager",
      exchange: "alerts",
      routing_key: `alerts.${alert.severity}.${alert.device}`,
      type: "alert",
      timestamp: alert.updated_at,
      received_at: now,
      metadata: { transition, alert_id: alert.id },
      schema_version: 1,
      payload: {
        ...alert,
        severity: alert.severity,
        title: alert.title,
        status: alert.status,
        rule_id: alert.rule_id,
        device: alert.device,
        metric: alert.metric,
        value: alert.value,
        alert_id: alert.id,
        transition,
      },
    };
  }

  /**
   * An outbox: the messages are stored with the state change that made them (one synchronous
   * step), then sent; what fails to send is sent again by the alarm, so no transition is lost.
   */
  async #emit(messages: EnvelopeOf<"alert">[]): Promise<void> {
    for (const m of messages)
      this.ctx.storage.sql.exec("INSERT OR REPLACE INTO outbox (id, body, created) VALUES (?, ?, ?)", m.id, JSON.stringify(m), Date.now());
    await this.#flush();
  }

  /** One flush at a time: an evaluation and the alarm flushing together would both send the same rows. */
  #flush(): Promise<boolean> {
    const next = this.#flushing.then(() => this.#flushNow());
    this.#flushing = next.catch(() => false);
    return next;
  }

  async #flushNow(): Promise<boolean> {
    // Insertion order (rowid): the clock stands still inside one evaluation, so `created` ties
    // and a `fired` must not be overtaken by the `cleared` made in the same step.
    const pending = this.ctx.storage.sql
      .exec<{ id: string; body: string }>("SELECT id, body FROM outbox ORDER BY rowid")
      .toArray()
      .map((r) => JSON.parse(r.body) as EnvelopeOf<"alert">);
    if (pending.length === 0) return true;
    try {
      // D1 first: a notification never names an alert the API cannot show.
      for (const m of pending) await saveAlert(this.env.DB, alertOfPayload(m));
      await publish(this.env, pending);
      for (const m of pending) this.ctx.storage.sql.exec("DELETE FROM outbox WHERE id = ?", m.id);
      return true;
    } catch (error) {
      console.warn(JSON.stringify({ level: "warn", msg: "alert publish failed; the alarm retries", error: String(error) }));
      return false;
    }
  }
}
