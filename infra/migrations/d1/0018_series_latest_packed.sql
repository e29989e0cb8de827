-- The newest reading of each device and metric, packed (issue 13): ONE row per device holding
-- its metrics' newest readings as a JSON object {metric: [time, value, unit, room, message_id]},
-- instead of a row per device and metric. A consumer batch then writes 1 latest row per device
-- it touches (a meter's 4 metrics were 4 rows). `series_latest` stays, as a view, for every
-- reader (GET /v1/series/latest, seed 004's /api/v1/energy/latest).
CREATE TABLE series_latest_packed (
  device TEXT PRIMARY KEY,
  metrics TEXT NOT NULL
) WITHOUT ROWID;

INSERT INTO series_latest_packed (device, metrics)
SELECT device, json_group_object(metric, json_array(time, value, unit, room, message_id))
FROM series_latest GROUP BY device;
DROP TABLE series_latest;

CREATE VIEW series_latest AS
SELECT
  p.device AS device,
  m.key AS metric,
  m.value ->> 0 AS time,
  m.value ->> 1 AS value,
  m.value ->> 2 AS unit,
  m.value ->> 3 AS room,
  m.value ->> 4 AS message_id
FROM series_latest_packed p, json_each(p.metrics) m;
