import type { D1Migration } from "cloudflare:test";

declare global {
  namespace Cloudflare {
    interface Env {
      TEST_MIGRATIONS: D1Migration[];
      TEST_ACCESS_PRIVATE_JWK: string;
      ACCESS_AUD: string;
      ACCESS_TEAM_DOMAIN: string;
      ACCESS_JWKS: string;
      ACCESS_ADMINS: string;
      /** Only in the workers-postgres project (vitest.config.ts): the series store is PostgreSQL. */
      HYPERDRIVE?: Hyperdrive;
      /** workers-postgres: POST /stop and /start the test's PostgreSQL server (test/global/postgres.ts). */
      PG_CONTROL_URL?: string;
      /** workers-postgres: the server's own address, to check rows without the store under test. */
      PG_URL?: string;
    }
  }
}
