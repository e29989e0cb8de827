/**
 * Where a device's AlertActor keeps the default analysis' baselines (shared/analysis.ts): one row
 * per metric in the actor's own SQLite storage, written lazily (PERSIST_MS after the metric's last
 * write, and when its verdict changes), never per reading. docs/ai.md has the cost.
 */
import type { BaselineStore, StoredBaseline } from "./analysis";

export const BASELINES_SCHEMA = "CREATE TABLE IF NOT EXISTS baselines (metric TEXT PRIMARY KEY, body TEXT NOT NULL, alert_id TEXT)";

export function sqlBaselineStore(sql: SqlStorage): BaselineStore {
  sql.exec(BASELINES_SCHEMA);
  return {
    load(metric) {
      const row = sql.exec<{ body: string }>("SELECT body FROM baselines WHERE metric = ?", metric).toArray()[0];
      if (!row) return undefined;
      try {
        return JSON.parse(row.body) as unknown;
      } catch {
        return undefined;
      }
    },
    save(metric, baseline: StoredBaseline) {
      sql.exec(
        "INSERT OR REPLACE INTO baselines (metric, body, alert_id) VALUES (?, ?, ?)",
        metric,
        JSON.stringify(baseline),
        baseline.alert?.id ?? null,
      );
    },
    open() {
      return sql
        .exec<{ metric: string }>("SELECT metric FROM baselines WHERE alert_id IS NOT NULL")
        .toArray()
        .map((r) => r.metric);
    },
    find(alertId) {
      return sql.exec<{ metric: string }>("SELECT metric FROM baselines WHERE alert_id = ?", alertId).toArray()[0]?.metric;
    },
  };
}
