-- Seed 002's message repository, leaner still (issue 13): the happy path — a message delivered
-- to a queue's consumer and stored by its sink — is ONE row per consumer batch and queue, not a
-- row per message. `messages` packs the batch's messages compactly as a JSON array, each
-- [id, source, correlation_id, type, exchange, routing_key, timestamp, received_at,
--  [[status, detail], ...]]; `at` is when the consumer recorded the batch (never before any of its
-- messages was received, so `since` and the retention bound the rows a lookup reads).
-- WITHOUT ROWID and no secondary index: a batch costs 1 D1 row written, whatever its size (a
-- batch past ~1,000 messages is split into rows of that size, queues/history.ts).
--
-- message_log (0015) stays: it keeps the per-message rows of the unhappy steps (retried,
-- dead_lettered, replayed), which are rare, and the rows written before this migration, which age
-- out with the retention. GET /v1/messages reads both and merges them (functions/routes/messages.ts).
-- Moving the old rows here would rewrite up to a week of history for no reader's gain.
CREATE TABLE message_batches (
  at TEXT NOT NULL,
  queue TEXT NOT NULL,
  batch TEXT NOT NULL,
  messages TEXT NOT NULL,
  PRIMARY KEY (at, queue, batch)
) WITHOUT ROWID;
