import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { cloudflareTest, readD1Migrations } from "@cloudflare/vitest-plugin";
import { exportJWK, generateKeyPair } from "jose";
import { defineConfig } from "vitest/config";
import { findPostgresBin, NO_POSTGRES_MESSAGE } from "./scripts/lib/postgres.ts";
import { captureNoise, onConsoleLog } from "./scripts/lib/quiet-output.ts";

export default defineConfig(async () => {
  // Logs the tests provoke on purpose go to test-results/test-output.log (EDGEMESH_TEST_LOGS=1 prints them).
  captureNoise();
  // The workers pool's Miniflare, and any wrangler a test starts without its own, use a dev
  // registry private to this run: never another local edge's (scripts/dev.sh, a bench).
  process.env.WRANGLER_REGISTRY_PATH ??= mkdtempSync(join(tmpdir(), "edgemesh-test-registry-"));
  const migrations = await readD1Migrations(join(import.meta.dirname, "infra/migrations/d1"));
  // A Cloudflare Access stand-in: a real RSA key pair whose public half the Worker trusts, so the
  // assertion path runs real RS256 verification without reaching Cloudflare.
  const access = await generateKeyPair("RS256", { extractable: true });
  const accessPublic = { ...(await exportJWK(access.publicKey)), kid: "test-access", alg: "RS256", use: "sig" };
  const accessPrivate = { ...(await exportJWK(access.privateKey)), kid: "test-access", alg: "RS256" };
  const bindings = {
    LOG_LEVEL: "warn",
    ADMIN_TOKEN: "test-admin-token",
    JWT_SECRET: "test-jwt-secret-at-least-32-characters-long",
    ALLOWED_ORIGINS: "https://dashboard.example",
    ACCESS_AUD: "test-access-aud",
    ACCESS_TEAM_DOMAIN: "https://team.cloudflareaccess.test",
    ACCESS_JWKS: JSON.stringify({ keys: [accessPublic] }),
    ACCESS_ADMINS: "boss@example.com",
    TEST_ACCESS_PRIVATE_JWK: JSON.stringify(accessPrivate),
    TEST_MIGRATIONS: migrations,
    // The twin packs archive messages for 30 s; tests wait 1 s, as for the archivers below.
    ARCHIVE_PACK_SECONDS: "1",
  };
  // The archivers batch for 30 s in wrangler.toml; tests wait 1 s, like every other queue.
  const queueConsumers = Object.fromEntries(
    ["edgemesh-archive-events", "edgemesh-archive-metrics"].map((queue) => [
      queue,
      { maxBatchSize: 100, maxBatchTimeout: 1, maxRetries: 3, deadLetterQueue: "edgemesh-dead-letter-queue" },
    ]),
  );
  // As wrangler.toml's [alias]: mqtt-packet's parser needs bl's BufferList, not its stream (which
  // cannot load in workerd). Pre-bundling mqtt-packet makes the alias apply inside it too.
  const mqttPacket = {
    resolve: { alias: { bl: join(import.meta.dirname, "node_modules/bl/BufferList.js") } },
    deps: { optimizer: { ssr: { enabled: true, include: ["mqtt-packet"] } } },
  };
  // The series suite runs twice: against D1 in "workers", against PostgreSQL through Hyperdrive in
  // "workers-postgres". Without PostgreSQL, CI fails here; a developer's run says loudly what it left out.
  const postgres = findPostgresBin();
  if (!postgres && process.env.CI) throw new Error(`${NO_POSTGRES_MESSAGE} (CI=true: the PostgreSQL tests must run)`);
  if (!postgres) console.warn(`\nSKIPPED: no PostgreSQL — the workers-postgres project does not run. ${NO_POSTGRES_MESSAGE}\n`);
  const postgresProject = {
    plugins: [
      cloudflareTest(async ({ inject }) => ({
        wrangler: { configPath: "./wrangler.toml" },
        miniflare: {
          bindings: { ...bindings, PG_CONTROL_URL: inject("pgControlUrl"), PG_URL: inject("pgUrl") },
          queueConsumers,
          hyperdrives: { HYPERDRIVE: inject("pgUrl") },
        },
      })),
    ],
    resolve: mqttPacket.resolve,
    test: {
      name: "workers-postgres",
      deps: mqttPacket.deps,
      include: ["test/workers/series/**/*.test.ts"],
      setupFiles: ["test/workers/setup.ts"],
      // vitest 4 relays each console call from workerd over RPC; a log still in flight when a
      // file's worker closes fails a green run (vitest-dev/vitest#11153). Written straight out instead.
      disableConsoleIntercept: true,
      globalSetup: ["test/global/postgres.ts"],
      // The outage tests stop the one PostgreSQL server: no other file may be using it then.
      fileParallelism: false,
    },
  };
  return {
    test: {
      // The pipeline's structured log lines (shared/log.ts) would bury the results: captured instead.
      onConsoleLog,
      projects: [
        {
          plugins: [cloudflareTest({ wrangler: { configPath: "./wrangler.toml" }, miniflare: { bindings, queueConsumers } })],
          resolve: mqttPacket.resolve,
          test: {
            name: "workers",
            deps: mqttPacket.deps,
            include: ["test/workers/**/*.test.ts"],
            setupFiles: ["test/workers/setup.ts"],
            // As above: no console relay to race the worker's teardown (vitest-dev/vitest#11153).
            disableConsoleIntercept: true,
          },
        },
        ...(postgres ? [postgresProject] : []),
        {
          test: {
            name: "node",
            // test/fuzz: the property tests (fast-check) of shared code.
            include: ["test/node/**/*.test.ts", "test/fuzz/**/*.test.ts"],
            environment: "node",
            testTimeout: 120_000,
            hookTimeout: 120_000,
          },
        },
        {
          // The dashboard: its logic in Node, and the real thing in Debian's chromium (playwright-core)
          // against a local edge (test/browser/). One file at a time: each starts its own edge.
          test: {
            name: "browser",
            include: ["test/browser/**/*.test.ts"],
            environment: "node",
            testTimeout: 180_000,
            hookTimeout: 180_000,
            fileParallelism: false,
          },
        },
      ],
    },
  };
});
