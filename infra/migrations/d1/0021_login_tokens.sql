-- Login tokens admins issued (POST /v1/auth/token grant_type "issue"), so they can be listed and
-- revoked one by one (GET /v1/auth/tokens, DELETE /v1/auth/tokens/:id). The token itself is
-- never stored: `id` is its jti claim. A revoked token's refresh is refused.
CREATE TABLE login_tokens (
  id TEXT PRIMARY KEY,
  sub TEXT NOT NULL,
  role TEXT NOT NULL,
  issued_by TEXT NOT NULL,
  issued_at TEXT NOT NULL,
  expires_at TEXT NOT NULL,
  revoked_at TEXT
);
CREATE INDEX login_tokens_issued ON login_tokens (issued_at);
