/**
 * The deploy script's dry run, as CI runs it: the plan for each environment names every queue
 * of the topology and the dead-letter queue, the bucket, the database and the secrets, and the
 * real bundle (`wrangler deploy --dry-run`) builds within the Workers size limit; a bundle that
 * does not build, or is over the limit, fails. No account is touched.
 */
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { DeployError, dryRun, main, makePlan, SIZE_LIMIT } from "../../scripts/deploy.ts";
import { QUEUES } from "../../shared/bus/topology.ts";

describe("npm run deploy -- --dry-run", () => {
  for (const env of ["staging", "production"]) {
    it(`${env}: prints the plan and builds a bundle under the free plan's limit`, async () => {
      const lines: string[] = [];
      const code = await main(["--dry-run", "--env", env], (line) => lines.push(line));
      const out = lines.join("\n");
      expect(code, out).toBe(0);
      const plan = makePlan(env, undefined);
      const prefix = env === "staging" ? "edgemesh-staging-" : "edgemesh-";
      expect(plan.queues.sort()).toEqual(QUEUES.map((q) => q.cloudflare.replace(/^edgemesh-/, prefix)).sort());
      expect(plan.queues).toContain(`${prefix}dead-letter-queue`);
      expect(plan.buckets).toEqual([`${prefix}archive`]);
      expect(plan.secrets).toEqual(expect.arrayContaining(["ADMIN_TOKEN", "JWT_SECRET", "METRICS_TOKEN"]));
      expect(out).toContain(`then: wrangler deploy --env ${env}`);
      const gzip = Number(/gzip ([\d.]+) KiB/.exec(out)?.[1]);
      expect(gzip).toBeGreaterThan(50);
      expect(gzip * 1024).toBeLessThan(SIZE_LIMIT.free);
      console.log(`deploy dry run (${env}): bundle ${gzip} KiB compressed`);
    });
  }

  it("plans a Hyperdrive configuration only when a Timescale URL is given", () => {
    expect(makePlan("production", undefined).hyperdrive).toBeUndefined();
    expect(makePlan("production", "postgres://u:p@db.example:5432/edgemesh").hyperdrive).toEqual({
      name: "edgemesh-timescale",
      bound: false,
    });
  });

  it("fails when the bundle is over the limit", () => {
    expect(() => dryRun("production", 10 * 1024, () => {})).toThrow(/over the Workers size limit/);
  });

  it("fails when the bundle does not build", () => {
    const dir = mkdtempSync(join(tmpdir(), "edgemesh-broken-"));
    writeFileSync(
      join(dir, "index.ts"),
      'import { nothing } from "./missing.ts";\nexport default { fetch: () => new Response(String(nothing)) };\n',
    );
    writeFileSync(join(dir, "wrangler.toml"), 'name = "broken"\nmain = "index.ts"\ncompatibility_date = "2026-11-01"\n');
    expect(() => dryRun(undefined, SIZE_LIMIT.free, () => {}, join(dir, "wrangler.toml"))).toThrow(DeployError);
  });

  it("refuses an unknown environment with the usage exit code", async () => {
    expect(await main(["--dry-run", "--env", "moon"], () => {})).toBe(2);
  });
});
