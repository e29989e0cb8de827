/**
 * The MQTT gateway's protocol tables: reason and return codes in one place, the typed error that
 * carries them, the device's own topic namespace, the client id rule, and the zod schemas of the
 * JSON payloads the gateway reads and writes (docs/mqtt.md).
 */
import { z } from "zod";
import { DEVICE_ID_PATTERN } from "./ids";
import { filterMatches, filterProblem } from "./topics";

export { filterMatches, filterProblem };

/** MQTT 5.0 reason codes the gateway sends (spec §2.4), and what 3.1.1 answers instead. */
export const REASON = {
  success: 0x00,
  grantedQos0: 0x00,
  grantedQos1: 0x01,
  disconnectWithWill: 0x04,
  noMatchingSubscribers: 0x10,
  unspecified: 0x80,
  malformedPacket: 0x81,
  protocolError: 0x82,
  implementationSpecific: 0x83,
  unsupportedProtocolVersion: 0x84,
  clientIdentifierNotValid: 0x85,
  badUserNameOrPassword: 0x86,
  notAuthorized: 0x87,
  serverUnavailable: 0x88,
  serverBusy: 0x89,
  badAuthenticationMethod: 0x8c,
  keepAliveTimeout: 0x8d,
  sessionTakenOver: 0x8e,
  topicFilterInvalid: 0x8f,
  topicNameInvalid: 0x90,
  packetIdentifierNotFound: 0x92,
  receiveMaximumExceeded: 0x93,
  topicAliasInvalid: 0x94,
  packetTooLarge: 0x95,
  quotaExceeded: 0x97,
  payloadFormatInvalid: 0x99,
  retainNotSupported: 0x9a,
  connectionRateExceeded: 0x9f,
  subscriptionIdentifiersNotSupported: 0xa1,
} as const;

export type ReasonName = keyof typeof REASON;

/** MQTT 3.1.1 CONNACK return codes [MQTT-3.2.2-*], Table 3.1. */
export const CONNACK_V4 = {
  accepted: 0,
  unacceptableProtocolVersion: 1,
  identifierRejected: 2,
  serverUnavailable: 3,
  badUserNameOrPassword: 4,
  notAuthorized: 5,
} as const;

/** The 3.1.1 CONNACK return code for a v5 CONNACK reason. */
export function connackV4(reason: number): number {
  switch (reason) {
    case REASON.success:
      return CONNACK_V4.accepted;
    case REASON.unsupportedProtocolVersion:
      return CONNACK_V4.unacceptableProtocolVersion;
    case REASON.clientIdentifierNotValid:
      return CONNACK_V4.identifierRejected;
    case REASON.badUserNameOrPassword:
      return CONNACK_V4.badUserNameOrPassword;
    case REASON.serverUnavailable:
    case REASON.serverBusy:
      return CONNACK_V4.serverUnavailable;
    default:
      return CONNACK_V4.notAuthorized;
  }
}

/** WebSocket close codes the gateway closes with, beside the MQTT reason in the DISCONNECT (v5). */
export const WS_CLOSE = { normal: 1000, protocolError: 1002, policy: 1008, tooBig: 1009, internal: 1011 } as const;

/** A protocol violation or refusal: the connection ends with this reason code. */
export class MqttError extends Error {
  override name = "MqttError";
  constructor(
    readonly reason: number,
    message: string,
    /** The rule of the spec this enforces, e.g. `MQTT-3.3.2-2`. */
    readonly rule?: string,
  ) {
    super(rule ? `${message} [${rule}]` : message);
  }
}

// ── Topics ─────────────────────────────────────────────────────────────────────────────────

/** The device's own namespace: `devices/<id>/…`. */
export const deviceTopics = (id: string) => ({
  telemetry: `devices/${id}/telemetry`,
  events: `devices/${id}/events`,
  commands: `devices/${id}/commands`,
  desired: `devices/${id}/desired`,
  result: (commandId: string) => `devices/${id}/commands/${commandId}/result`,
});

export type OwnTopic =
  | { kind: "telemetry" }
  | { kind: "events" }
  | { kind: "command_result"; commandId: string }
  | { kind: "other_device" }
  | { kind: "own_other" }
  | { kind: "not_own" };

/** Classifies a PUBLISH topic against the device's namespace. */
export function classifyTopic(topic: string, deviceId: string): OwnTopic {
  const parts = topic.split("/");
  if (parts[0] !== "devices") return { kind: "not_own" };
  if (parts[1] !== deviceId) return { kind: "other_device" };
  if (parts.length === 3 && parts[2] === "telemetry") return { kind: "telemetry" };
  if (parts.length === 3 && parts[2] === "events") return { kind: "events" };
  if (parts.length === 5 && parts[2] === "commands" && parts[4] === "result" && parts[3])
    return { kind: "command_result", commandId: parts[3] };
  return { kind: "own_other" };
}

/** Topics under the device's namespace that only the edge publishes: a device may not publish to them. */
export function serverOwned(topic: string, deviceId: string): boolean {
  const own = deviceTopics(deviceId);
  return topic === own.commands || topic === own.desired || (topic.startsWith(`${own.commands}/`) && !topic.endsWith("/result"));
}

/** The most filters one connection may hold (they travel with the socket through hibernation). */
export const MAX_FILTERS_PER_CONNECTION = 16;
export const MAX_FILTER_LENGTH = 256;

/**
 * A device may subscribe inside its own namespace only, `devices/<id>/…`, wildcards included
 * (least privilege: no other device's topics, nothing outside). Undefined when outside.
 */
export function ownFilter(filter: string, deviceId: string): { commands: boolean; desired: boolean; exactCommands: boolean } | undefined {
  if (!filter.startsWith(`devices/${deviceId}/`) || filterProblem(filter) || filter.length > MAX_FILTER_LENGTH) return undefined;
  const own = deviceTopics(deviceId);
  return {
    commands: filterMatches(filter, own.commands),
    desired: filterMatches(filter, own.desired),
    exactCommands: filter === own.commands,
  };
}

/** A client id belongs to a device when it is the device id or starts with `<device-id>-`. */
export function clientIdBelongs(clientId: string, deviceId: string): boolean {
  return clientId === deviceId || (clientId.startsWith(`${deviceId}-`) && clientId.length <= 128);
}

export function validDeviceId(id: string): boolean {
  return DEVICE_ID_PATTERN.test(id);
}

// ── Payloads ───────────────────────────────────────────────────────────────────────────────

/** What a device publishes to `devices/<id>/commands/<cmd-id>/result`. */
export const MqttCommandResult = z.strictObject({
  status: z.enum(["succeeded", "failed"]),
  result: z.json().optional(),
  error: z.string().max(2000).optional(),
});
export type MqttCommandResult = z.infer<typeof MqttCommandResult>;

/** What the gateway publishes to `devices/<id>/commands` for each command of the twin's outbox. */
export const MqttCommandDelivery = z.object({
  id: z.string(),
  command: z.string(),
  parameters: z.json().optional(),
  correlation_id: z.string(),
  expires_at: z.string(),
});
export type MqttCommandDelivery = z.infer<typeof MqttCommandDelivery>;
