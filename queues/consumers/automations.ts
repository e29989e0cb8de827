/**
 * The consumer of `home.events.automations`, `home.events.state_changes` and `sensors.motion`
 * (seed 001's n8n workflows): it keeps each message in the archive, as the archive feed did for
 * these queues, and runs the automations they trigger (queues/automations.ts).
 */
import { SCHEDULE_ROUTING_KEY, SCHEDULE_SOURCE } from "../../shared/schemas/automations";
import { runAutomations } from "../automations";
import type { BatchHandler } from "../consumer";
import { toArchive } from "./archive-feed";

export const automations: BatchHandler = async (messages, { env }) => {
  await toArchive(env, messages);
  await runAutomations(env, messages, "event");
  // The AutomationClock's ticks run the scheduled automations they name.
  const ticks = messages.filter((m) => m.source === SCHEDULE_SOURCE && m.routing_key === SCHEDULE_ROUTING_KEY);
  if (ticks.length > 0) await runAutomations(env, ticks, "schedule");
  return undefined;
};
