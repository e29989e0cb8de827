/**
 * The consumer of the metrics queues: the series sink stores each batch, then the alert rules
 * are evaluated on the same readings as they arrive (queues/alert-rules.ts). Both are idempotent
 * on message ids, so a batch retried for either reason does no harm.
 */

import { evaluateAlerts } from "../alert-rules";
import type { BatchHandler } from "../consumer";
import { series } from "./series";

export const metrics: BatchHandler = async (messages, ctx) => {
  const errors = (await series(messages, ctx)) ?? new Map<string, unknown>();
  await evaluateAlerts(
    ctx.env,
    messages.filter((m) => !errors.has(m.id)),
  );
  return errors;
};
