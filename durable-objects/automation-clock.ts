/**
 * AutomationClock: the one Durable Object that runs schedule-triggered automations
 * (docs/automations.md) on its alarm — no polling, no cron granularity. It keeps each schedule
 * automation's next due time; the API tells it when automations change (`sync`), and each alarm
 * runs what is due and sets the alarm to the next due time. A run's trigger is a synthetic event
 * whose id is derived from the automation and the slot, so a repeated alarm runs a slot once.
 */
import { DurableObject } from "cloudflare:workers";
import { runAutomation } from "../queues/automations";
import { listAutomations } from "../shared/automation-store";
import { derivedId } from "../shared/ids";
import type { Automation } from "../shared/schemas/automations";
import type { EnvelopeOf } from "../shared/schemas/message";

export type AutomationClockApi = Pick<AutomationClock, "sync" | "schedule">;

export function clockStub(env: Env): AutomationClockApi {
  return env.AUTOMATION_CLOCK.getByName("clock") as unknown as AutomationClockApi;
}

type Scheduled = Automation & { trigger: { type: "schedule"; every_seconds: number } };

const isScheduled = (a: Automation): a is Scheduled => a.trigger.type === "schedule";

export class AutomationClock extends DurableObject<Env> {
  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    ctx.storage.sql.exec("CREATE TABLE IF NOT EXISTS due (automation_id TEXT PRIMARY KEY, every_ms INTEGER NOT NULL, at INTEGER NOT NULL)");
  }

  /** Reads the schedule automations: new ones are due one interval from now, gone ones are dropped. */
  async sync(): Promise<number> {
    const automations = (await listAutomations(this.env.DB, "schedule")).filter(isScheduled);
    const now = Date.now();
    const keep = new Set(automations.map((a) => a.id));
    for (const row of this.ctx.storage.sql.exec<{ automation_id: string }>("SELECT automation_id FROM due").toArray())
      if (!keep.has(row.automation_id)) this.ctx.storage.sql.exec("DELETE FROM due WHERE automation_id = ?", row.automation_id);
    for (const a of automations) {
      const every = a.trigger.every_seconds * 1000;
      // A changed interval takes effect from now; an unchanged one keeps its slot.
      this.ctx.storage.sql.exec(
        `INSERT INTO due (automation_id, every_ms, at) VALUES (?, ?, ?)
         ON CONFLICT (automation_id) DO UPDATE SET at = CASE WHEN every_ms = excluded.every_ms THEN at ELSE excluded.at END,
           every_ms = excluded.every_ms`,
        a.id,
        every,
        now + every,
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
      for (const slot of due) {
        const automation = automations.get(slot.automation_id);
        // Missed slots (the object was away) are not run one by one: the next is one interval on.
        const next = Math.max(slot.at + slot.every_ms, now + 1000);
        this.ctx.storage.sql.exec("UPDATE due SET at = ? WHERE automation_id = ?", next, slot.automation_id);
        if (!automation) continue;
        await runAutomation(this.env, automation, await this.#tick(automation, slot.at));
      }
    }
    await this.#arm();
  }

  async #tick(automation: Automation, slot: number): Promise<EnvelopeOf<"event">> {
    const at = new Date(slot).toISOString();
    const id = await derivedId("schedule", automation.id, String(slot));
    return {
      id,
      correlation_id: id,
      source: "scheduler",
      exchange: "home.events",
      routing_key: "home.schedule.clock.trigger",
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
