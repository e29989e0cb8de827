-- The series store on D1 (the embedded default when no HYPERDRIVE binding is configured).
-- The same tables as infra/migrations/postgres/, with times as integer milliseconds since the
-- epoch (bucketing is integer arithmetic) and tags as JSON text. docs/series.md explains them.

-- One row a reading. The key is what makes writes idempotent: a redelivered or replayed message
-- has the same device, metric names, time and id, so INSERT OR IGNORE skips it. Its order
-- (device, metric, time) also serves the per-device range queries.
CREATE TABLE readings (
  time INTEGER NOT NULL,
  device TEXT NOT NULL,
  metric TEXT NOT NULL,
  value REAL NOT NULL,
  unit TEXT NOT NULL DEFAULT '',
  message_id TEXT NOT NULL,
  room TEXT,
  tags TEXT NOT NULL DEFAULT '{}',
  PRIMARY KEY (device, metric, time, message_id)
) WITHOUT ROWID;
CREATE INDEX readings_metric_time ON readings (metric, time);
CREATE INDEX readings_room_metric_time ON readings (room, metric, time) WHERE room IS NOT NULL;
CREATE INDEX readings_time ON readings (time);

-- Hourly and daily rollups: partial aggregates that merge (count, sum, min, max, last), one
-- row per bucket, device, metric and room. Recomputed by the cron for hours written since.
CREATE TABLE readings_hourly (
  bucket INTEGER NOT NULL,
  device TEXT NOT NULL,
  metric TEXT NOT NULL,
  room TEXT,
  unit TEXT NOT NULL,
  count INTEGER NOT NULL,
  sum REAL NOT NULL,
  min REAL NOT NULL,
  max REAL NOT NULL,
  last_time INTEGER NOT NULL,
  last_value REAL NOT NULL
);
CREATE INDEX readings_hourly_metric ON readings_hourly (metric, bucket);
CREATE INDEX readings_hourly_device ON readings_hourly (device, metric, bucket);
CREATE INDEX readings_hourly_bucket ON readings_hourly (bucket);

CREATE TABLE readings_daily (
  bucket INTEGER NOT NULL,
  device TEXT NOT NULL,
  metric TEXT NOT NULL,
  room TEXT,
  unit TEXT NOT NULL,
  count INTEGER NOT NULL,
  sum REAL NOT NULL,
  min REAL NOT NULL,
  max REAL NOT NULL,
  last_time INTEGER NOT NULL,
  last_value REAL NOT NULL
);
CREATE INDEX readings_daily_metric ON readings_daily (metric, bucket);
CREATE INDEX readings_daily_device ON readings_daily (device, metric, bucket);
CREATE INDEX readings_daily_bucket ON readings_daily (bucket);

-- Hours the sink wrote to since the last rollup run (late readings included).
CREATE TABLE series_dirty_hours (hour INTEGER PRIMARY KEY);

-- `rolled_until`: the rollups are complete before this time.
CREATE TABLE series_state (key TEXT PRIMARY KEY, value INTEGER NOT NULL);

-- The newest reading of each device and metric, kept by the sink (GET /v1/series/latest and
-- seed 004's /api/v1/energy/latest answer from it without scanning the readings).
CREATE TABLE series_latest (
  device TEXT NOT NULL,
  metric TEXT NOT NULL,
  time INTEGER NOT NULL,
  value REAL NOT NULL,
  unit TEXT NOT NULL,
  room TEXT,
  message_id TEXT NOT NULL,
  PRIMARY KEY (device, metric)
) WITHOUT ROWID;

-- Seed 004's energy_readings table, as a view over the readings of its energy meters.
CREATE VIEW energy_readings AS
SELECT
  strftime('%Y-%m-%dT%H:%M:%fZ', time / 1000.0, 'unixepoch') AS "timestamp",
  device AS device_id,
  max(CASE WHEN metric = 'total_energy_kwh' THEN value END) AS total_energy_kwh,
  max(CASE WHEN metric = 'power_kw' THEN (CASE WHEN unit = 'W' THEN value / 1000.0 ELSE value END) END) AS power_kw,
  max(CASE WHEN metric = 'voltage' THEN value END) AS voltage,
  max(CASE WHEN metric = 'current' THEN value END) AS "current"
FROM readings
WHERE metric IN ('total_energy_kwh', 'power_kw', 'voltage', 'current')
GROUP BY time, device;
