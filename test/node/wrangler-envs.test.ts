/**
 * Wrangler does not inherit bindings into [env.*]: every environment must declare the same
 * bindings as the top level (local), or a deploy to staging or production silently lacks one.
 * Read through wrangler's own config reader, per environment.
 */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { unstable_readConfig } from "wrangler";
import { ENVIRONMENTS, WRANGLER_TOML, withGeneratedBlock } from "../../scripts/wrangler-envs.ts";

type Config = Record<string, unknown> & {
  name: string;
  vars?: Record<string, unknown>;
  secrets?: { required?: string[] };
  queues: {
    producers?: { binding: string; queue: string }[];
    consumers?: { queue: string; dead_letter_queue?: string; max_retries?: number }[];
  };
  durable_objects: { bindings: { name: string; class_name: string }[] };
  d1_databases: { binding: string; database_name?: string; database_id?: string; migrations_dir?: string }[];
  r2_buckets: { binding: string; bucket_name?: string }[];
};

const read = (env?: string) => unstable_readConfig({ config: WRANGLER_TOML, ...(env && { env }) }) as unknown as Config;

/** Every binding the config declares, as "kind:name" (values aside). */
function bindings(config: Config): string[] {
  const named = (kind: string, list: unknown, key = "binding") =>
    Array.isArray(list)
      ? list.map((b) => `${kind}:${String((b as Record<string, unknown>)[key] ?? (b as Record<string, unknown>).name)}`)
      : [];
  return [
    ...Object.keys(config.vars ?? {}).map((k) => `var:${k}`),
    ...(config.secrets?.required ?? []).map((k) => `secret:${k}`),
    ...named("d1", config.d1_databases),
    ...named("r2", config.r2_buckets),
    ...named("kv", config.kv_namespaces),
    ...named("hyperdrive", config.hyperdrive),
    ...named("service", config.services),
    ...named("analytics", config.analytics_engine_datasets),
    ...named("ratelimit", config.unsafe && (config.unsafe as { bindings?: unknown }).bindings, "name"),
    ...named("ratelimit", config.ratelimits, "name"),
    ...config.durable_objects.bindings.map((b) => `do:${b.name}=${b.class_name}`),
    ...(config.queues.producers ?? []).map((p) => `queue-producer:${p.binding}`),
    ...(config.queues.consumers ?? []).map((c) => `queue-consumer:${c.queue.replace(/^edgemesh(-staging)?-/, "")}:${c.max_retries}`),
  ].sort();
}

const top = read();

describe("wrangler.toml environments", () => {
  it("the generated [env.*] sections are up to date (node scripts/wrangler-envs.ts)", () => {
    const toml = readFileSync(WRANGLER_TOML, "utf8");
    expect(withGeneratedBlock(toml) === toml, "run node scripts/wrangler-envs.ts and commit wrangler.toml").toBe(true);
  });

  for (const env of ENVIRONMENTS) {
    it(`${env.name} declares every binding, var and secret the top level does`, () => {
      const config = read(env.name);
      expect(config.name).toBe(env.worker);
      expect(bindings(config)).toEqual(bindings(top));
      expect(bindings(top).length).toBeGreaterThan(40);
      for (const [key, value] of Object.entries(env.vars)) expect(config.vars?.[key], key).toBe(value);
      // Found by name at deploy: no placeholder id may reach an account.
      expect(config.d1_databases.every((d) => d.database_id === undefined && d.database_name?.startsWith(env.prefix))).toBe(true);
      expect(config.d1_databases[0]?.migrations_dir).toBe(top.d1_databases[0]?.migrations_dir);
    });
  }

  it("staging and production share no queue, bucket or database", () => {
    const resources = (c: Config) => [
      ...(c.queues.producers ?? []).map((p) => p.queue),
      ...(c.queues.consumers ?? []).flatMap((q) => [q.queue, q.dead_letter_queue ?? ""]).filter(Boolean),
      ...c.r2_buckets.map((b) => b.bucket_name ?? ""),
      ...c.d1_databases.map((d) => d.database_name ?? ""),
    ];
    const staging = new Set(resources(read("staging")));
    const production = resources(read("production"));
    expect(production.length).toBeGreaterThan(30);
    expect(production.filter((r) => staging.has(r))).toEqual([]);
  });
});
