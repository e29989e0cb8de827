/**
 * Every Durable Object stub in one place: the one `getByName` per class and the API its callers
 * see. The APIs are the classes' own method signatures (`Pick<Class, …>`): their methods take and
 * return plain data, which RPC copies unchanged, so those signatures are the honest types (the
 * generated `DurableObjectStub<T>` types give up on recursive JSON documents). The one cast
 * that says so is `typed()` below.
 *
 * Only types are imported from the classes' files, so no Durable Object file needs another one
 * at run time to reach it: a twin reaches its room, and a room its twins, through this module.
 */
import type { AgentLink } from "./agent-link";
import type { AlertActor } from "./alert-actor";

/** What the metrics consumer hands an AlertActor (its readings and the rules they match). */
export type { Observation } from "./alert-actor/rules";

import type { AutomationClock } from "./automation-clock";
import type { DeviceTwin } from "./device-twin/index";
import type { LiveHub } from "./live-hub";
import type { MqttSession } from "./mqtt/session";
import type { RoomActor } from "./room";

export type TwinApi = Pick<
  DeviceTwin,
  | "provision"
  | "configure"
  | "setCredential"
  | "deprovision"
  | "profile"
  | "ingest"
  | "recordRejection"
  | "errors"
  | "recent"
  | "twin"
  | "patchDesired"
  | "reportState"
  | "presence"
  | "signalPresence"
  | "enqueueCommand"
  | "awaitCommand"
  | "command"
  | "commands"
  | "pollCommands"
  | "takeCommands"
  | "completeCommand"
  | "checkSecret"
>;
export type RoomApi = Pick<RoomActor, "join" | "leave" | "members" | "report" | "reportAll" | "aggregates" | "forwardCommand" | "forget">;
export type HubApi = Pick<LiveHub, "publish" | "stats"> & { fetch(request: Request): Promise<Response> };
export type AlertActorApi = Pick<AlertActor, "evaluate" | "acknowledge" | "states" | "alarm" | "recheck">;
export type AutomationClockApi = Pick<AutomationClock, "sync" | "schedule">;

/** The one place a stub is seen as its class's plain-data API (see the comment at the top). */
function typed<Api>(stub: unknown): Api {
  return stub as Api;
}

export function twinStub(env: Env, deviceId: string): TwinApi {
  return typed(env.DEVICE_TWIN.getByName(deviceId));
}

export function roomStub(env: Env, roomId: string): RoomApi {
  return typed(env.ROOM.getByName(roomId));
}

/** The live hub of a room (`room:<id>`, `room:unassigned`) or of the system (`system`). */
export function hubStub(env: Env, name: string): HubApi {
  return typed(env.LIVE_HUB.getByName(name));
}

export function hubName(room: string | null | undefined): string {
  return `room:${room ?? "unassigned"}`;
}

export function alertStub(env: Env, device: string): AlertActorApi {
  return typed(env.ALERT_ACTOR.getByName(device));
}

export function clockStub(env: Env): AutomationClockApi {
  return typed(env.AUTOMATION_CLOCK.getByName("clock"));
}

export function agentLinkStub(env: Env, agentId: string): DurableObjectStub<AgentLink> {
  return env.AGENT_LINK.getByName(agentId);
}

export function sessionStub(env: Env, deviceId: string): DurableObjectStub<MqttSession> {
  return env.MQTT_SESSION.getByName(deviceId);
}
