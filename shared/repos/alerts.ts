/** Alert rules and alerts in D1 (infra/migrations/d1/0005_alerts.sql), shared by the API, the consumers and the AlertActor. */
import type { Alert, AlertRule, AlertRuleInput, DeliveryStatus } from "../schemas/alerts";
import type { EnvelopeOf } from "../schemas/message";

interface RuleRow {
  id: string;
  body: string;
  version: number;
  created_at: string;
  updated_at: string;
}

function ruleOf(row: RuleRow): AlertRule {
  return {
    ...(JSON.parse(row.body) as AlertRuleInput),
    id: row.id,
    version: row.version,
    created_at: row.created_at,
    updated_at: row.updated_at,
  };
}

export async function listRules(db: D1Database, options: { enabledOnly?: boolean } = {}): Promise<AlertRule[]> {
  const sql = options.enabledOnly
    ? "SELECT * FROM alert_rules WHERE enabled = 1 ORDER BY id LIMIT 1000"
    : "SELECT * FROM alert_rules ORDER BY id LIMIT 1000";
  const { results } = await db.prepare(sql).all<RuleRow>();
  return results.map(ruleOf);
}

export async function getRule(db: D1Database, id: string): Promise<AlertRule | undefined> {
  const row = await db.prepare("SELECT * FROM alert_rules WHERE id = ?").bind(id).first<RuleRow>();
  return row ? ruleOf(row) : undefined;
}

export async function rulesById(db: D1Database, ids: readonly string[]): Promise<Map<string, AlertRule>> {
  if (ids.length === 0) return new Map();
  const { results } = await db
    .prepare(`SELECT * FROM alert_rules WHERE id IN (${ids.map(() => "?").join(",")})`)
    .bind(...ids)
    .all<RuleRow>();
  return new Map(results.map((r) => [r.id, ruleOf(r)]));
}

export async function insertRule(db: D1Database, id: string, input: AlertRuleInput, now: string): Promise<AlertRule> {
  await db
    .prepare("INSERT INTO alert_rules (id, name, enabled, body, version, created_at, updated_at) VALUES (?, ?, ?, ?, 1, ?, ?)")
    .bind(id, input.name, input.enabled ? 1 : 0, JSON.stringify(input), now, now)
    .run();
  return { ...input, id, version: 1, created_at: now, updated_at: now };
}

/** Replaces a rule's body; undefined when it does not exist (or changed since `version`). */
export async function replaceRule(
  db: D1Database,
  id: string,
  input: AlertRuleInput,
  now: string,
  version?: number,
): Promise<AlertRule | undefined> {
  const result = await db
    .prepare(
      `UPDATE alert_rules SET name = ?, enabled = ?, body = ?, version = version + 1, updated_at = ?
       WHERE id = ? ${version === undefined ? "" : "AND version = ?"}`,
    )
    .bind(input.name, input.enabled ? 1 : 0, JSON.stringify(input), now, id, ...(version === undefined ? [] : [version]))
    .run();
  return result.meta.changes === 0 ? undefined : getRule(db, id);
}

export async function deleteRule(db: D1Database, id: string): Promise<boolean> {
  const result = await db.prepare("DELETE FROM alert_rules WHERE id = ?").bind(id).run();
  return result.meta.changes > 0;
}

interface AlertRow {
  body: string;
  deliveries: string;
}

export type StoredAlert = Alert & { deliveries: DeliveryStatus[] };

function alertOf(row: AlertRow): StoredAlert {
  return { ...(JSON.parse(row.body) as Alert), deliveries: JSON.parse(row.deliveries) as DeliveryStatus[] };
}

/** Writes the alert's lifecycle state; keeps the delivery record the notifier wrote. */
export async function saveAlert(db: D1Database, alert: Alert): Promise<void> {
  await db
    .prepare(
      `INSERT INTO alerts (id, rule_id, device, status, severity, body, started_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (id) DO UPDATE SET status = excluded.status, severity = excluded.severity, body = excluded.body,
         updated_at = excluded.updated_at`,
    )
    .bind(alert.id, alert.rule_id, alert.device, alert.status, alert.severity, JSON.stringify(alert), alert.started_at, alert.updated_at)
    .run();
}

export async function getAlert(db: D1Database, id: string): Promise<StoredAlert | undefined> {
  const row = await db.prepare("SELECT body, deliveries FROM alerts WHERE id = ?").bind(id).first<AlertRow>();
  return row ? alertOf(row) : undefined;
}

export async function listAlerts(
  db: D1Database,
  filter: { status?: string; device?: string; rule_id?: string; limit: number },
): Promise<StoredAlert[]> {
  const where: string[] = [];
  const args: string[] = [];
  for (const [column, value] of [
    ["status", filter.status],
    ["device", filter.device],
    ["rule_id", filter.rule_id],
  ] as const) {
    if (value === undefined) continue;
    where.push(`${column} = ?`);
    args.push(value);
  }
  const { results } = await db
    .prepare(
      `SELECT body, deliveries FROM alerts ${where.length ? `WHERE ${where.join(" AND ")}` : ""} ORDER BY started_at DESC, id DESC LIMIT ?`,
    )
    .bind(...args, filter.limit)
    .all<AlertRow>();
  return results.map(alertOf);
}

/** Records one channel's outcome for one alert message, and on the alert. */
export async function recordDelivery(db: D1Database, messageId: string, alertId: string, delivery: DeliveryStatus): Promise<void> {
  await db.batch([
    db
      .prepare(
        `INSERT INTO alert_deliveries (message_id, channel, alert_id, status, attempts, error, at) VALUES (?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (message_id, channel) DO UPDATE SET status = excluded.status, attempts = excluded.attempts,
           error = excluded.error, at = excluded.at`,
      )
      .bind(messageId, delivery.channel, alertId, delivery.status, delivery.attempts, delivery.error ?? null, delivery.at),
    // The alert keeps the latest outcome per channel (the table above keeps one per message).
    db
      .prepare(
        `UPDATE alerts SET deliveries = (
           SELECT json_group_array(json(value)) FROM (
             SELECT value FROM json_each(alerts.deliveries) WHERE json_extract(value, '$.channel') <> ?
             UNION ALL SELECT ?))
         WHERE id = ?`,
      )
      .bind(delivery.channel, JSON.stringify(delivery), alertId),
  ]);
}

export async function deliveredChannels(db: D1Database, messageId: string): Promise<Set<number>> {
  const { results } = await db
    .prepare("SELECT channel FROM alert_deliveries WHERE message_id = ? AND status = 'delivered'")
    .bind(messageId)
    .all<{ channel: number }>();
  return new Set(results.map((r) => r.channel));
}

/** The alert an `alert` message of the AlertActor carries. */
export function alertOfPayload(m: EnvelopeOf<"alert">): Alert {
  const { alert_id, transition: _t, ...rest } = m.payload as Record<string, unknown>;
  return { ...(rest as unknown as Alert), id: String(alert_id ?? m.correlation_id) };
}
