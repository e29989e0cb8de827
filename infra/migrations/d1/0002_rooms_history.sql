-- Rooms, device availability as last reported by the twins, and the message history.
CREATE TABLE rooms (
  id TEXT PRIMARY KEY,
  name TEXT,
  metadata TEXT NOT NULL DEFAULT '{}',
  created_at TEXT NOT NULL
);

-- Written by each twin on an availability transition, for filtered queries; may lag a moment.
ALTER TABLE devices ADD COLUMN availability TEXT NOT NULL DEFAULT 'offline';
ALTER TABLE devices ADD COLUMN last_seen TEXT;
CREATE INDEX devices_availability ON devices (availability);

-- Seed 002's message repository: one row a message, one row a processing step.
CREATE TABLE messages (
  id TEXT PRIMARY KEY,
  correlation_id TEXT NOT NULL,
  source TEXT NOT NULL,
  type TEXT NOT NULL,
  exchange TEXT NOT NULL,
  routing_key TEXT NOT NULL,
  timestamp TEXT NOT NULL,
  received_at TEXT NOT NULL
);
CREATE INDEX messages_source_received ON messages (source, received_at);
CREATE INDEX messages_correlation ON messages (correlation_id);
CREATE INDEX messages_received ON messages (received_at);

CREATE TABLE message_events (
  message_id TEXT NOT NULL,
  queue TEXT NOT NULL,
  status TEXT NOT NULL CHECK (status IN ('delivered', 'retried', 'dead_lettered', 'replayed', 'stored')),
  at TEXT NOT NULL,
  detail TEXT,
  PRIMARY KEY (message_id, queue, status)
);
CREATE INDEX message_events_at ON message_events (at);
