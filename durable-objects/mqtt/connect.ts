/**
 * CONNECT: the device's token checked by its twin, the client id rule, takeover of an older
 * connection with the same client id, the will stored, the session resumed or discarded, and the
 * CONNACK (or a refusal, then the close).
 */
import type { IConnectPacket } from "mqtt-packet";
import { readConfig } from "../../shared/config";
import { parseDeviceToken } from "../../shared/credentials";
import { sha256Hex } from "../../shared/ids";
import { CONNACK_V4, clientIdBelongs, connackV4, MqttError, REASON, WS_CLOSE } from "../../shared/mqtt";
import { twinStub } from "../stubs";
import { deliverCommands, resend } from "./commands";
import { keptProperties } from "./publish";
import { allowed, CONNACK_REASONS } from "./reasons";
import { awaitingRel, dropAwaitingRel, dropSession, dropWill, readFilters, readOutbound, storedSession, storeWill } from "./store";
import { type Conn, type Gateway, type Outbound, type StoredWill, TOPIC_ALIAS_MAXIMUM, V4_SESSION_EXPIRY_S, type Version } from "./types";
import { topicNameProblem } from "./validate";
import { payloadBytes, save, send, toBase64 } from "./wire";

export async function onConnect(g: Gateway, ws: WebSocket, conn: Conn, packet: IConnectPacket): Promise<void> {
  // [MQTT-3.1.0-2] a second CONNECT is a protocol violation.
  if (conn.state === "connected") throw new MqttError(REASON.protocolError, "a second CONNECT", "MQTT-3.1.0-2");
  const version = (packet.protocolVersion ?? 4) as Version;
  conn.version = version;
  if (version === 3) {
    // [MQTT-3.1.2-2] an unsupported protocol level gets return code 1, then the close.
    return refuseConnect(ws, conn, REASON.unsupportedProtocolVersion, "MQTT 3.1 (MQIsdp) is not supported: use 3.1.1 or 5.0");
  }
  const props = (packet.properties ?? {}) as Record<string, unknown>;
  const password = packet.password ? new TextDecoder().decode(packet.password as Uint8Array) : "";
  const username = packet.username ?? "";
  // The password is the device token `<id>.<secret>` (or only its secret); the username, when
  // set, must be the device id.
  const parsed = parseDeviceToken(password);
  const secret = parsed ? parsed.secret : password;
  const tokenDevice = parsed?.deviceId ?? conn.device;
  if ((username !== "" && username !== conn.device) || tokenDevice !== conn.device || secret.length < 16) {
    return refuseAuth(g, ws, conn, `username must be the device id "${conn.device}" and password its token`);
  }
  let clientId = packet.clientId;
  let assigned: string | undefined;
  if (clientId === "") {
    // [MQTT-3.1.3-7] a 3.1.1 client with an empty client id must ask for a clean session.
    if (version === 4 && packet.clean === false)
      return refuseConnect(ws, conn, REASON.clientIdentifierNotValid, "an empty client id needs clean session", "MQTT-3.1.3-8");
    // [MQTT-3.1.3-6] the server assigns one: the device id itself.
    clientId = conn.device;
    assigned = clientId;
  }
  if (!clientIdBelongs(clientId, conn.device)) {
    // [MQTT-3.1.3-9] a client id the server will not accept: 0x85 / return code 2.
    return refuseConnect(
      ws,
      conn,
      REASON.clientIdentifierNotValid,
      `client id must be "${conn.device}" or start with "${conn.device}-"`,
      "MQTT-3.1.3-9",
    );
  }
  const twin = twinStub(g.env, conn.device);
  if (!(await twin.checkSecret(secret))) return refuseAuth(g, ws, conn, "the device token is not valid");
  // [MQTT-3.1.3-11] the will topic is a topic name: no wildcards, well-formed UTF-8.
  if (packet.will && topicNameProblem(packet.will.topic))
    return refuseConnect(ws, conn, REASON.topicNameInvalid, "the will topic is not a valid topic name", "MQTT-3.1.3-11");

  // [MQTT-3.1.4-3] a second connection with the same client id takes over: the first is closed.
  for (const other of g.ctx.getWebSockets()) {
    if (other === ws) continue;
    const existing = other.deserializeAttachment() as Conn;
    if (existing.state !== "connected" || existing.clientId !== clientId) continue;
    await g.close(other, existing, REASON.sessionTakenOver, "session taken over by a new connection", { will: false, presence: false });
  }

  const config = readConfig(g.env);
  conn.state = "connected";
  conn.clientId = clientId;
  conn.secret = secret;
  conn.keepalive = packet.keepalive ?? 0;
  conn.lastSeen = Date.now();
  conn.will = packet.will !== undefined && packet.will !== null;
  if (version === 5) {
    conn.sessionExpiry = Number(props.sessionExpiryInterval ?? 0);
    conn.persistent = conn.sessionExpiry > 0;
    conn.clientReceiveMax = Number(props.receiveMaximum ?? 65_535);
    conn.clientMaxPacket = Number(props.maximumPacketSize ?? 268_435_455);
  } else {
    conn.persistent = packet.clean === false;
    conn.sessionExpiry = conn.persistent ? V4_SESSION_EXPIRY_S : 0;
  }
  // [MQTT-3.1.2-4] clean start discards any stored session; otherwise it resumes.
  let sessionPresent = false;
  let inflight: Record<string, Outbound> = {};
  const sql = g.sql();
  // v5 §3.1.3.2.2: a new connection of the client id before its will delay ends cancels that will.
  dropWill(sql, clientId);
  if (packet.will) {
    const will: StoredWill = {
      topic: packet.will.topic,
      payload: toBase64(payloadBytes(packet.will.payload as Uint8Array | string | undefined)),
      qos: packet.will.qos ?? 0,
      retain: packet.will.retain === true,
      delaySeconds: Number((packet.will.properties as Record<string, unknown> | undefined)?.willDelayInterval ?? 0),
      properties: keptProperties(packet.will.properties as Record<string, unknown> | undefined),
    };
    storeWill(sql, clientId, conn.device, JSON.stringify(will), await sha256Hex(secret));
  }
  if (packet.clean !== false) {
    dropSession(sql, clientId);
  } else {
    const row = storedSession(sql, clientId);
    if (row) {
      conn.filters = readFilters(conn.device, JSON.parse(row.subs));
      inflight = readOutbound(JSON.parse(row.inflight));
      sessionPresent = true;
      conn.awaitingRel = awaitingRel(sql, clientId);
    } else {
      dropAwaitingRel(sql, clientId);
    }
  }
  save(ws, conn);
  const properties =
    version === 5
      ? {
          receiveMaximum: config.MQTT_RECEIVE_MAXIMUM,
          maximumPacketSize: config.MQTT_MAX_PACKET_BYTES,
          topicAliasMaximum: TOPIC_ALIAS_MAXIMUM,
          retainAvailable: true,
          // Wildcards inside the device's own namespace only (docs/mqtt.md).
          wildcardSubscriptionAvailable: true,
          sharedSubscriptionAvailable: false,
          subscriptionIdentifiersAvailable: false,
          // Maximum QoS is left out: absent means 2, and 2 is not a value it may carry (v5 §3.2.2.3.4).
          ...(assigned !== undefined && { assignedClientIdentifier: assigned }),
        }
      : undefined;
  // [MQTT-3.2.2-1..3] session present only when a stored session resumes.
  send(ws, conn, { cmd: "connack", sessionPresent, reasonCode: 0, returnCode: 0, ...(properties && { properties }) });
  await twin.signalPresence("online", "mqtt_connect");
  await resend(g, ws, conn, inflight);
  await g.schedule();
  await deliverCommands(g, ws, conn);
}

