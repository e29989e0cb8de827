/**
 * Applies the series store's PostgreSQL migrations (infra/migrations/postgres/NNNN_name.sql), in
 * order, each once, in one transaction under an advisory lock so two runners never interleave. When the server offers the timescaledb extension, the runner creates it and takes
 * `NNNN_name.timescale.sql` instead of `NNNN_name.sql` wherever such a variant exists.
 *
 *   node infra/postgres/migrate.ts postgres://user:password@host:5432/db   (or DATABASE_URL=…)
 *   EDGEMESH_TIMESCALE=off …   applies the plain variants even where TimescaleDB is available
 *
 * The Worker never migrates: DDL from every isolate through a pooler is how locks pile up.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import postgres, { type Sql } from "postgres";

export const MIGRATIONS_DIR = resolve(import.meta.dirname, "../migrations/postgres");

/** Any constant works; this one spells "edgemesh" in ASCII. */
const LOCK_KEY = 0x6564_6765_6d65_7368n;

export interface Migration {
  version: number;
  name: string;
  file: string;
}

/** The migrations to apply, one per version: the timescale variant when `timescale`. */
export function listMigrations(dir: string, timescale: boolean): Migration[] {
  const byVersion = new Map<number, { plain?: string; timescale?: string }>();
  for (const file of readdirSync(dir).sort()) {
    const match = /^(\d{4})_([a-z0-9_]+?)(\.timescale)?\.sql$/.exec(file);
    if (!match) continue;
    const version = Number(match[1]);
    const entry = byVersion.get(version) ?? {};
    if (match[3]) entry.timescale = file;
    else entry.plain = file;
    byVersion.set(version, entry);
  }
  return [...byVersion.entries()]
    .sort(([a], [b]) => a - b)
    .map(([version, files]) => {
      const file = (timescale && files.timescale) || files.plain;
      if (!file) throw new Error(`migration ${version} has only a .timescale.sql variant; add the plain one`);
      return { version, name: file.replace(/\.sql$/, ""), file: join(dir, file) };
    });
}

export interface MigrateResult {
  timescale: boolean;
  applied: string[];
}

export async function migrate(sql: Sql, options: { dir?: string; log?: (line: string) => void } = {}): Promise<MigrateResult> {
  const log = options.log ?? (() => {});
  const wantTimescale = process.env.EDGEMESH_TIMESCALE !== "off";
  const [available] = await sql<{ n: number }[]>`SELECT count(*)::int AS n FROM pg_available_extensions WHERE name = 'timescaledb'`;
  const timescale = wantTimescale && (available?.n ?? 0) > 0;
  // One transaction for the whole run, under a transaction-scoped advisory lock: two runners
  // never interleave, and a failed migration leaves the database as it found it.
  return sql.begin(async (tx) => {
    await tx`SELECT pg_advisory_xact_lock(${LOCK_KEY.toString()}::bigint)`;
    if (timescale) await tx`CREATE EXTENSION IF NOT EXISTS timescaledb`;
    await tx`CREATE TABLE IF NOT EXISTS edgemesh_migrations (version int PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`;
    const done = new Set((await tx<{ version: number }[]>`SELECT version FROM edgemesh_migrations`).map((r) => r.version));
    const applied: string[] = [];
    for (const m of listMigrations(options.dir ?? MIGRATIONS_DIR, timescale)) {
      if (done.has(m.version)) continue;
      // A migration file is static SQL from this repository (several statements, no values):
      // the one place that runs SQL text as it is.
      await tx.unsafe(readFileSync(m.file, "utf8"));
      await tx`INSERT INTO edgemesh_migrations (version, name) VALUES (${m.version}, ${m.name})`;
      applied.push(m.name);
      log(`applied ${m.name}`);
    }
    return { timescale, applied };
  });
}

if (process.argv[1] && resolve(process.argv[1]) === resolve(import.meta.filename)) {
  const url = process.argv[2] ?? process.env.DATABASE_URL;
  if (!url) {
    console.error("usage: node infra/postgres/migrate.ts <postgres://user:password@host:port/db>  (or DATABASE_URL)");
    process.exit(2);
  }
  const sql = postgres(url, { max: 1, onnotice: () => {} });
  try {
    const result = await migrate(sql, { log: (line) => console.log(line) });
    console.log(
      `${result.applied.length} migration(s) applied; ${result.timescale ? "TimescaleDB" : "plain PostgreSQL (no timescaledb extension)"}`,
    );
  } finally {
    await sql.end();
  }
}
