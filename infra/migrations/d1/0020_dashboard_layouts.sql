-- Seed 003's dashboard configuration: each person's saved layout (GET/PUT /api/dashboard),
-- keyed by the token's subject. The JSON is what shared/schemas/dashboard.ts validated.
CREATE TABLE dashboard_layouts (
  sub TEXT PRIMARY KEY,
  layout TEXT NOT NULL,
  updated_at TEXT NOT NULL
);
