-- Alert rules (seed 003's POST /api/monitoring/alert_rules) and the alerts they raise
-- (docs/alerts.md). The rule body is the JSON that shared/schemas/alerts.ts validated; the
-- columns beside it are what queries filter on.
CREATE TABLE alert_rules (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  enabled INTEGER NOT NULL DEFAULT 1,
  body TEXT NOT NULL,
  version INTEGER NOT NULL DEFAULT 1,
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL
);
CREATE INDEX alert_rules_enabled ON alert_rules (enabled);

-- One row per alert (an episode of one rule on one device), written by the device's AlertActor,
-- which owns the lifecycle; `deliveries` is the notifier's record per channel.
CREATE TABLE alerts (
  id TEXT PRIMARY KEY,
  rule_id TEXT NOT NULL,
  device TEXT NOT NULL,
  status TEXT NOT NULL,
  severity TEXT NOT NULL,
  body TEXT NOT NULL,
  deliveries TEXT NOT NULL DEFAULT '[]',
  started_at TEXT NOT NULL,
  updated_at TEXT NOT NULL
);
CREATE INDEX alerts_status_started ON alerts (status, started_at);
CREATE INDEX alerts_rule_device ON alerts (rule_id, device);

-- Which alert message reached which channel: a redelivered message skips what was delivered.
CREATE TABLE alert_deliveries (
  message_id TEXT NOT NULL,
  channel INTEGER NOT NULL,
  alert_id TEXT NOT NULL,
  status TEXT NOT NULL,
  attempts INTEGER NOT NULL,
  error TEXT,
  at TEXT NOT NULL,
  PRIMARY KEY (message_id, channel)
) WITHOUT ROWID;
