/**
 * The alert feed: the consumer of `alerts.critical` (which the `alerts` fanout gives every
 * alert). It keeps each alert message in the archive and shows it live on the `system` hub's
 * `alert` stream, where the dashboard watches alerts (docs/live.md), and runs the automations
 * alerts trigger.
 */
import { hubStub } from "../../durable-objects/stubs";
import { log } from "../../shared/log";
import { runAutomations } from "../automations";
import type { BatchHandler } from "../consumer";
import { toArchive } from "./archive-feed";

export const alertFeed: BatchHandler = async (messages, { env }) => {
  await Promise.all([toArchive(env, messages), runAutomations(env, messages, "alert")]);
  const at = new Date().toISOString();
  const alerts = messages.filter((m) => m.type === "alert");
  if (alerts.length === 0) return undefined;
  try {
    await hubStub(env, "system").publish(
      alerts.map((m) => ({ stream: "alert" as const, device: m.payload.device, routing_key: m.routing_key, at, data: { ...m.payload } })),
    );
  } catch (error) {
    // A live view only: dashboards read the alert list on reconnect.
    log("warn", "alerts not announced", { error: String(error) });
  }
  return undefined;
};
