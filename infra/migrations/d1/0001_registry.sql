-- The device registry, dead letters and queue counters (D1, embedded).
CREATE TABLE devices (
  id TEXT PRIMARY KEY,
  kind TEXT NOT NULL CHECK (kind IN ('device', 'service')),
  name TEXT,
  type TEXT NOT NULL,
  class TEXT NOT NULL CHECK (class IN ('mains', 'battery')),
  room TEXT,
  metadata TEXT NOT NULL DEFAULT '{}',
  publish TEXT NOT NULL DEFAULT '[]',
  rate_per_second REAL NOT NULL,
  rate_burst INTEGER NOT NULL,
  -- SHA-256 of the token's secret half; the token itself is never stored.
  token_hash TEXT NOT NULL,
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL,
  token_rotated_at TEXT NOT NULL
);
CREATE INDEX devices_type ON devices (type);
CREATE INDEX devices_room ON devices (room);

CREATE TABLE dead_letters (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  message_id TEXT NOT NULL,
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
  source TEXT,
  envelope TEXT NOT NULL,
  UNIQUE (message_id, queue)
);
CREATE INDEX dead_letters_status ON dead_letters (status, id);

CREATE TABLE queue_stats (
  queue TEXT PRIMARY KEY,
  delivered INTEGER NOT NULL DEFAULT 0,
  retried INTEGER NOT NULL DEFAULT 0,
  dead_lettered INTEGER NOT NULL DEFAULT 0,
  updated_at TEXT NOT NULL
);
