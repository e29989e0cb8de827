-- Pipeline metrics (docs/metrics.md): counters and histogram buckets, added to by each isolate
-- in batches (shared/metrics.ts) and read by GET /metrics. One row a series: the metric name and
-- its labels already in Prometheus text form (`queue="sensors.temperature",le="0.1"`).
CREATE TABLE metric_counters (
  name TEXT NOT NULL,
  labels TEXT NOT NULL DEFAULT '',
  value REAL NOT NULL DEFAULT 0,
  updated_at TEXT NOT NULL,
  PRIMARY KEY (name, labels)
) WITHOUT ROWID;
