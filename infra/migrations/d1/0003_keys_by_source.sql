-- Message ids are unique per sender, not globally (a sender chooses its own ids): dead letters
-- and history are keyed by (source, id), so two devices' messages with one id never collide.
CREATE TABLE dead_letters_v2 (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  message_id TEXT NOT NULL,
  source TEXT NOT NULL,
  queue TEXT NOT NULL,
  exchange TEXT NOT NULL,
  routing_key TEXT NOT NULL,
  error_code TEXT NOT NULL,
  error_message TEXT NOT NULL,
  attempts INTEGER NOT NULL,
  failed_at TEXT NOT NULL,
  status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'replayed')),
  replayed_at TEXT,
  correlation_id TEXT,
  -- The envelope as JSON; for a body that was no valid envelope, that body as it came.
  envelope TEXT NOT NULL,
  replayable INTEGER NOT NULL DEFAULT 1,
  UNIQUE (source, message_id, queue)
);
INSERT INTO dead_letters_v2 (id, message_id, source, queue, exchange, routing_key, error_code, error_message, attempts, failed_at, status, replayed_at, correlation_id, envelope)
  SELECT id, message_id, COALESCE(source, '(unknown)'), queue, exchange, routing_key, error_code, error_message, attempts, failed_at, status, replayed_at, correlation_id, envelope FROM dead_letters;
DROP TABLE dead_letters;
ALTER TABLE dead_letters_v2 RENAME TO dead_letters;
CREATE INDEX dead_letters_status ON dead_letters (status, id);

CREATE TABLE messages_v2 (
  source TEXT NOT NULL,
  id TEXT NOT NULL,
  correlation_id TEXT NOT NULL,
  type TEXT NOT NULL,
  exchange TEXT NOT NULL,
  routing_key TEXT NOT NULL,
  timestamp TEXT NOT NULL,
  received_at TEXT NOT NULL,
  PRIMARY KEY (source, id)
);
INSERT INTO messages_v2 SELECT source, id, correlation_id, type, exchange, routing_key, timestamp, received_at FROM messages;
DROP TABLE messages;
ALTER TABLE messages_v2 RENAME TO messages;
CREATE INDEX messages_source_received ON messages (source, received_at);
CREATE INDEX messages_correlation ON messages (correlation_id);
CREATE INDEX messages_received ON messages (received_at);
CREATE INDEX messages_id ON messages (id);

CREATE TABLE message_events_v2 (
  source TEXT NOT NULL,
  message_id TEXT NOT NULL,
  queue TEXT NOT NULL,
  status TEXT NOT NULL CHECK (status IN ('accepted', 'delivered', 'retried', 'dead_lettered', 'replayed', 'stored')),
  at TEXT NOT NULL,
  detail TEXT,
  PRIMARY KEY (source, message_id, queue, status)
);
INSERT INTO message_events_v2 (source, message_id, queue, status, at, detail)
  SELECT COALESCE(m.source, '(unknown)'), e.message_id, e.queue, e.status, e.at, e.detail
  FROM message_events e LEFT JOIN messages m ON m.id = e.message_id;
DROP TABLE message_events;
ALTER TABLE message_events_v2 RENAME TO message_events;
CREATE INDEX message_events_at ON message_events (at);
