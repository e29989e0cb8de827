/**
 * Availability of the twin: the `state_changed` event a transition publishes and when the alarm
 * must next run (the availability rules themselves are ../availability.ts).
 */
import { availabilityTimeouts, type Config } from "../../shared/config";
import { type EnvelopeOf, SCHEMA_VERSION } from "../../shared/schemas/message";
import { type Availability, type AvailabilityState, nextTransitionAt } from "../availability";
import type { TwinProfile } from "./types";

/** Unsent outbox rows with nothing else due for longer than this get an alarm of their own … */
const SAFETY_HORIZON_MS = 5 * 60_000;
/** … this far ahead: after an eviction, the alarm sends what the in-process timer could not. */
const SAFETY_DELAY_MS = 60_000;

export function stateChangedMessage(
  profile: TwinProfile,
  id: string,
  at: string,
  previous: Availability,
  next: AvailabilityState,
): EnvelopeOf<"event"> {
  const room = profile.room ?? "unassigned";
  return {
    id,
    correlation_id: id,
    source: profile.id,
    type: "event",
    exchange: "home.events",
    routing_key: `home.${room}.${profile.id}.state_changed`,
    timestamp: at,
    received_at: at,
    payload: { event_type: "state_changed", previous_state: previous, current_state: next.status, reason: next.reason },
    metadata: { origin: "twin" },
    schema_version: SCHEMA_VERSION,
  };
}

/** The earliest of: the next availability change, a command expiry, the outbox's safety net. */
export function nextAlarmAt(
  config: Config,
  profile: TwinProfile,
  state: { lastSeen: number | null; availability: AvailabilityState },
  commandExpiry: number | undefined,
  unsent: boolean,
  now: number,
): number | undefined {
  const candidates: number[] = [];
  if (state.lastSeen !== null) {
    const next = nextTransitionAt(state.availability.status, state.lastSeen, availabilityTimeouts(config, profile.class));
    if (next !== undefined) candidates.push(next);
  }
  if (commandExpiry !== undefined) candidates.push(commandExpiry);
  let at = candidates.length > 0 ? Math.min(...candidates) : undefined;
  if (unsent && (at === undefined || at > now + SAFETY_HORIZON_MS)) at = now + SAFETY_DELAY_MS;
  return at;
}
