-- Seed 002's message repository, lean (issue 13): ONE row a message, its processing steps packed
-- into a JSON array ([queue, status, at, detail] each) instead of a row a step. A new message
-- costs 2 rows written (the table — WITHOUT ROWID, so its key is the table — and the received_at
-- index); a step added later (another queue's delivery, a retry, a dead letter, a replay) updates
-- that row in place (1 row written, no index touched). Lookups:
--   by id: the primary key (id, source) — ids are unique per sender, not globally;
--   by correlation id: the key when the correlation id is the message's own id (most readings),
--     else the partial index, which only messages of a longer flow write;
--   by device/type/time and pruning: the received_at index.
CREATE TABLE message_log (
  id TEXT NOT NULL,
  source TEXT NOT NULL,
  correlation_id TEXT NOT NULL,
  type TEXT NOT NULL,
  exchange TEXT NOT NULL,
  routing_key TEXT NOT NULL,
  timestamp TEXT NOT NULL,
  received_at TEXT NOT NULL,
  steps TEXT NOT NULL DEFAULT '[]',
  PRIMARY KEY (id, source)
) WITHOUT ROWID;
CREATE INDEX message_log_received ON message_log (received_at);
CREATE INDEX message_log_correlation ON message_log (correlation_id) WHERE correlation_id <> id;

INSERT INTO message_log (id, source, correlation_id, type, exchange, routing_key, timestamp, received_at, steps)
  SELECT m.id, m.source, m.correlation_id, m.type, m.exchange, m.routing_key, m.timestamp, m.received_at,
    COALESCE((SELECT json_group_array(json_array(e.queue, e.status, e.at, e.detail))
              FROM (SELECT * FROM message_events e WHERE e.source = m.source AND e.message_id = m.id ORDER BY e.at) e), '[]')
  FROM messages m;
DROP TABLE message_events;
DROP TABLE messages;
