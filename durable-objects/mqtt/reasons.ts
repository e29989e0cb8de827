/**
 * Which MQTT 5.0 reason codes each packet may carry (spec §2.4 and the table of each packet), so
 * the gateway never answers with a code the packet being answered does not allow: a client that
 * reads one drops the connection (MQTT.js, Paho, mosquitto do).
 */
import { REASON } from "../../shared/mqtt";

const table = (...codes: number[]): ReadonlySet<number> => new Set(codes);

/** §3.2.2.2, Table 3-1. */
export const CONNACK_REASONS = table(
  0x00,
  0x80,
  0x81,
  0x82,
  0x83,
  0x84,
  0x85,
  0x86,
  0x87,
  0x88,
  0x89,
  0x8a,
  0x8c,
  0x90,
  0x95,
  0x97,
  0x99,
  0x9a,
  0x9b,
  0x9c,
  0x9d,
  0x9f,
);
/** §3.4.2.1 and §3.5.2.1: PUBACK and PUBREC share one table. */
export const PUBACK_REASONS = table(0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99);
/** §3.6.2.1 and §3.7.2.1: PUBREL and PUBCOMP. */
export const PUBREL_REASONS = table(0x00, 0x92);
/** §3.9.3, Table 3-8. */
export const SUBACK_REASONS = table(0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8f, 0x91, 0x97, 0x9e, 0xa1, 0xa2);
/** §3.11.3, Table 3-9. */
export const UNSUBACK_REASONS = table(0x00, 0x11, 0x80, 0x83, 0x87, 0x8f, 0x91);
/** §3.14.2.1, Table 3-10 (0x04 is the client's only). */
export const DISCONNECT_REASONS = table(
  0x00,
  0x04,
  0x80,
  0x81,
  0x82,
  0x83,
  0x87,
  0x89,
  0x8b,
  0x8d,
  0x8e,
  0x8f,
  0x90,
  0x93,
  0x94,
  0x95,
  0x96,
  0x97,
  0x98,
  0x99,
  0x9a,
  0x9b,
  0x9c,
  0x9d,
  0x9e,
  0x9f,
  0xa0,
  0xa1,
  0xa2,
);

/** A reason the packet's table allows, else 0x80 Unspecified error (every failure table has it). */
export function allowed(reasons: ReadonlySet<number>, reason: number): number {
  return reasons.has(reason) ? reason : REASON.unspecified;
}

/**
 * What a refused publish is answered with (v5 PUBACK / PUBREC; 3.1.1 closes instead), from the
 * refusal the ingest path gives.
 */
export const PUBLISH_REFUSAL = {
  /** Another device's topic, the publish permissions, a `source` mismatch, a will answering a command. */
  forbidden: REASON.notAuthorized,
  /** Not JSON, or not a valid message. */
  invalid: REASON.payloadFormatInvalid,
  /** No TOPIC_RULES rule, no exchange for the routing key. */
  unknownTopic: REASON.topicNameInvalid,
  /** Over the device's rate, or the retained-topic limit. */
  quota: REASON.quotaExceeded,
  /**
   * A message over MAX_MESSAGE_BYTES, and a result for a command the twin does not know: the
   * PUBLISH is well formed, the gateway will not take it (0x83). Not 0x95 or 0x92, which
   * PUBACK/PUBREC may not carry; not a DISCONNECT 0x95 either, after which a client would resend
   * the same QoS 1 message on every reconnection.
   */
  notAccepted: REASON.implementationSpecific,
} as const;
