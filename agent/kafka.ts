/**
 * Kafka/Redpanda on the LAN (kafkajs), behind the agent's source and sink interfaces.
 *
 * Source: the configured topics in a consumer group with auto-commit off. Each record goes into
 * the outbox with an id derived from topic, partition and offset (so a record consumed again
 * after a restart is the same message); a partition's offset is committed only up to the first
 * record the edge has not acknowledged yet (seed 004: commit only after processing). A crash
 * therefore re-reads at most what the edge had not confirmed, and the edge deduplicates it.
 *
 * Sink: commands the agent delivers are also produced to `commands_topic` for local consumers.
 */
import { createHash } from "node:crypto";
import { type Consumer, Kafka, logLevel, type Producer } from "kafkajs";
import type { AgentConfig, KafkaSourceConfig } from "./config.ts";
import { convertPayload } from "./lan-message.ts";
import type { Logger } from "./log.ts";
import type { Outbox } from "./outbox.ts";
import type { Stats } from "./stats.ts";

/** Something on the LAN the agent takes messages from. */
export interface LanSource {
  start(): Promise<void>;
  stop(): Promise<void>;
}

/** Something on the LAN the agent hands edge events to. */
export interface LanSink {
  command(device: string, command: { id: string; command: string; parameters: unknown }): Promise<void>;
}

type KafkaConfig = NonNullable<AgentConfig["kafka"]>;

/** Per partition: offsets in the outbox not yet acknowledged, and the next offset to commit. */
export class OffsetTracker {
  readonly #outstanding = new Map<string, Set<bigint>>();
  readonly #next = new Map<string, bigint>();
  readonly #byId = new Map<string, { key: string; offset: bigint }>();

  static key(topic: string, partition: number): string {
    return `${topic}\u0000${partition}`;
  }

  track(id: string, topic: string, partition: number, offset: string): void {
    const key = OffsetTracker.key(topic, partition);
    const at = BigInt(offset);
    const set = this.#outstanding.get(key) ?? new Set<bigint>();
    this.#outstanding.set(key, set);
    set.add(at);
    this.#byId.set(id, { key, offset: at });
    const next = this.#next.get(key);
    if (next === undefined || at + 1n > next) this.#next.set(key, at + 1n);
  }

  /** Marks ids acknowledged; returns the partitions whose committable offset moved. */
  acknowledge(ids: readonly string[]): { topic: string; partition: number; offset: string }[] {
    const moved = new Set<string>();
    for (const id of ids) {
      const entry = this.#byId.get(id);
      if (!entry) continue;
      this.#byId.delete(id);
      this.#outstanding.get(entry.key)?.delete(entry.offset);
      moved.add(entry.key);
    }
    return [...moved].map((key) => {
      const [topic = "", partition = "0"] = key.split("\u0000");
      return { topic, partition: Number(partition), offset: String(this.committable(key)) };
    });
  }

  /** The lowest offset not yet acknowledged, or one past the highest seen when all are. */
  committable(key: string): bigint {
    const set = this.#outstanding.get(key);
    let lowest: bigint | undefined;
    for (const offset of set ?? []) if (lowest === undefined || offset < lowest) lowest = offset;
    return lowest ?? this.#next.get(key) ?? 0n;
  }

  get pending(): number {
    return this.#byId.size;
  }
}

function fill(template: string, key: string): string {
  return template.replaceAll("{key}", key);
}

export class KafkaBridge implements LanSource, LanSink {
  readonly #kafka: Kafka;
  readonly #config: KafkaConfig;
  readonly #outbox: Outbox;
  readonly #stats: Stats;
  readonly #log: Logger;
  readonly #agentId: string;
  readonly tracker = new OffsetTracker();
  #consumer: Consumer | undefined;
  #producer: Producer | undefined;
  #stopping = false;
  /** Commits run one after another so an older one never lands after a newer one. */
  #commits: Promise<void> = Promise.resolve();

