/**
 * The consumer of the metrics queues: the series sink stores each batch, then the alert rules
 * are evaluated on the same readings as they arrive (queues/alert-rules.ts), and threshold
 * automations triggered (queues/automations.ts). Both are idempotent
 * on message ids, so a batch retried for either reason does no harm.
 */

import { evaluateAlerts } from "../alert-rules";
import { runAutomations } from "../automations";
import type { BatchHandler } from "../consumer";
import { series } from "./series";

export const metrics: BatchHandler = async (messages, ctx) => {
  const errors = (await series(messages, ctx)) ?? new Map<string, unknown>();
  const stored = messages.filter((m) => !errors.has(m.id));
  await Promise.all([evaluateAlerts(ctx.env, stored), runAutomations(ctx.env, stored, "threshold")]);
  return errors;
};
