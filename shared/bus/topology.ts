/**
 * The routing topology of seed 001 (RabbitMQ-style exchanges, queues and bindings) as data.
 *
 * Each bound queue is one Cloudflare Queue. `wrangler.toml` mirrors this file (producer binding
 * and consumer per queue); `test/node/topology-config.test.ts` fails when the two disagree.
 * Entries with `origin: "edgemesh"` are additions the seed does not draw; docs/topology.md says why.
 */

export type ExchangeType = "topic" | "fanout" | "direct";

export interface Exchange {
  readonly name: string;
  readonly type: ExchangeType;
  readonly description: string;
  /** RabbitMQ's alternate exchange: where a message goes that none of this exchange's bindings takes. */
  readonly alternate?: string;
}

export interface QueueDef {
  /** The seed's queue name (dot-separated). */
  readonly name: string;
  /** The Cloudflare Queue name (letters, digits and dashes). */
  readonly cloudflare: string;
  /** The Worker binding that produces to it. */
  readonly binding: string;
  readonly consumer: string;
  readonly origin: "seed-001" | "edgemesh";
  /**
   * How a producer that can wait (the device twin's outbox) packs messages for this queue: it
   * sends what it holds for the queue once the oldest has waited `windowMs`, or at once when
   * `maxMessages` are waiting, as packs (`QueuePack`, shared/schemas/message.ts) of up to that
   * many messages. `undefined`: one queue message per body, sent at once (dead letters, whose
   * bodies are not envelopes).
   */
  readonly pack?: PackWindow;
}

export interface PackWindow {
  readonly windowMs: number;
  readonly maxMessages: number;
}

/**
 * Latency-bound queues: a reading is stored well within a second of its acceptance. The window is
 * the default of LIVE_PACK_MS (docs/configuration.md), which the twin passes to `packWindow`.
 */
export const LIVE_PACK_MS_DEFAULT = 250;
const LIVE: PackWindow = { windowMs: LIVE_PACK_MS_DEFAULT, maxMessages: 100 };
/**
 * Event queues (home events, motion): an automation waits on them (motion → light), and a home
 * sends few, so they go at once — the window costs latency and saves next to nothing.
 */
const PROMPT: PackWindow = { windowMs: 0, maxMessages: 100 };
/** Archive queues: nobody waits for them; big packs make few queue operations and R2 objects. */
const BULK: PackWindow = { windowMs: 30_000, maxMessages: 100 };

export interface Binding {
  readonly exchange: string;
  readonly queue: string;
  /** AMQP topic pattern: `*` one word, `#` zero or more words; ignored by fanout exchanges. */
  readonly pattern: string;
  readonly origin: "seed-001" | "edgemesh";
}

export const EXCHANGES = [
  { name: "home.events", type: "topic", description: "Home state changes and automation triggers" },
  { name: "sensors", type: "topic", description: "Sensor readings: sensors.{type}.{location}", alternate: "sensors.alternate" },
  { name: "metrics", type: "topic", description: "System, application and transformed sensor metrics" },
  { name: "ai", type: "topic", description: "AI inference requests (ai.model.#) and results (ai.result.#)" },
  { name: "alerts", type: "fanout", description: "Alerts, fanned out to every bound queue" },
  { name: "archive", type: "topic", description: "Events and metrics kept for long-term analysis" },
  { name: "dead.letter", type: "direct", description: "Messages that failed after their retries" },
  // edgemesh: the sensors exchange's alternate exchange, so a reading of any device type has a home.
  { name: "sensors.alternate", type: "fanout", description: "Readings of types no sensors binding takes" },
] as const satisfies readonly Exchange[];

export type ExchangeName = (typeof EXCHANGES)[number]["name"];

function queue(name: string, consumer: string, origin: QueueDef["origin"] = "seed-001", pack: PackWindow | undefined = LIVE): QueueDef {
  // Cloudflare queue names take letters, digits and dashes.
  const slug = name.replaceAll(".", "-").replaceAll("_", "-");
  return {
    name,
    cloudflare: `edgemesh-${slug}`,
    binding: `Q_${slug.replaceAll("-", "_").toUpperCase()}`,
    consumer,
    origin,
    ...(pack && { pack }),
  };
}

export const DEAD_LETTER_QUEUE = "dead.letter.queue";

export const QUEUES = [
  queue("home.events.state_changes", "automations", "seed-001", PROMPT),
  queue("home.events.automations", "automations", "seed-001", PROMPT),
  queue("home.events.command_results", "archive-feed", "edgemesh", PROMPT),
  queue("sensors.temperature", "transformer"),
  queue("sensors.humidity", "transformer"),
  queue("sensors.motion", "automations", "seed-001", PROMPT),
  queue("sensors.energy", "transformer", "edgemesh"),
  queue("sensors.other", "transformer", "edgemesh"),
  queue("metrics.system", "metrics"),
  queue("metrics.application", "metrics"),
  queue("metrics.sensors", "metrics", "edgemesh"),
  queue("ai.inference.requests", "inference"),
  queue("ai.inference.results", "archive-feed"),
  queue("alerts.critical", "alert-feed"),
  queue("alerts.notifications", "notifier"),
  queue("archive.events", "archive", "seed-001", BULK),
  queue("archive.metrics", "archive", "seed-001", BULK),
  queue(DEAD_LETTER_QUEUE, "dead-letter", "seed-001", undefined),
] as const satisfies readonly QueueDef[];

