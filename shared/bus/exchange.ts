/**
 * Exchanges as functions: evaluate the bindings of seed 001 for a message and send it to every
 * bound Cloudflare Queue. A message no binding takes is not dropped: it goes to the dead-letter
 * queue marked unroutable, where it is counted, listed and can be replayed once a binding exists.
 */
import { type DeadLetter, type Envelope, UNROUTABLE } from "../schemas/message";
import { matchesPattern } from "../topics";
import { BINDINGS, DEAD_LETTER_QUEUE, findExchange, findQueue, type QueueDef } from "./topology";

/** The queue names a message with this routing key reaches through the exchange. */
export function bindingsFor(exchangeName: string, routingKey: string): string[] {
  const exchange = findExchange(exchangeName);
  if (!exchange) return [];
  const queues = new Set<string>();
  for (const binding of BINDINGS) {
    if (binding.exchange !== exchange.name) continue;
    switch (exchange.type) {
      case "fanout":
        queues.add(binding.queue);
        break;
      case "direct":
        if (binding.pattern === "#" || binding.pattern === routingKey) queues.add(binding.queue);
        break;
      case "topic":
        if (matchesPattern(binding.pattern, routingKey)) queues.add(binding.queue);
        break;
    }
  }
  // RabbitMQ's alternate exchange: a message none of the bindings takes goes there, key unchanged.
  if (queues.size === 0 && "alternate" in exchange && exchange.alternate) return bindingsFor(exchange.alternate, routingKey);
  return [...queues];
}

/** Where each published message went. */
export interface Routed {
  id: string;
  queues: string[];
}

const encoder = new TextEncoder();

// Cloudflare Queues: at most 100 messages and 256 KB per sendBatch.
const MAX_BATCH_MESSAGES = 100;
const MAX_BATCH_BYTES = 250_000;

export class QueueBindingMissing extends Error {
  override name = "QueueBindingMissing";
}

function producer(env: object, queue: QueueDef): Queue {
  const binding = (env as Record<string, unknown>)[queue.binding];
  if (!binding || typeof (binding as Queue).sendBatch !== "function") {
    throw new QueueBindingMissing(
      `queue binding ${queue.binding} for "${queue.name}" is missing: did you forget its [[queues.producers]] entry in wrangler.toml?`,
    );
  }
  return binding as Queue;
}

/** Sends bodies to one queue in as few `sendBatch` calls as the platform limits allow. */
export async function sendToQueue(env: object, queueName: string, bodies: readonly unknown[]): Promise<void> {
  const queue = findQueue(queueName);
  if (!queue) throw new QueueBindingMissing(`no queue named "${queueName}" in the topology`);
  const target = producer(env, queue);
  let batch: MessageSendRequest[] = [];
  let bytes = 0;
  const sends: Promise<unknown>[] = [];
  for (const body of bodies) {
    const size = encoder.encode(JSON.stringify(body)).byteLength + 100;
    if (batch.length > 0 && (batch.length === MAX_BATCH_MESSAGES || bytes + size > MAX_BATCH_BYTES)) {
      sends.push(target.sendBatch(batch));
      batch = [];
      bytes = 0;
    }
    batch.push({ body, contentType: "json" });
    bytes += size;
  }
  if (batch.length > 0) sends.push(target.sendBatch(batch));
  await Promise.all(sends);
}

export function unroutable(message: Envelope, now = Date.now(), exchange = message.exchange, routingKey = message.routing_key): DeadLetter {
  return {
    message,
    exchange,
    routing_key: routingKey,
    queue: UNROUTABLE,
    error: { code: "unroutable", message: `no binding of exchange "${exchange}" matches "${routingKey}"` },
    attempts: 0,
    failed_at: new Date(now).toISOString(),
  };
}

/**
 * Publishes messages through their exchanges. Resolves once every message is safe in every
 * queue it is bound to (or in the dead-letter queue); rejects if any send failed, in which case
 * the caller answers with a retryable error and the sender retries: consumers are idempotent
 * on the message id, so a partial first attempt does no harm.
 */
export function publish(env: object, messages: readonly Envelope[]): Promise<Routed[]> {
  return deliver(
    env,
    messages.map((message) => ({ exchange: message.exchange, routingKey: message.routing_key, message })),
  );
}

/**
 * Sends messages through another exchange under routing keys of that exchange, the bodies
 * unchanged — as an AMQP broker re-routes a message without touching it. The archive feed uses
 * it: an archived message keeps its id, exchange and routing key, so it can be replayed as it was.
 */
export function republish(
  env: object,
  exchange: string,
  routingKeyOf: (message: Envelope) => string,
  messages: readonly Envelope[],
): Promise<Routed[]> {
  return deliver(
    env,
    messages.map((message) => ({ exchange, routingKey: routingKeyOf(message), message })),
  );
}

interface Delivery {
  exchange: string;
  routingKey: string;
  message: Envelope;
}

async function deliver(env: object, deliveries: readonly Delivery[]): Promise<Routed[]> {
  const perQueue = new Map<string, unknown[]>();
  const add = (queue: string, body: unknown) => {
    const list = perQueue.get(queue);
    if (list) list.push(body);
    else perQueue.set(queue, [body]);
  };
  const routed = deliveries.map(({ exchange, routingKey, message }) => {
    const queues = bindingsFor(exchange, routingKey);
    if (queues.length === 0) add(DEAD_LETTER_QUEUE, unroutable(message, Date.now(), exchange, routingKey));
    for (const queue of queues) add(queue, message);
    return { id: message.id, queues: queues.length > 0 ? queues : [DEAD_LETTER_QUEUE] };
  });
  await Promise.all([...perQueue].map(([queue, bodies]) => sendToQueue(env, queue, bodies)));
  return routed;
}
