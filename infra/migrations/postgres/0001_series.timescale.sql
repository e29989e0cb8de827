-- The series store on TimescaleDB: applied instead of 0001_series.sql when the server has the
-- timescaledb extension (infra/postgres/migrate.ts creates it first). The tables and columns the
-- Worker reads are the same as on plain PostgreSQL; the rollups are continuous aggregates.
--
-- NOT EXERCISED BY CI: Debian has no timescaledb package, so the tests run the plain variant.
-- Check it by hand against a TimescaleDB server before relying on it (docs/series.md).

CREATE TABLE readings (
  time timestamptz NOT NULL,
  device text NOT NULL,
  metric text NOT NULL,
  value double precision NOT NULL,
  unit text NOT NULL DEFAULT '',
  message_id text NOT NULL,
  room text,
  tags jsonb NOT NULL DEFAULT '{}',
  -- TimescaleDB requires the partitioning column (time) in every unique index.
  PRIMARY KEY (device, metric, time, message_id)
);
SELECT create_hypertable('readings', 'time', chunk_time_interval => INTERVAL '1 day');
CREATE INDEX readings_metric_time ON readings (metric, time);
CREATE INDEX readings_room_metric_time ON readings (room, metric, time) WHERE room IS NOT NULL;

-- Materialized only: the Worker reads raw readings itself for whatever is not rolled up yet,
-- exactly as with the rollup tables, and refreshes these from its cron for the hours written.
CREATE MATERIALIZED VIEW readings_hourly WITH (timescaledb.continuous, timescaledb.materialized_only = true) AS
SELECT time_bucket(INTERVAL '1 hour', time) AS bucket, device, metric, room, max(unit) AS unit,
  count(*) AS count, sum(value) AS sum, min(value) AS min, max(value) AS max,
  max(time) AS last_time, last(value, time) AS last_value
FROM readings
GROUP BY bucket, device, metric, room
WITH NO DATA;
CREATE INDEX readings_hourly_metric ON readings_hourly (metric, bucket);
CREATE INDEX readings_hourly_device ON readings_hourly (device, metric, bucket);

CREATE MATERIALIZED VIEW readings_daily WITH (timescaledb.continuous, timescaledb.materialized_only = true) AS
SELECT time_bucket(INTERVAL '1 day', time) AS bucket, device, metric, room, max(unit) AS unit,
  count(*) AS count, sum(value) AS sum, min(value) AS min, max(value) AS max,
  max(time) AS last_time, last(value, time) AS last_value
FROM readings
GROUP BY bucket, device, metric, room
WITH NO DATA;
CREATE INDEX readings_daily_metric ON readings_daily (metric, bucket);
CREATE INDEX readings_daily_device ON readings_daily (device, metric, bucket);

CREATE TABLE series_dirty_hours (hour timestamptz PRIMARY KEY);

CREATE TABLE series_state (key text PRIMARY KEY, value timestamptz NOT NULL);

CREATE TABLE series_latest (
  device text NOT NULL,
  metric text NOT NULL,
  time timestamptz NOT NULL,
  value double precision NOT NULL,
  unit text NOT NULL,
  room text,
  message_id text NOT NULL,
  PRIMARY KEY (device, metric)
);

CREATE VIEW energy_readings AS
SELECT
  time AS "timestamp",
  device AS device_id,
  max(value) FILTER (WHERE metric = 'total_energy_kwh') AS total_energy_kwh,
  max(CASE WHEN unit = 'W' THEN value / 1000 ELSE value END) FILTER (WHERE metric = 'power_kw') AS power_kw,
  max(value) FILTER (WHERE metric = 'voltage') AS voltage,
  max(value) FILTER (WHERE metric = 'current') AS "current"
FROM readings
WHERE metric IN ('total_energy_kwh', 'power_kw', 'voltage', 'current')
GROUP BY time, device;
