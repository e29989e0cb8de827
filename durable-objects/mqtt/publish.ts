/**
 * PUBLISH from the device (or its will): topic aliases, then into the ingest path when the topic
 * routes, into the retained store when flagged, and on to the device's own subscribers. The
 * PUBACK / PUBREC that answers it.
 *
 * A QoS 0/1 publish without retain is pipelined: its twin call starts at once, batched with the
 * others arriving meanwhile (batch.ts), and the rest of it — forwarding, the PUBACK — is a
 * deferred step of the connection, run in the order the publishes arrived (session.ts), after its
 * batch's durable write. Anything else (QoS 2, retained, a command result, any other packet)
 * first waits for the deferred steps, so it sees, and answers after, everything before it.
 */
import type { IPublishPacket } from "mqtt-packet";
import { readConfig } from "../../shared/config";
import { classifyTopic, MqttCommandResult, MqttError, type OwnTopic, REASON, serverOwned } from "../../shared/mqtt";
import { jsonLimitsOf, parseJsonSafe } from "../../shared/safe-json";
import type { MessageType } from "../../shared/schemas/message";
import { mapTopic } from "../../shared/topics";
import { twinStub } from "../stubs";
import type { ItemOutcome } from "./batch";
import { allowed, PUBACK_REASONS, PUBLISH_REFUSAL } from "./reasons";
import { addAwaitingRel, removeRetained, retainedRoom, storeRetained } from "./store";
import { forward } from "./subscribe";
import type { Conn, Gateway, Message, Pipeline, Publisher, RetainedProperties } from "./types";
import { payloadBytes, save, send } from "./wire";

/** The properties of an incoming v5 PUBLISH (or will) that travel on with it. */
export function keptProperties(props: Record<string, unknown> | undefined): RetainedProperties {
  if (!props) return {};
  const kept: RetainedProperties = {};
  if (typeof props.payloadFormatIndicator === "boolean") kept.payloadFormatIndicator = props.payloadFormatIndicator;
  if (typeof props.contentType === "string") kept.contentType = props.contentType;
  if (typeof props.messageExpiryInterval === "number") kept.messageExpiryInterval = props.messageExpiryInterval;
  if (props.userProperties && typeof props.userProperties === "object")
    kept.userProperties = props.userProperties as Record<string, string | string[]>;
  return kept;
}

export async function onPublish(g: Gateway, ws: WebSocket, conn: Conn, packet: IPublishPacket, pipe: Pipeline): Promise<void> {
  // validate.ts checked the packet id, the topic name, the alias range and the properties.
  const id = packet.messageId ?? 0;
  const topic = resolveAlias(conn, packet);
  const message: Message = {
    topic,
    payload: payloadBytes(packet.payload as Uint8Array | string | undefined),
    qos: packet.qos,
    retain: packet.retain === true,
    properties: keptProperties(packet.properties as Record<string, unknown> | undefined),
  };
  // The alias is the next packets' to see now.
  save(ws, conn);
  if (packet.qos < 2 && !message.retain && classifyTopic(topic, conn.device).kind !== "command_result") {
    // The answer comes in order, after the twin's write.
    const planned = plan(g, conn, message);
    pipe.defer(async () => {
      const reason = await complete(g, conn, message, planned);
      const current = ws.deserializeAttachment() as Conn;
      if (current.state === "closed") return;
      answer(g, ws, current, packet, id, topic, reason);
    });
    return;
  }
  await pipe.drain();
  // What the deferred steps changed (their saves) is the connection now.
  const current = ws.deserializeAttachment() as Conn;
  if (current.state === "closed") return;
  if (packet.qos === 2) {
    // [MQTT-4.3.3-9] a repeat of a QoS 2 publish still awaiting PUBREL is acknowledged, not delivered again.
    if (current.awaitingRel.includes(id)) {
      send(ws, current, { cmd: "pubrec", messageId: id, reasonCode: 0 });
      return;
    }
    // [MQTT-3.3.4-9] no more QoS 2 publishes in flight than the Receive Maximum we announced.
    if (current.awaitingRel.length >= readConfig(g.env).MQTT_RECEIVE_MAXIMUM)
      throw new MqttError(REASON.receiveMaximumExceeded, "more QoS 2 publishes in flight than the receive maximum", "MQTT-3.3.4-9");
  }
  const reason = await accept(g, current, message);
  const after = ws.deserializeAttachment() as Conn;
  if (after.state === "closed") return;
  answer(g, ws, after, packet, id, topic, reason);
}

