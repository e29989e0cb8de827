/** Automations and their runs in D1 (infra/migrations/d1/0006_automations.sql). */
import type { Automation, AutomationInput, AutomationRun, Trigger } from "../schemas/automations";

interface Row {
  id: string;
  body: string;
  version: number;
  created_at: string;
  updated_at: string;
}

function automationOf(row: Row): Automation {
  return {
    ...(JSON.parse(row.body) as AutomationInput),
    id: row.id,
    version: row.version,
    created_at: row.created_at,
    updated_at: row.updated_at,
  };
}

export async function listAutomations(db: D1Database, trigger?: Trigger["type"]): Promise<Automation[]> {
  const { results } = trigger
    ? await db.prepare("SELECT * FROM automations WHERE enabled = 1 AND trigger_type = ? ORDER BY id LIMIT 1000").bind(trigger).all<Row>()
    : await db.prepare("SELECT * FROM automations ORDER BY id LIMIT 1000").all<Row>();
  return results.map(automationOf);
}

export async function getAutomation(db: D1Database, id: string): Promise<Automation | undefined> {
  const row = await db.prepare("SELECT * FROM automations WHERE id = ?").bind(id).first<Row>();
  return row ? automationOf(row) : undefined;
}

export async function saveAutomation(
  db: D1Database,
  id: string,
  input: AutomationInput,
  now: string,
  create: boolean,
): Promise<Automation | undefined> {
  const body = JSON.stringify(input);
  const enabled = input.enabled ? 1 : 0;
  const result = create
    ? await db
        .prepare(
          "INSERT INTO automations (id, name, enabled, trigger_type, body, version, created_at, updated_at) VALUES (?, ?, ?, ?, ?, 1, ?, ?)",
        )
        .bind(id, input.name, enabled, input.trigger.type, body, now, now)
        .run()
    : await db
        .prepare(
          "UPDATE automations SET name = ?, enabled = ?, trigger_type = ?, body = ?, version = version + 1, updated_at = ? WHERE id = ?",
        )
        .bind(input.name, enabled, input.trigger.type, body, now, id)
        .run();
  return result.meta.changes === 0 ? undefined : getAutomation(db, id);
}

export async function deleteAutomation(db: D1Database, id: string): Promise<boolean> {
  const result = await db.prepare("DELETE FROM automations WHERE id = ?").bind(id).run();
  return result.meta.changes > 0;
}

export async function findRun(db: D1Database, automationId: string, messageId: string): Promise<AutomationRun | undefined> {
  const row = await db
    .prepare("SELECT body FROM automation_runs WHERE automation_id = ? AND trigger_message_id = ?")
    .bind(automationId, messageId)
    .first<{ body: string }>();
  return row ? (JSON.parse(row.body) as AutomationRun) : undefined;
}

export async function recordRun(db: D1Database, run: AutomationRun): Promise<void> {
  await db
    .prepare(
      "INSERT OR IGNORE INTO automation_runs (id, automation_id, trigger_message_id, outcome, latency_ms, body, at) VALUES (?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(run.id, run.automation_id, run.trigger_message_id, run.outcome, run.latency_ms, JSON.stringify(run), run.at)
    .run();
}

export async function listRuns(db: D1Database, automationId: string, limit: number): Promise<AutomationRun[]> {
  const { results } = await db
    .prepare("SELECT body FROM automation_runs WHERE automation_id = ? ORDER BY at DESC, id DESC LIMIT ?")
    .bind(automationId, limit)
    .all<{ body: string }>();
  return results.map((r) => JSON.parse(r.body) as AutomationRun);
}

/**
 * Records whether a device's reading is past a threshold trigger; true when it just crossed.
 * One statement: two batches at once cannot both see the crossing (a row comes back only when
 * it was inserted or its state changed).
 */
export async function crossed(db: D1Database, automationId: string, device: string, holding: boolean): Promise<boolean> {
  const changed = await db
    .prepare(
      `INSERT INTO automation_edges (automation_id, device, holding) VALUES (?, ?, ?)
       ON CONFLICT (automation_id, device) DO UPDATE SET holding = excluded.holding WHERE automation_edges.holding != excluded.holding
       RETURNING holding`,
    )
    .bind(automationId, device, holding ? 1 : 0)
    .first<{ holding: number }>();
  return holding && changed !== null;
}

/** A run that failed before it was recorded: the crossing is taken back, so the retried message crosses again. */
export async function forgetCrossing(db: D1Database, automationId: string, device: string): Promise<void> {
  await db.prepare("UPDATE automation_edges SET holding = 0 WHERE automation_id = ? AND device = ?").bind(automationId, device).run();
}
