/**
 * Availability of a device from when it was last seen: online, then stale after its class's
 * stale timeout, then offline after its offline timeout. An explicit disconnect (or an MQTT last
 * will) makes it offline at once, until it is heard from again.
 */
import type { Availability } from "../shared/api-types";

export type { Availability, AvailabilityState } from "../shared/api-types";

export interface Timeouts {
  staleMs: number;
  offlineMs: number;
}

/** What the status should be now, judged only by silence. */
export function statusBySilence(lastSeen: number, now: number, timeouts: Timeouts): Availability {
  const silent = now - lastSeen;
  if (silent >= timeouts.offlineMs) return "offline";
  if (silent >= timeouts.staleMs) return "stale";
  return "online";
}

/** When the status would next change by silence alone, or undefined when it cannot (offline). */
export function nextTransitionAt(status: Availability, lastSeen: number, timeouts: Timeouts): number | undefined {
  if (status === "online") return lastSeen + timeouts.staleMs;
  if (status === "stale") return lastSeen + timeouts.offlineMs;
  return undefined;
}