async function refuseAuth(g: Gateway, ws: WebSocket, conn: Conn, message: string): Promise<void> {
  // Failed attempts count against the client address, as on HTTPS (functions/middleware/auth.ts).
  const { success } = await g.env.AUTH_FAILURES.limit({ key: conn.ip });
  return refuseConnect(ws, conn, success ? REASON.badUserNameOrPassword : REASON.connectionRateExceeded, message);
}

/** [MQTT-3.2.2-5] a refused CONNECT gets a CONNACK with a non-zero code, then the close. */
export function refuseConnect(
  ws: WebSocket,
  conn: Conn,
  reason: number,
  message: string,
  rule?: string,
  closeCode: number = WS_CLOSE.policy,
): void {
  const code =
    conn.version === 5 ? allowed(CONNACK_REASONS, reason) : conn.version === 3 ? CONNACK_V4.unacceptableProtocolVersion : connackV4(reason);
  send(ws, conn, {
    cmd: "connack",
    sessionPresent: false,
    reasonCode: code,
    returnCode: code,
    ...(conn.version === 5 && { properties: { reasonString: message.slice(0, 200) } }),
  });
  conn.state = "closed";
  ws.serializeAttachment(conn);
  ws.close(closeCode, (rule ? `${message} [${rule}]` : message).slice(0, 120));
}
