-- Readings packed (issue 13): ONE row per device and 10-minute block holding all its readings
-- there, instead of a row (and three index entries) per reading. A batch of a meter's messages
-- costs one row written per block it touches (plus the latest values and the rollup marks), and
-- a stored reading ~40-60 bytes instead of ~510. docs/series.md has the figures.
--
-- `readings` is a JSON object keyed by message id, so a write merges with json_patch and a
-- redelivered or replayed message replaces its own entry with the same content: idempotent on
-- the message id. Each entry: [room, [[offset_ms, metric, value, unit], ...]], offset_ms from
-- the block's start. Tags are not kept in D1 (no query reads them; the archive and PostgreSQL
-- keep the whole message).
--
-- `part`: a block row is sealed at ~1 MB (D1 rows hold 2 MB) and the block continues in part + 1,
-- so a device sending many readings a second never outgrows a row. Writes go to the newest part
-- and skip messages an older part holds (shared/series/d1.ts), so idempotency spans the parts.
DROP VIEW energy_readings;
ALTER TABLE readings RENAME TO readings_v1;

CREATE TABLE reading_blocks (
  device TEXT NOT NULL,
  block INTEGER NOT NULL,
  part INTEGER NOT NULL DEFAULT 0,
  readings TEXT NOT NULL,
  PRIMARY KEY (device, block, part)
) WITHOUT ROWID;
CREATE INDEX reading_blocks_block ON reading_blocks (block);

INSERT INTO reading_blocks (device, block, readings)
SELECT device, block, json_group_object(message_id, json(entry))
FROM (
  SELECT device, block, message_id, json_array(max(room), json_group_array(json_array(time - block, metric, value, unit))) AS entry
  FROM (SELECT time - time % 600000 AS block, * FROM readings_v1)
  GROUP BY device, block, message_id
)
GROUP BY device, block;
DROP TABLE readings_v1;

-- The readings one per row, as before: every query of the series store (and seed 004's view)
-- reads them here. Queries bound `block` as well as `time`, so only the blocks of the range are
-- unpacked (shared/series/d1.ts).
CREATE VIEW readings AS
SELECT
  b.block + (r.value ->> 0) AS time,
  b.device AS device,
  r.value ->> 1 AS metric,
  r.value ->> 2 AS value,
  r.value ->> 3 AS unit,
  m.key AS message_id,
  m.value ->> 0 AS room,
  '{}' AS tags,
  b.block AS block
FROM reading_blocks b, json_each(b.readings) m, json_each(m.value, '$[1]') r;

-- Seed 004's energy_readings table, as a view over the readings of its energy meters (as 0004).
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
