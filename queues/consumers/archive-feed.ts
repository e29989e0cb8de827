/**
 * The archive feed: what reaches the `archive` exchange. Nothing publishes there on the device's
 * path (the reply waits on nothing slow); instead the consumers of the queues worth keeping
 * re-publish what they consumed, once it is safe in its queue: transformed sensor readings (the
 * transformer), motion readings, state changes, command results, alerts and inference results
 * (this consumer). docs/archive.md says why these.
 *
 * The archive exchange routes on `archive.<type>.<routing key>`; the body goes unchanged, with its
 * id, so a redelivered input re-publishes the same message and the archive can tell.
 */

import { type Routed, republish } from "../../shared/bus/exchange";
import type { Envelope } from "../../shared/schemas/message";
import type { BatchHandler } from "../consumer";

export function archiveRoutingKey(message: Envelope): string {
  return `archive.${message.type}.${message.routing_key}`;
}

/** Sends messages through the `archive` exchange (both archive queues are bound to `#`). */
export function toArchive(env: object, messages: readonly Envelope[]): Promise<Routed[]> {
  return republish(env, "archive", archiveRoutingKey, messages);
}

/**
 * The consumer of queues whose messages are kept but not otherwise acted on yet: it forwards
 * the batch to the archive and acknowledges. When a queue gets its own consumer (workflows, the
 * alert manager, the AI pipeline), that consumer calls `toArchive` itself.
 */
export const archiveFeed: BatchHandler = async (messages, { env }) => {
  // One send per archive queue for the batch; if it fails, the batch is retried whole.
  await toArchive(env, messages);
  return undefined;
};
