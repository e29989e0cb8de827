/**
 * infra/grafana/edgemesh.json: it parses as a Grafana dashboard, its PromQL names only series
 * GET /metrics exposes, and every SQL query — with Grafana's macros and variables filled in as
 * Grafana would — is EXPLAINed by a throwaway PostgreSQL with the series migrations applied, so
 * a table or column that does not exist fails here, not on an operator's screen.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { migrate } from "../../infra/postgres/migrate.ts";
import { PROJECT_ROOT } from "../../scripts/lib/local-edge.ts";
import { findPostgresBin, NO_POSTGRES_MESSAGE, type PostgresCluster, startPostgres } from "../../scripts/lib/postgres.ts";

interface Target {
  refId: string;
  datasource: { type: string; uid: string };
  rawSql?: string;
  expr?: string;
}
interface Panel {
  id: number;
  type: string;
  title: string;
  datasource?: { type: string; uid: string };
  gridPos: { x: number; y: number; w: number; h: number };
  targets?: Target[];
}
interface Dashboard {
  uid: string;
  title: string;
  __inputs: { name: string; pluginId: string }[];
  templating: { list: { name: string; query: string; datasource: { uid: string } }[] };
  panels: Panel[];
}

const dashboard = JSON.parse(readFileSync(join(PROJECT_ROOT, "infra/grafana/edgemesh.json"), "utf8")) as Dashboard;
const targets = dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => ({ panel: p.title, ...t })));
const sqlQueries = [
  ...targets.filter((t) => t.rawSql).map((t) => ({ where: `panel "${t.panel}" ${t.refId}`, sql: t.rawSql as string })),
  ...dashboard.templating.list.map((v) => ({ where: `variable $${v.name}`, sql: v.query })),
];

/** What Grafana sends for the macros and variables this dashboard uses. */
function interpolate(sql: string): string {
  return sql
    .replace(/\$__timeFilter\(([^)]+)\)/g, "$1 BETWEEN '2026-01-03T00:00:00Z'::timestamptz AND '2026-01-04T00:00:00Z'::timestamptz")
    .replace(/\$device\b/g, "'meter1','kitchen-thermo'")
    .replace(/\$room\b/g, "'kitchen'");
}

/**
 * The series names /metrics exposes: the counted families (shared/metrics.ts) and the gauges read
 * at scrape time (the route). Read from the sources: Worker modules do not load in Node.
 */
function exposedFamilies(): Set<string> {
  const names = (path: string, pattern: RegExp) =>
    [...readFileSync(join(PROJECT_ROOT, path), "utf8").matchAll(pattern)].map((m) => m[1] as string);
  return new Set([
    ...names("shared/metrics.ts", /^\s+(edgemesh_[a-z0-9_]+): \{/gm),
    ...names("functions/routes/metrics.ts", /"(edgemesh_[a-z0-9_]+)"/g),
  ]);
}

describe("the Grafana dashboard's JSON", () => {
  it("is a dashboard whose panels have ids, places, data sources and queries", () => {
    expect(dashboard.uid).toBe("edgemesh-overview");
    const inputs = new Set(dashboard.__inputs.map((i) => `\${${i.name}}`));
    const ids = dashboard.panels.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    const drawn = dashboard.panels.filter((p) => p.type !== "row");
    expect(drawn.length).toBeGreaterThanOrEqual(10);
    for (const p of drawn) {
      expect(p.targets?.length, p.title).toBeGreaterThan(0);
      expect(p.gridPos.w, p.title).toBeGreaterThan(0);
      expect(inputs.has(p.datasource?.uid ?? ""), `${p.title}: data source ${p.datasource?.uid}`).toBe(true);
      for (const t of p.targets ?? []) expect(Boolean(t.rawSql) !== Boolean(t.expr), `${p.title} ${t.refId}: SQL or PromQL`).toBe(true);
    }
    // Seed 004's panel: the hourly average power from energy_readings.
    expect(
      sqlQueries.some(
        (q) => /time_bucket\('1 hour', "timestamp"\)/.test(q.sql) && /AVG\(power_kw\)/.test(q.sql) && /FROM energy_readings/.test(q.sql),
      ),
    ).toBe(true);
  });

  it("asks Prometheus only for series GET /metrics exposes", () => {
    const exposed = exposedFamilies();
    expect(exposed.has("edgemesh_ingest_duration_seconds") && exposed.has("edgemesh_devices")).toBe(true);
    const promql = targets.filter((t) => t.expr).map((t) => t.expr as string);
    expect(promql.length).toBeGreaterThanOrEqual(8);
    for (const expr of promql) {
      for (const [name] of expr.matchAll(/edgemesh_[a-z0-9_]+/g)) {
        const family = name.replace(/_(bucket|sum|count)$/, "");
        expect(exposed.has(family) || exposed.has(name), `${name} in ${expr}`).toBe(true);
      }
    }
  });
});

const haveBinaries = findPostgresBin() !== undefined;
if (!haveBinaries && process.env.CI === "true") throw new Error(`${NO_POSTGRES_MESSAGE} (CI=true: the Grafana SQL check must run)`);
if (!haveBinaries) console.warn(`\n*** SKIPPING the Grafana SQL check: ${NO_POSTGRES_MESSAGE} ***\n`);

describe.skipIf(!haveBinaries)("the Grafana dashboard's SQL against the PostgreSQL migrations", () => {
  let pg: PostgresCluster;
  let sql: postgres.Sql;

  beforeAll(async () => {
    pg = await startPostgres();
    sql = postgres(pg.url, { max: 1, onnotice: () => {} });
    await migrate(sql);
  });

  afterAll(async () => {
    await sql?.end();
    pg?.destroy();
  });

  it("every query plans: its tables, views, columns and functions exist", async () => {
    expect(sqlQueries.length).toBeGreaterThanOrEqual(9);
    const failures: string[] = [];
    for (const q of sqlQueries) {
      try {
        await sql.unsafe(`EXPLAIN ${interpolate(q.sql)}`);
      } catch (error) {
        failures.push(`${q.where}: ${(error as Error).message}`);
      }
    }
    expect(failures).toEqual([]);
  });

  it("a misspelt column is caught (the check can fail)", async () => {
    await expect(sql.unsafe("EXPLAIN SELECT power_kilowatts FROM energy_readings")).rejects.toThrow(/power_kilowatts/);
  });
});
