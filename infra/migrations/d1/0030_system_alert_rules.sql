-- Seed 000's system alerts (docs/alerts.md, "System alerts"): default rules on the readings the
-- edge's own monitor (queues/system-monitor.ts) takes every minute. Ordinary rules: an operator
-- tunes, silences or deletes them through /api/monitoring/alert_rules like any other.
INSERT OR IGNORE INTO alert_rules (id, name, enabled, body, version, created_at, updated_at) VALUES
  ('5e5e0000-0000-4000-8000-000000000001', 'Dead letters piling up', 1,
   '{"name":"Dead letters piling up","description":"More than 20 messages dead-lettered in 5 minutes (GET /v1/dead-letters)","metric":"dead_letters_5m","routing_key":"metrics.system.edgemesh.#","condition":{"type":"threshold","op":"gt","value":20},"for_seconds":0,"severity":"warning","channels":[],"escalate_after_seconds":900,"enabled":true}',
   1, '2026-12-05T00:00:00.000Z', '2026-12-05T00:00:00.000Z'),
  ('5e5e0000-0000-4000-8000-000000000002', 'Series store circuit breaker open', 1,
   '{"name":"Series store circuit breaker open","description":"The series store failed repeatedly: the breaker fails calls fast","metric":"series_breaker_open","routing_key":"metrics.system.edgemesh.#","condition":{"type":"threshold","op":"gte","value":1},"for_seconds":0,"severity":"critical","channels":[],"enabled":true}',
   1, '2026-12-05T00:00:00.000Z', '2026-12-05T00:00:00.000Z'),
  ('5e5e0000-0000-4000-8000-000000000003', 'Series store unavailable', 1,
   '{"name":"Series store unavailable","description":"The series store did not answer a probe after its retries","metric":"series_available","routing_key":"metrics.system.edgemesh.#","condition":{"type":"threshold","op":"lt","value":1},"for_seconds":0,"severity":"critical","channels":[],"enabled":true}',
   1, '2026-12-05T00:00:00.000Z', '2026-12-05T00:00:00.000Z'),
  ('5e5e0000-0000-4000-8000-000000000004', 'LAN agent offline', 1,
   '{"name":"LAN agent offline","description":"The agent holds no wake-up WebSocket to the edge","metric":"agent_online","routing_key":"metrics.system.agent.#","condition":{"type":"threshold","op":"lt","value":1},"for_seconds":0,"severity":"warning","channels":[],"escalate_after_seconds":1800,"enabled":true}',
   1, '2026-12-05T00:00:00.000Z', '2026-12-05T00:00:00.000Z'),
  ('5e5e0000-0000-4000-8000-000000000005', 'Queue backlog', 1,
   '{"name":"Queue backlog","description":"A message accepted over 5 minutes ago that no queue consumer has taken yet","metric":"queue_backlog_age_s","routing_key":"metrics.system.edgemesh.#","condition":{"type":"threshold","op":"gt","value":300},"for_seconds":0,"severity":"warning","channels":[],"escalate_after_seconds":900,"enabled":true}',
   1, '2026-12-05T00:00:00.000Z', '2026-12-05T00:00:00.000Z');
