/** The Worker's queue() entry: one dispatcher for every queue of the topology. */
import { DEAD_LETTER_QUEUE, queueForCloudflareName } from "../shared/bus/topology";
import { log } from "../shared/log";
import { type BatchHandler, consume } from "./consumer";
import { alertFeed } from "./consumers/alert-feed";
import { archive } from "./consumers/archive";
import { archiveFeed } from "./consumers/archive-feed";
import { automations } from "./consumers/automations";
import { storeDeadLetters } from "./consumers/dead-letters";
import { inference } from "./consumers/inference";
import { metrics } from "./consumers/metrics";
import { notifier } from "./consumers/notifier";
import { transformer } from "./consumers/transformer";

const HANDLERS: Record<string, BatchHandler> = {
  transformer,
  metrics,
  archive,
  "archive-feed": archiveFeed,
  "alert-feed": alertFeed,
  notifier,
  automations,
  inference,
};

export async function handleQueue(batch: MessageBatch<unknown>, env: Env): Promise<void> {
  const queue = queueForCloudflareName(batch.queue);
  if (!queue) {
    // A consumer binding with no topology entry: leave the messages for a Worker that knows it.
    log("error", "batch from a queue the topology does not know", { queue: batch.queue });
    batch.retryAll({ delaySeconds: 60 });
    return;
  }
  if (queue.name === DEAD_LETTER_QUEUE) return storeDeadLetters(batch, env);
  const handler = HANDLERS[queue.consumer];
  if (!handler) throw new Error(`queue "${queue.name}" names consumer "${queue.consumer}", which queues/index.ts does not register`);
  await consume(batch, { env, queue }, handler);
}
