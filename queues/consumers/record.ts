/**
 * The consumer of queues whose own consumer is not built yet (automations, AI requests,
 * notifications): it acknowledges and counts. See docs/topology.md for which queues use it.
 */
import type { BatchHandler } from "../consumer";

export const record: BatchHandler = async () => undefined;
