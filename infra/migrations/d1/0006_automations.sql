-- Automations (seed 000 flow 3; docs/automations.md): the body is the JSON that
-- shared/schemas/automations.ts validated; `trigger_type` is what the consumers filter on.
CREATE TABLE automations (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  enabled INTEGER NOT NULL DEFAULT 1,
  trigger_type TEXT NOT NULL,
  body TEXT NOT NULL,
  version INTEGER NOT NULL DEFAULT 1,
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL
);
CREATE INDEX automations_trigger ON automations (enabled, trigger_type);

-- One row per automation and trigger message: a redelivered trigger finds its run and does not act twice.
CREATE TABLE automation_runs (
  id TEXT PRIMARY KEY,
  automation_id TEXT NOT NULL,
  trigger_message_id TEXT NOT NULL,
  outcome TEXT NOT NULL,
  latency_ms REAL NOT NULL,
  body TEXT NOT NULL,
  at TEXT NOT NULL,
  UNIQUE (automation_id, trigger_message_id)
);
CREATE INDEX automation_runs_automation_at ON automation_runs (automation_id, at);

-- Threshold triggers fire on the crossing: whether the last reading of a device was past it.
CREATE TABLE automation_edges (
  automation_id TEXT NOT NULL,
  device TEXT NOT NULL,
  holding INTEGER NOT NULL,
  PRIMARY KEY (automation_id, device)
) WITHOUT ROWID;