/** The PUBACK / PUBREC of a publish (none for QoS 0), or the end of a 3.1.1 connection. */
function answer(g: Gateway, ws: WebSocket, conn: Conn, packet: IPublishPacket, id: number, topic: string, reason: number): void {
  if (reason >= 0x80 && conn.version === 4 && (reason === REASON.notAuthorized || reason === REASON.quotaExceeded)) {
    // 3.1.1 has no negative acknowledgement. A publish the device may not make ends the connection
    // [MQTT-3.3.5-2], and so does one over its quota (the client keeps it and sends it again later).
    throw new MqttError(reason, `publish to "${topic.slice(0, 64)}" refused`);
  }
  // Anything else refused (a payload that is no valid message, an unknown topic) would be refused
  // again on every resend: 3.1.1 acknowledges it as usual and drops it, v5 answers its reason code;
  // a QoS 0 one is just dropped. The refusal is in the twin's error log either way.
  if (reason >= 0x80 && packet.qos === 0) {
    save(ws, conn);
    return;
  }
  const code = conn.version === 4 ? REASON.success : allowed(PUBACK_REASONS, reason);
  if (packet.qos === 1) send(ws, conn, { cmd: "puback", messageId: id, reasonCode: code });
  if (packet.qos === 2) {
    // [MQTT-4.3.3-8] after a PUBREC with a failure code the packet id is free again.
    if (code < 0x80) {
      conn.awaitingRel.push(id);
      if (conn.persistent) addAwaitingRel(g.sql(), conn.clientId, id);
    }
    send(ws, conn, { cmd: "pubrec", messageId: id, reasonCode: code });
  }
  save(ws, conn);
}

/** v5 topic aliases, client to server [MQTT-3.3.2-7..12]. */
function resolveAlias(conn: Conn, packet: IPublishPacket): string {
  const alias = packet.properties?.topicAlias;
  if (alias === undefined) return packet.topic;
  // [MQTT-3.3.2-8] its range (0x94) was checked in validate.ts.
  if (packet.topic !== "") {
    conn.aliases[String(alias)] = packet.topic;
    return packet.topic;
  }
  const known = conn.aliases[String(alias)];
  if (known === undefined) throw new MqttError(REASON.protocolError, `topic alias ${alias} was never set`, "MQTT-3.3.4-3");
  return known;
}

/**
 * A device's publish, or its will: into the ingest path when the topic routes, into the retained
 * store when flagged, and on to the device's own subscribers. Returns the PUBACK/PUBREC reason.
 */
export async function accept(g: Gateway, from: Publisher, message: Message): Promise<number> {
  return complete(g, from, message, plan(g, from, message));
}

/** What a publish does, decided when it arrives; its twin call (if any) starts now. */
interface Plan {
  /** The answer, known without the twin. */
  reason?: number;
  inNamespace: boolean;
  routed: boolean;
  twin?: Promise<number>;
}

function plan(g: Gateway, from: Publisher, message: Message): Plan {
  const { topic } = message;
  if (serverOwned(topic, from.device)) return { reason: REASON.notAuthorized, inNamespace: false, routed: false };
  const own = classifyTopic(topic, from.device);
  if (own.kind === "other_device") return { reason: REASON.notAuthorized, inNamespace: false, routed: false };
  const inNamespace = own.kind !== "not_own";
  if (message.retain && inNamespace) {
    // [MQTT-3.3.1-6/7] a retained publish with no payload removes the topic's retained message.
    if (message.payload.byteLength === 0) {
      removeRetained(g.sql(), topic);
      return { reason: REASON.success, inNamespace: false, routed: false };
    }
    if (!retainedRoom(g.sql(), topic)) return { reason: REASON.quotaExceeded, inNamespace: false, routed: false };
  }
  // Other topics of the namespace are the device's own: kept and handed to its subscribers, not routed.
  const routed = own.kind !== "own_other";
  if (!routed) return { inNamespace, routed };
  const twin = route(g, from, own, topic, message.payload);
  // Awaited by `complete`, maybe a few steps later: a failure meanwhile is not an unhandled one.
  twin.catch(() => undefined);
  return { inNamespace, routed, twin };
}

