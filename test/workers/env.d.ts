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
    }
  }
}
