-- The embedded inference cache (docs/ai.md): used when no Upstash Redis is configured. Keyed by
-- the SHA-256 of the model, version and inputs; rows past `expires_at` (ms) are misses and are
-- overwritten by the next result.
CREATE TABLE ai_cache (
  key TEXT PRIMARY KEY,
  body TEXT NOT NULL,
  expires_at INTEGER NOT NULL
) WITHOUT ROWID;