/** The rest of a publish once its twin call answered: the retained store and the device's subscribers. */
async function complete(g: Gateway, from: Publisher, message: Message, planned: Plan): Promise<number> {
  if (planned.reason !== undefined) return planned.reason;
  const reason = planned.twin ? await planned.twin : REASON.success;
  if (reason >= 0x80 || !planned.inNamespace) return reason;
  if (message.retain) storeRetained(g.sql(), message);
  const delivered = forward(g, from.clientId, message);
  return !planned.routed && !message.retain && delivered === 0 ? REASON.noMatchingSubscribers : reason;
}

/** The publish into the ingest path (batched with the session's others, batch.ts). Returns the PUBACK/PUBREC reason code. */
async function route(g: Gateway, from: Publisher, own: OwnTopic, topic: string, payload: Uint8Array): Promise<number> {
  const twin = twinStub(g.env, from.device);
  let body: unknown;
  try {
    // The one JSON entry (shared/safe-json.ts): depth, breadth and prototype keys checked before parsing.
    const parsed = parseJsonSafe(
      new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(payload),
      jsonLimitsOf(readConfig(g.env)),
    );
    if (!parsed.ok) return REASON.payloadFormatInvalid;
    body = parsed.value;
  } catch {
    return REASON.payloadFormatInvalid;
  }
  if (own.kind === "command_result") {
    const result = MqttCommandResult.safeParse(body);
    if (!result.success) return REASON.payloadFormatInvalid;
    // Under the connection's own secret, so a rotated token cannot answer commands either; a will
    // (kept only as the secret's hash) may not answer one.
    if (from.credentialHash !== undefined) return REASON.notAuthorized;
    const done = await twin.completeCommand(from.secret, own.commandId, result.data);
    if (done.ok) return REASON.success;
    if (done.code === "unauthorized") throw new MqttError(REASON.notAuthorized, "the device token is no longer valid");
    if (done.code === "rate_limited") return REASON.quotaExceeded;
    return done.code === "not_found" ? PUBLISH_REFUSAL.notAccepted : REASON.implementationSpecific;
  }
  if (typeof body !== "object" || body === null || Array.isArray(body)) return REASON.payloadFormatInvalid;
  // A bare reading object (`{"temperature": 21.5}`) is the message's payload.
  let item = "payload" in body ? (body as Record<string, unknown>) : { payload: body };
  let defaultType: MessageType = "telemetry";
  let allowedTypes: MessageType[] = ["telemetry", "metric"];
  if (own.kind === "events") {
    defaultType = "event";
    allowedTypes = ["event", "alert", "command_result"];
  } else if (own.kind === "not_own") {
    // Everything else goes through TOPIC_RULES, as on the LAN agent.
    const mapping = mapTopic(topic, readConfig(g.env).TOPIC_RULES);
    if (!mapping) return REASON.topicNameInvalid;
    if (mapping.device !== undefined && mapping.device !== from.device) return REASON.notAuthorized;
    if (item.routing_key !== undefined && item.routing_key !== mapping.routingKey) return REASON.payloadFormatInvalid;
    item = { ...item, routing_key: mapping.routingKey };
  }
  const outcome = await g.batcher(from.device).submit(
    {
      secret: from.secret,
      ...(from.credentialHash !== undefined && { credentialHash: from.credentialHash }),
      defaultType,
      allowedTypes,
    },
    item,
  );
  return reasonOf(outcome);
}

/** A publish's reason code from its share of the twin's answer. */
function reasonOf(outcome: ItemOutcome): number {
  if (!outcome.ok) {
    if (outcome.code === "unauthorized") throw new MqttError(REASON.notAuthorized, "the device token is no longer valid");
    if (outcome.code === "rate_limited") return REASON.quotaExceeded;
    // The twin's outbox is full (its queues are not taking messages): nothing was stored. Ending the
    // connection without an answer makes the client publish it again after reconnecting.
    if (outcome.code === "unavailable") throw new MqttError(REASON.serverBusy, "the device's outbox is full; publish again later");
    return REASON.implementationSpecific;
  }
  if (outcome.accepted) return REASON.success;
  const code = outcome.rejected?.code;
  if (code === "forbidden" || code === "source_mismatch") return REASON.notAuthorized;
  if (code === "unknown_exchange") return REASON.topicNameInvalid;
  if (code === "message_too_large") return PUBLISH_REFUSAL.notAccepted;
  return REASON.payloadFormatInvalid;
}
