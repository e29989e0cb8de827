-- Seed 000 flow 1, issue 16 item 6 (docs/ai.md): the default analysis on the stream. An `anomaly`
-- rule without a metric scores every numeric metric of every device it matches against that
-- device's own rolling baseline. This one matches every metrics message: it is what analyses
-- readings with no rule written. An ordinary rule: give it channels, tune its score, window and
-- warm-up, or disable it, through /api/monitoring/alert_rules; per device or metric, see docs/ai.md.
INSERT OR IGNORE INTO alert_rules (id, name, enabled, body, version, created_at, updated_at) VALUES
  ('a7a70000-0000-4000-8000-000000000001', 'Anomaly on the stream (default analysis)', 1,
   '{"name":"Anomaly on the stream (default analysis)","description":"Every numeric metric of every device against its own rolling baseline (robust z-score); an anomaly rule for a metric tunes or, disabled, silences it","condition":{"type":"anomaly","score":5,"window":60,"min_samples":20},"for_seconds":0,"severity":"warning","channels":[],"enabled":true}',
   1, '2026-12-05T00:00:00.000Z', '2026-12-05T00:00:00.000Z');
