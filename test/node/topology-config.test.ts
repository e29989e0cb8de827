/** wrangler.toml must mirror shared/bus/topology.ts: one producer binding and one consumer per queue. */
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { unstable_readConfig } from "wrangler";
import { DEAD_LETTER_QUEUE, MAX_RETRIES, QUEUES } from "../../shared/bus/topology.ts";

/** The parts of wrangler's parsed config this test reads (its own types do not resolve under NodeNext). */
interface ParsedConfig {
  queues: {
    producers?: { binding: string; queue: string }[];
    consumers?: { queue: string; max_retries?: number; dead_letter_queue?: string }[];
  };
  durable_objects: { bindings: { name: string; class_name: string }[] };
  migrations: { new_sqlite_classes?: string[] }[];
  d1_databases: { binding: string; migrations_dir?: string }[];
  vars?: Record<string, unknown>;
}

const config = unstable_readConfig({ config: join(import.meta.dirname, "../../wrangler.toml") }) as unknown as ParsedConfig;

describe("wrangler.toml and the topology", () => {
  it("declares exactly the topology's queues as producers, under the topology's binding names", () => {
    const producers = (config.queues.producers ?? []).map((p) => [p.binding, p.queue]).sort();
    expect(producers).toEqual(QUEUES.map((q) => [q.binding, q.cloudflare]).sort());
  });

  it("consumes every queue, retrying MAX_RETRIES times with the dead-letter queue as the backstop", () => {
    const consumers = new Map((config.queues.consumers ?? []).map((c) => [c.queue, c]));
    expect([...consumers.keys()].sort()).toEqual(QUEUES.map((q) => q.cloudflare).sort());
    const deadLetterQueue = QUEUES.find((q) => q.name === DEAD_LETTER_QUEUE)?.cloudflare;
    for (const queue of QUEUES) {
      const consumer = consumers.get(queue.cloudflare);
      if (queue.name === DEAD_LETTER_QUEUE) {
        expect(consumer?.dead_letter_queue, queue.name).toBeUndefined();
        continue;
      }
      expect(consumer?.max_retries, queue.name).toBe(MAX_RETRIES);
      expect(consumer?.dead_letter_queue, queue.name).toBe(deadLetterQueue);
    }
  });

  it("binds the DeviceTwin Durable Object with SQLite storage and the D1 registry", () => {
    expect(config.durable_objects.bindings).toContainEqual(expect.objectContaining({ name: "DEVICE_TWIN", class_name: "DeviceTwin" }));
    expect(config.migrations.flatMap((m) => m.new_sqlite_classes ?? [])).toContain("DeviceTwin");
    expect(config.d1_databases).toContainEqual(expect.objectContaining({ binding: "DB", migrations_dir: "infra/migrations/d1" }));
  });

  it("keeps secrets out of [vars]", () => {
    expect(Object.keys(config.vars ?? {})).not.toContain("ADMIN_TOKEN");
  });
});
