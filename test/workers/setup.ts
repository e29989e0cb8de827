import { applyD1Migrations } from "cloudflare:test";
import { env } from "cloudflare:workers";

// Per-message info lines (shared/log.ts) would bury the test output; warnings and errors still show.
(globalThis as { EDGEMESH_LOG_LEVEL?: string }).EDGEMESH_LOG_LEVEL = "warn";

// Idempotent: applyD1Migrations skips what is applied already.
await applyD1Migrations(env.DB, env.TEST_MIGRATIONS);
