-- When each counter series was first written (docs/metrics.md): GET /metrics exposes the oldest
-- billable one as edgemesh_billable_since_timestamp_seconds, so the pipeline page and
-- `edgemesh cost` can turn the billable totals into a rate. Series older than this migration
-- keep NULL and are dated by their updated_at instead.
ALTER TABLE metric_counters ADD COLUMN created_at TEXT;
