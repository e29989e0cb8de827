/**
 * AutomationClock: the one Durable Object that runs schedule-triggered automations
 * (docs/automations.md) on its alarm — no polling, no cron granularity. It keeps each schedule
 * automation's next due time; the API tells it when automations change (`sync`), and each alarm
 * runs what is due and sets the alarm to the next due time. A run's trigger is a synthetic event
 * whose id is derived from the automation and the slot, so a repeated alarm runs a slot once.
 */
import { DurableObject } from "cloudflare:workers";
import { Cron } from "croner";
import { publish } from "../shared/bus/exchange";
import { derivedId } from "../shared/ids";
import { listAutomations } from "../shared/repos/automations";
import { type Automation, SCHEDULE_ROUTING_KEY, SCHEDULE_SOURCE } from "../shared/schemas/automations";
import type { EnvelopeOf } from "../shared/schemas/message";

type ScheduleTrigger = Extract<Automation["trigger"], { type: "schedule" }>;
type Scheduled = Automation & { trigger: ScheduleTrigger };

/** When a schedule is next due after `from` (ms); undefined when a cron expression has no further time. */
export function nextDue(trigger: ScheduleTrigger, from: number): number | undefined {
  if (trigger.every_seconds !== undefined) return from + trigger.every_seconds * 1000;
  if (trigger.cron === undefined) return undefined;
  const next = new Cron(trigger.cron, { paused: true, ...(trigger.timezone ? { timezone: trigger.timezone } : {}) }).nextRun(
    new Date(from),
  );
  return next ? next.getTime() : undefined;
}

function specOf(trigger: ScheduleTrigger): string {
  return JSON.stringify([trigger.every_seconds ?? null, trigger.cron ?? null, trigger.timezone ?? null]);
}

const isScheduled = (a: Automation): a is Scheduled => a.trigger.type === "schedule";

export class AutomationClock extends DurableObject<Env> {
  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    ctx.storage.sql.exec("CREATE TABLE IF NOT EXISTS due (automation_id TEXT PRIMARY KEY, spec TEXT NOT NULL, at INTEGER NOT NULL)");
  }

  /** Reads the schedule automations: new ones get their next time from now, gone ones are dropped. */
  async sync(): Promise<number> {
    const automations = (await listAutomations(this.env.DB, "schedule")).filter(isScheduled);
    const now = Date.now();
    const keep = new Set(automations.map((a) => a.id));
    for (const row of this.ctx.storage.sql.exec<{ automation_id: string }>("SELECT automation_id FROM due").toArray())
      if (!keep.has(row.automation_id)) this.ctx.storage.sql.exec("DELETE FROM due WHERE automation_id = ?", row.automation_id);
    for (const a of automations) {
      const next = nextDue(a.trigger, now);
      if (next === undefined) {
        this.ctx.storage.sql.exec("DELETE FROM due WHERE automation_id = ?", a.id);
        continue;
      }
      // A changed schedule takes effect from now; an unchanged one keeps its slot.
      this.ctx.storage.sql.exec(
        `INSERT INTO due (automation_id, spec, at) VALUES (?, ?, ?)
         ON CONFLICT (automation_id) DO UPDATE SET at = CASE WHEN spec = excluded.spec THEN at ELSE excluded.at END,
           spec = excluded.spec`,
        a.id,
        specOf(a.trigger),
        next,
      );
    }
    await this.#arm();
    return automations.length;
  }

  /** The next due times (for tests and the admin view). */
  async schedule(): Promise<{ automation_id: string; at: string }[]> {
    return this.ctx.storage.sql
      .exec<{ automation_id: string; at: number }>("SELECT automation_id, at FROM due ORDER BY at")
      .toArray()
      .map((r) => ({ automation_id: r.automation_id, at: new Date(r.at).toISOString() }));
  }

  override async alarm(): Promise<void> {
    const now = Date.now();
    const due = this.ctx.storage.sql
      .exec<{ automation_id: string; every_ms: number; at: number }>("SELECT * FROM due WHERE at <= ?", now)
      .toArray();
    if (due.length > 0) {
      const automations = new Map((await listAutomations(this.env.DB, "schedule")).map((a) => [a.id, a]));
      const ticks: EnvelopeOf<"event">[] = [];
      for (const slot of due) {
        const automation = automations.get(slot.automation_id);
        if (!automation || !isScheduled(automation)) {
          this.ctx.storage.sql.exec("DELETE FROM due WHERE automation_id = ?", slot.automation_id);
          continue;
        }
        // Missed slots (the object was away) are not run one by one: the next is after now.
        const next = nextDue(automation.trigger, Math.max(slot.at, now));
        if (next === undefined) this.ctx.storage.sql.exec("DELETE FROM due WHERE automation_id = ?", slot.automation_id);
        else this.ctx.storage.sql.exec("UPDATE due SET at = ? WHERE automation_id = ?", next, slot.automation_id);
        ticks.push(await this.#tick(automation, slot.at));
      }
      // Seed 001's route for automation triggers: home.schedule.clock.trigger → home.events.automations,
      // whose consumer runs the automation (queues/consumers/automations.ts), with its retries.
      if (ticks.length > 0) await publish(this.env, ticks);
    }
    await this.#arm();
  }

  async #tick(automation: Automation, slot: number): Promise<EnvelopeOf<"event">> {
    const at = new Date(slot).toISOString();
    const id = await derivedId("schedule", automation.id, String(slot));
    return {
      id,
      correlation_id: id,
      source: SCHEDULE_SOURCE,
      exchange: "home.events",
      routing_key: SCHEDULE_ROUTING_KEY,
      type: "event",
      timestamp: at,
      // The run's latency counts from the slot, so a late alarm shows.
      received_at: at,
      metadata: { automation_id: automation.id },
      schema_version: 1,
      payload: { event_type: "trigger", reason: "schedule" },
    };
  }

  async #arm(): Promise<void> {
    const next = this.ctx.storage.sql.exec<{ at: number | null }>("SELECT MIN(at) AS at FROM due").one().at;
    if (next === null) await this.ctx.storage.deleteAlarm();
    else await this.ctx.storage.setAlarm(next);
  }
}
