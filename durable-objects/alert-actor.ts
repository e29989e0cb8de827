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
import { type AnalysisBatch, Baselines } from "../shared/analysis";
import { sqlBaselineStore } from "../shared/analysis-store";
import { RollingDetector } from "../shared/anomaly";
import { publish } from "../shared/bus/exchange";
import { log } from "../shared/log";
import { alertOfPayload, rulesById, saveAlert } from "../shared/repos/alerts";
import type { Alert, AlertRule } from "../shared/schemas/alerts";
import type { Envelope, EnvelopeOf } from "../shared/schemas/message";
import type { Observation, Phase, State } from "./alert-actor/rules";
import * as machine from "./alert-actor/rules";
import { ActorStore } from "./alert-actor/store";

export type { Observation } from "./alert-actor/rules";

const OUTBOX_RETRY_MS = 5_000;
const ANOMALY_WINDOW_MAX = 500;

export class AlertActor extends DurableObject<Env> {
  #flushing: Promise<boolean> = Promise.resolve(true);
  #detectors = new Map<string, RollingDetector>();
  readonly #store: ActorStore;
  #deviceKnown = false;
  /** The alarm as last set by this instance (undefined: not known yet). */
  #alarmAt: number | null | undefined;
  /** The default analysis on the stream (docs/ai.md): baselines in memory, stored lazily. */
  #baselines: Baselines | undefined;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.#store = new ActorStore(ctx.storage.sql);
  }

  #device(): string {
    return this.ctx.storage.sql.exec<{ value: string }>("SELECT value FROM meta WHERE key = 'device'").toArray()[0]?.value ?? "";
  }

  #analysis(): Baselines {
    this.#baselines ??= new Baselines(sqlBaselineStore(this.ctx.storage.sql));
    return this.#baselines;
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

  /**
   * Evaluates the rules on a device's new readings, in order; messages seen before are skipped.
   * `analysis`: the same batch's readings for the default analysis (shared/analysis.ts).
   */
  async evaluate(
    device: string,
    rules: AlertRule[],
    observations: Observation[],
    analysis?: AnalysisBatch,
  ): Promise<{ evaluated: number; changes: number }> {
    if (!this.#deviceKnown) this.ctx.storage.sql.exec("INSERT OR IGNORE INTO meta (key, value) VALUES ('device', ?)", device);
    this.#deviceKnown = true;
    const analysed = analysis ? this.#analysis().observe(device, analysis) : undefined;
    const outgoing: Envelope[] = [
      ...(analysed?.transitions.map((t) => machine.message(t.alert, t.transition, t.cause)) ?? []),
      ...(analysed?.results ?? []),
    ];
    if (observations.length === 0 && outgoing.length === 0) return { evaluated: 0, changes: 0 };
    const states = this.#store.states();
    const ids: string[] = [];
    const touched = new Map<string, State>();
    const touchedWindows = new Set<string>();
    for (const obs of observations) {
      if (this.#store.seen(obs.id) || ids.includes(obs.id)) continue;
      ids.push(obs.id);
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
        const state = states.get(rule.id) ?? machine.fresh(rule);
        state.rule = rule;
        const holds = machine.holds(rule, state, obs, value, scores.get(`${rule.metric}:${rule.id}`));
        state.last_at = obs.at;
        if (value !== undefined) state.last_value = value;
        const shown = rule.condition.type === "anomaly" ? scores.get(`${rule.metric}:${rule.id}`) : value;
        const change = machine.step(device, state, holds, obs.at, shown, obs.id);
        if (change) outgoing.push(change);
        this.#store.persist(state);
        touched.set(rule.id, state);
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
    // In the same synchronous step as the states and the outbox: one transaction.
    this.#store.commit(ids, touched.values());
    await this.#emit(outgoing);
    await this.#schedule();
    return { evaluated: ids.length, changes: outgoing.length };
  }

  /** Acknowledges the rule's current alert (when it is the one named); stops re-notification and escalation. */
  async acknowledge(ruleId: string, alertId: string, by: string): Promise<Alert | undefined> {
    const s = this.#store.states().get(ruleId);
    if (!s) {
      // An alert of the default analysis (its state is the metric's baseline, not a rule's row).
      const acked = this.#analysis().acknowledge(alertId, by);
      if (acked) await this.#emit([machine.message(acked.alert, "acknowledged")]);
      return acked?.alert;
    }
    if (!s.alert || s.alert.id !== alertId) return undefined;
    if (s.phase === "acknowledged") return s.alert;
    const at = new Date().toISOString();
    s.phase = "acknowledged";
    s.alert = { ...s.alert, status: "acknowledged", acknowledged_at: at, acknowledged_by: by, updated_at: at };
    s.next_notify = null;
    s.escalate_at = null;
    this.#store.persist(s);
    await this.#emit([machine.message(s.alert, "acknowledged")]);
    await this.#schedule();
    return s.alert;
  }

  /** The rules' states, for tests and the admin view. */
  async states(): Promise<{ rule_id: string; phase: Phase; alert: Alert | null }[]> {
    return [...this.#store.states().values()]
      .sort((a, b) => (a.rule_id < b.rule_id ? -1 : a.rule_id > b.rule_id ? 1 : 0))
      .map((s) => ({ rule_id: s.rule_id, phase: s.phase, alert: s.alert }));
  }

  /** Timers: holds that ran their time, absence of data, re-notification and escalation. */
  /** A rule was deleted or disabled: its alerts clear now, as the alarm would clear them. */
  async recheck(): Promise<void> {
    await this.alarm();
  }

  override async alarm(): Promise<void> {
    // Fired, it is gone (or due now); called by recheck(), it is still set.
    const set = await this.ctx.storage.getAlarm();
    this.#alarmAt = set !== null && set > Date.now() ? set : null;
    await this.#flush();
    const now = Date.now();
    const device = this.#device();
    const states = this.#store.states();
    // Rules may have changed or gone since the last reading: the timers follow the stored rules.
    const analysed = this.#analysis().openAlerts();
    const current = await rulesById(this.env.DB, [...new Set([...states.keys(), ...analysed.map((a) => a.rule_id)])]);
    // The default analysis' open alerts clear when the rule that set them went or was disabled.
    const outgoing: EnvelopeOf<"alert">[] = this.#analysis()
      .retire((a) => !current.get(a.rule_id)?.enabled, now)
      .map((t) => machine.message(t.alert, t.transition));
    for (const [rule_id, s] of [...states]) {
      const rule = current.get(rule_id);
      if (!rule?.enabled) {
        const cleared = machine.clear(s, now);
        if (cleared) outgoing.push(cleared);
        this.#store.remove(rule_id);
        continue;
      }
      s.rule = rule;
      const change = machine.due(device, s, now);
      if (change) outgoing.push(change);
      this.#store.persist(s);
    }
    await this.#emit(outgoing);
    await this.#schedule();
  }

  async #schedule(): Promise<void> {
    let next: number | null = null;
    for (const s of this.#store.states().values()) {
      const due = machine.nextDue(s);
      if (due !== null && (next === null || due < next)) next = due;
    }
    const unsent = this.ctx.storage.sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM outbox").one().n;
    if (unsent > 0) next = Math.min(next ?? Number.POSITIVE_INFINITY, Date.now() + OUTBOX_RETRY_MS);
    if (next !== null) next = Math.max(next, Date.now() + 10);
    // The alarm is storage too: set only when it must come sooner. A later one (an absence timer
    // pushed back by each reading) is left; it wakes the actor, which finds nothing due and sets
    // the next — one wake-up per absence window instead of a write per reading.
    this.#alarmAt ??= await this.ctx.storage.getAlarm();
    if (next === null) {
      // Nothing is due any more (a state change, not a reading): the alarm goes.
      if (this.#alarmAt !== null) await this.ctx.storage.deleteAlarm();
    } else if (this.#alarmAt === null || next < this.#alarmAt) await this.ctx.storage.setAlarm(next);
    else return;
    this.#alarmAt = next;
  }

  /**
   * An outbox: the messages are stored with the state change that made them (one synchronous
   * step), then sent; what fails to send is sent again by the alarm, so no transition is lost.
   */
  async #emit(messages: Envelope[]): Promise<void> {
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
      .map((r) => JSON.parse(r.body) as Envelope);
    if (pending.length === 0) return true;
    try {
      // D1 first: a notification never names an alert the API cannot show. (The default analysis'
      // results on the `ai` exchange share the outbox, so no verdict change is lost either.)
      for (const m of pending) if (m.type === "alert") await saveAlert(this.env.DB, alertOfPayload(m));
      await publish(this.env, pending);
      for (const m of pending) this.ctx.storage.sql.exec("DELETE FROM outbox WHERE id = ?", m.id);
      return true;
    } catch (error) {
      log("warn", "alert publish failed; the alarm retries", { error: String(error) });
      return false;
    }
  }
}
