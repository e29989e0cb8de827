-- The series store on plain PostgreSQL (14 or later, for date_bin). When the server has the
-- timescaledb extension, 0001_series.timescale.sql is applied instead (infra/postgres/migrate.ts
-- picks the variant); the tables and columns the Worker reads are the same in both.
-- docs/series.md explains every table.

-- One row a reading. The key makes writes idempotent (ON CONFLICT DO NOTHING): a redelivered
-- or replayed message has the same device, metric names, time and id. Time is in the key
-- because TimescaleDB requires the partitioning column in every unique index; it is the
-- message's own timestamp, so it is the same on every delivery.
CREATE TABLE readings (
  time timestamptz NOT NULL,
  device text NOT NULL,
  metric text NOT NULL,
  value double precision NOT NULL,
  unit text NOT NULL DEFAULT '',
  message_id text NOT NULL,
  room text,
  tags jsonb NOT NULL DEFAULT '{}',
  PRIMARY KEY (device, metric, time, message_id)
);
CREATE INDEX readings_metric_time ON readings (metric, time);
CREATE INDEX readings_room_metric_time ON readings (room, metric, time) WHERE room IS NOT NULL;
CREATE INDEX readings_time ON readings USING brin (time);

-- Hourly and daily rollups: partial aggregates that merge (count, sum, min, max, last), one row
-- per bucket, device, metric and room; recomputed by the Worker's cron for the hours written.
CREATE TABLE readings_hourly (
  bucket timestamptz NOT NULL,
  device text NOT NULL,
  metric text NOT NULL,
  room text,
  unit text NOT NULL,
  count bigint NOT NULL,
  sum double precision NOT NULL,
  min double precision NOT NULL,
  max double precision NOT NULL,
  last_time timestamptz NOT NULL,
  last_value double precision NOT NULL
);
CREATE INDEX readings_hourly_metric ON readings_hourly (metric, bucket);
CREATE INDEX readings_hourly_device ON readings_hourly (device, metric, bucket);
CREATE INDEX readings_hourly_bucket ON readings_hourly (bucket);

CREATE TABLE readings_daily (LIKE readings_hourly INCLUDING ALL);

-- Hours the sink wrote to since the last rollup run (late readings included).
CREATE TABLE series_dirty_hours (hour timestamptz PRIMARY KEY);

-- `rolled_until`: the rollups are complete before this time.
CREATE TABLE series_state (key text PRIMARY KEY, value timestamptz NOT NULL);

-- The newest reading of each device and metric, kept by the sink.
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

-- Seed 004's SQL uses TimescaleDB's time_bucket(); on plain PostgreSQL the same call is date_bin
-- from TimescaleDB's default origin (a Monday, 2000-01-03), so the seed's Grafana query runs here
-- unchanged. Not created when TimescaleDB is there (the .timescale variant of this file).
CREATE FUNCTION time_bucket(bucket_width interval, ts timestamptz) RETURNS timestamptz
  LANGUAGE sql IMMUTABLE PARALLEL SAFE
  RETURN date_bin(bucket_width, ts, timestamptz '2000-01-03 00:00:00+00');

-- Seed 004's energy_readings table, as a view over the readings of its energy meters: one row
-- per meter message. Power that the transformer normalized to watts is shown in kW again.
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
