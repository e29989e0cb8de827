-- An hourly digest of the message history's batch rows (issue 13): for each finished hour, every
-- message id and correlation id that hour's message_batches rows hold, newline-separated (split
-- in parts of 20,000 so a row stays far below D1's 2 MB). Written by the hourly cron once per
-- hour — not per message, not per batch — it lets a lookup by id or correlation id read ~170
-- digest rows and then only the hours that hold the id, instead of every batch row of the
-- retention (queues/history-hours.ts, queues/history-lookup.ts). The hours not digested yet (the
-- current one, any the cron has not reached) are read directly.
CREATE TABLE message_hours (
  hour TEXT NOT NULL,
  part INTEGER NOT NULL,
  ids TEXT NOT NULL,
  PRIMARY KEY (hour, part)
) WITHOUT ROWID;