export const BINDINGS: readonly Binding[] = [
  { exchange: "home.events", queue: "home.events.state_changes", pattern: "home.*.*.state_changed", origin: "seed-001" },
  { exchange: "home.events", queue: "home.events.automations", pattern: "home.*.*.trigger", origin: "seed-001" },
  { exchange: "home.events", queue: "home.events.command_results", pattern: "home.*.*.command_result", origin: "edgemesh" },
  { exchange: "sensors", queue: "sensors.temperature", pattern: "sensors.temperature.#", origin: "seed-001" },
  { exchange: "sensors", queue: "sensors.humidity", pattern: "sensors.humidity.#", origin: "seed-001" },
  { exchange: "sensors", queue: "sensors.motion", pattern: "sensors.motion.#", origin: "seed-001" },
  { exchange: "sensors", queue: "sensors.energy", pattern: "sensors.energy.#", origin: "edgemesh" },
  { exchange: "metrics", queue: "metrics.system", pattern: "metrics.system.#", origin: "seed-001" },
  { exchange: "metrics", queue: "metrics.application", pattern: "metrics.application.#", origin: "seed-001" },
  { exchange: "metrics", queue: "metrics.sensors", pattern: "metrics.sensors.#", origin: "edgemesh" },
  { exchange: "ai", queue: "ai.inference.requests", pattern: "ai.model.#", origin: "seed-001" },
  { exchange: "ai", queue: "ai.inference.results", pattern: "ai.result.#", origin: "seed-001" },
  { exchange: "alerts", queue: "alerts.critical", pattern: "#", origin: "seed-001" },
  { exchange: "alerts", queue: "alerts.notifications", pattern: "alerts.#", origin: "seed-001" },
  // Seed 001 binds both archive queues to `#`. Here each takes its own kind (the archive routes on
  // `archive.<type>.<routing key>`), so no reading is sent to archive.events only to be dropped
  // there (docs/topology.md, "Archive bindings").
  ...["event", "command", "command_result", "alert", "inference_request", "inference_result", "events"].map(
    (type): Binding => ({ exchange: "archive", queue: "archive.events", pattern: `archive.${type}.#`, origin: "edgemesh" }),
  ),
  ...["telemetry", "metric", "metrics"].map(
    (type): Binding => ({ exchange: "archive", queue: "archive.metrics", pattern: `archive.${type}.#`, origin: "edgemesh" }),
  ),
  // Readings the transformer used to forward to the archive go there from ingest, packed, so the
  // sensors consumers publish nothing (docs/topology.md, "Archive bindings").
  ...["temperature", "humidity", "energy"].map(
    (type): Binding => ({ exchange: "sensors", queue: "archive.metrics", pattern: `sensors.${type}.#`, origin: "edgemesh" }),
  ),
  { exchange: "dead.letter", queue: DEAD_LETTER_QUEUE, pattern: "#", origin: "seed-001" },
  { exchange: "sensors.alternate", queue: "sensors.other", pattern: "#", origin: "edgemesh" },
  // A reading of a type no binding names is archived like the others: the alternate exchange fans it out to both.
  { exchange: "sensors.alternate", queue: "archive.metrics", pattern: "#", origin: "edgemesh" },
];

export type QueueName = (typeof QUEUES)[number]["name"];

const queuesByName = new Map<string, QueueDef>(QUEUES.map((q) => [q.name, q]));
const queuesByCloudflareName = new Map<string, QueueDef>(QUEUES.map((q) => [q.cloudflare, q]));
const exchangesByName = new Map<string, Exchange>(EXCHANGES.map((e) => [e.name, e]));

export function findExchange(name: string): Exchange | undefined {
  return exchangesByName.get(name);
}

export function findQueue(name: string): QueueDef | undefined {
  return queuesByName.get(name);
}

/** The topology queue behind a Cloudflare queue name, as seen in `MessageBatch.queue`. */
export function queueForCloudflareName(cloudflareName: string): QueueDef | undefined {
  return queuesByCloudflareName.get(cloudflareName);
}

/**
 * A queue's pack window. Archive windows take `bulkWindowMs` when given (ARCHIVE_PACK_SECONDS,
 * docs/configuration.md: tests shorten it); live windows take `liveWindowMs` (LIVE_PACK_MS: a
 * longer window trades latency for fewer queue operations).
 */
export function packWindow(queueName: string, bulkWindowMs?: number, liveWindowMs?: number): PackWindow | undefined {
  const pack = findQueue(queueName)?.pack;
  if (pack === BULK && bulkWindowMs !== undefined) return { ...pack, windowMs: bulkWindowMs };
  if (pack === LIVE && liveWindowMs !== undefined) return { ...pack, windowMs: liveWindowMs };
  return pack;
}

/** How many times a consumer retries a failed message before it dead-letters it. */
export const MAX_RETRIES = 3;