  constructor(config: KafkaConfig, agentId: string, outbox: Outbox, stats: Stats, log: Logger) {
    this.#config = config;
    this.#agentId = agentId;
    this.#outbox = outbox;
    this.#stats = stats;
    this.#log = log;
    this.#kafka = new Kafka({ clientId: config.client_id, brokers: config.brokers, logLevel: logLevel.NOTHING, retry: { retries: 10 } });
  }

  async start(): Promise<void> {
    const consumer = this.#kafka.consumer({ groupId: this.#config.group_id, allowAutoTopicCreation: true });
    this.#consumer = consumer;
    await consumer.connect();
    for (const source of this.#config.sources) await consumer.subscribe({ topic: source.topic, fromBeginning: true });
    const sources = new Map(this.#config.sources.map((s) => [s.topic, s]));
    await consumer.run({
      autoCommit: false,
      eachMessage: async ({ topic, partition, message }) => {
        const source = sources.get(topic) as KafkaSourceConfig;
        await this.#take(source, topic, partition, message.offset, message.key?.toString("utf8") ?? "", message.value ?? Buffer.alloc(0));
      },
    });
    if (this.#config.commands_topic) {
      this.#producer = this.#kafka.producer({ allowAutoTopicCreation: true });
      await this.#producer.connect();
    }
    this.#log.info("consuming Kafka", { brokers: this.#config.brokers, group: this.#config.group_id, topics: [...sources.keys()] });
  }

  async #take(source: KafkaSourceConfig, topic: string, partition: number, offset: string, key: string, value: Buffer): Promise<void> {
    this.#stats.count("received");
    const stableId = `kafka-${createHash("sha256").update(`${topic}\u0000${partition}\u0000${offset}`).digest("hex").slice(0, 32)}`;
    const conversion = await convertPayload(
      value,
      {
        device: fill(source.device, key),
        routingKey: fill(source.routing_key, key),
        type: source.type,
        origin: `kafka:${topic}`,
        stableId,
      },
      { agent: this.#agentId, source: `kafka:${topic}`, kafka_partition: String(partition), kafka_offset: offset },
    );
    if (!conversion.ok) {
      this.#stats.count(conversion.reason);
      this.#log.warn("invalid Kafka record; skipped", { topic, partition, offset, detail: conversion.detail });
      // Nothing will acknowledge it: count it as done so the offset can move past it.
      this.tracker.track(stableId, topic, partition, offset);
      this.#commit(this.tracker.acknowledge([stableId]));
      return;
    }
    const body = JSON.stringify(conversion.message);
    this.tracker.track(conversion.message.id, topic, partition, offset);
    for (;;) {
      const outcome = this.#outbox.add(conversion.message.id, conversion.message.device, body);
      if (outcome !== "full") {
        if (outcome === "added") this.#stats.count("queued");
        return;
      }
      if (this.#stopping) throw new Error("stopping with a full outbox");
      // Backpressure: the consumer waits (and fetches no further) until the uplink made room.
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  /** The uplink's acknowledgements: commit what is now contiguous. */
  acknowledged(ids: readonly string[]): void {
    this.#commit(this.tracker.acknowledge(ids));
  }

  #commit(offsets: { topic: string; partition: number; offset: string }[]): void {
    const consumer = this.#consumer;
    if (!consumer || offsets.length === 0) return;
    this.#commits = this.#commits
      .then(() => consumer.commitOffsets(offsets))
      .catch((error) => {
        // A later acknowledgement commits again; until then the edge deduplicates any re-read.
        this.#stats.error("kafka commit", error);
        this.#log.warn("Kafka offset commit failed", { error: String(error) });
      });
  }

  async command(device: string, command: { id: string; command: string; parameters: unknown }): Promise<void> {
    if (!this.#producer || !this.#config.commands_topic) return;
    await this.#producer.send({
      topic: this.#config.commands_topic,
      messages: [{ key: device, value: JSON.stringify({ device, ...command }) }],
    });
  }

  async stop(): Promise<void> {
    this.#stopping = true;
    await this.#commits;
    await this.#consumer?.disconnect();
    await this.#producer?.disconnect();
  }
}
