/**
 * MqttSession: the edge's MQTT gateway, one Durable Object per device (name = device id), so no
 * object ever carries every client. It holds the device's MQTT-over-WebSocket connections as
 * hibernatable WebSockets, parses MQTT 3.1.1 and 5.0 with mqtt-packet, authenticates CONNECT
 * against the device's twin, and hands every PUBLISH to the twin's `ingest` — the same
 * validation, permissions, rate and duplicate handling as HTTPS. Commands from the twin's
 * outbox go out as PUBLISH to `devices/<id>/commands`; results come back on
 * `devices/<id>/commands/<cmd-id>/result`. Protocol notes: docs/mqtt.md.
 *
 * One handler per packet type; every refusal and violation is an MqttError carrying its reason
 * code, with the rule of the spec it enforces cited beside the check.
 */
import { DurableObject } from "cloudflare:workers";
import { generate, type IConnectPacket, type IPublishPacket, parser as mqttParser, type Packet } from "mqtt-packet";
import { readConfig } from "../shared/config";
import { parseDeviceToken } from "../shared/credentials";
import { sha256Hex } from "../shared/ids";
import {
  CONNACK_V4,
  classifyTopic,
  clientIdBelongs,
  connackV4,
  deviceTopics,
  filterMatches,
  filterProblem,
  MAX_FILTERS_PER_CONNECTION,
  type MqttCommandDelivery,
  MqttCommandResult,
  MqttError,
  type OwnTopic,
  ownFilter,
  REASON,
  serverOwned,
  WS_CLOSE,
} from "../shared/mqtt";
import type { MessageType } from "../shared/schemas/message";
import { mapTopic, mqttTopicProblem } from "../shared/topics";
import type { Command } from "./command-outbox";
import { type TwinApi, twinStub } from "./stubs";

type Version = 3 | 4 | 5;

/** A subscription: the QoS granted and v5's subscription options [MQTT-3.8.3-3/4]. */
interface Sub {
  qos: number;
  noLocal: boolean;
  retainAsPublished: boolean;
}

/** One of our publishes awaiting the client: a command at QoS 1 (PUBACK) or 2 (PUBREC, then PUBCOMP). */
interface Outbound {
  command: string;
  qos: 1 | 2;
  /** QoS 2: PUBREC came and our PUBREL is out [MQTT-4.3.3-4]. */
  released: boolean;
}

/** The will as the session keeps it (SQL `wills`), published when its connection ends without DISCONNECT. */
interface StoredWill {
  topic: string;
  /** base64 */
  payload: string;
  qos: number;
  retain: boolean;
  delaySeconds: number;
  properties: RetainedProperties;
}

/** Who a publish comes from: a live connection (its secret) or a will (the secret's hash). */
interface Publisher {
  device: string;
  clientId: string;
  secret: string;
  credentialHash?: string;
}

/** A publish as the gateway accepts, keeps and hands it on. */
interface Message {
  topic: string;
  payload: Uint8Array;
  qos: number;
  retain: boolean;
  properties: RetainedProperties;
}

/** The v5 PUBLISH properties a stored message keeps and hands on [MQTT-3.3.2-*]. */
interface RetainedProperties {
  payloadFormatIndicator?: boolean;
  contentType?: string;
  messageExpiryInterval?: number;
  userProperties?: Record<string, string | string[]>;
}

/** What survives hibernation with each socket (serializeAttachment). */
interface Conn {
  device: string;
  ip: string;
  /** "open": no CONNECT yet; "closed": the gateway ended it (webSocketClose must not act again). */
  state: "open" | "connected" | "closed";
  openedAt: number;
  version: Version;
  clientId: string;
  keepalive: number;
  lastSeen: number;
  /** A will is stored for this connection (SQL `wills`). */
  will: boolean;
  /** The device secret, for the twin's ingest; held only with the live socket, never in storage. */
  secret: string;
  persistent: boolean;
  sessionExpiry: number;
  filters: Record<string, Sub>;
  /** QoS 2 packet ids received and PUBREC'd, awaiting PUBREL. */
  awaitingRel: number[];
  /** Our command publishes awaiting the client, by packet id. */
  outbound: Record<string, Outbound>;
  nextId: number;
  aliases: Record<string, string>;
  clientReceiveMax: number;
  clientMaxPacket: number;
  /** A packet was split across frames when the socket last went idle. */
  partial: boolean;
}

/**
 * sessions: persistent sessions (subscriptions, and command publishes not yet acknowledged).
 * retained: the device namespace's retained messages [MQTT-3.3.1-5]. awaiting_rel: QoS 2
 * publishes of persistent sessions received and PUBREC'd, not yet released [MQTT-4.3.3-9]; a
 * resumed session keeps refusing to ingest their repeats. wills: the will of each
 * connected client id, and wills waiting out their v5 delay (fire_at set); the secret is kept only
 * as its SHA-256, which the twin compares with its own.
 */
const SCHEMA = `CREATE TABLE IF NOT EXISTS sessions (
  client_id TEXT PRIMARY KEY, subs TEXT NOT NULL, inflight TEXT NOT NULL DEFAULT '{}', expires INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS retained (
  topic TEXT PRIMARY KEY, payload BLOB NOT NULL, qos INTEGER NOT NULL, properties TEXT NOT NULL, expires_at INTEGER);
CREATE TABLE IF NOT EXISTS awaiting_rel (client_id TEXT NOT NULL, packet_id INTEGER NOT NULL, PRIMARY KEY (client_id, packet_id));
CREATE TABLE IF NOT EXISTS wills (
  client_id TEXT PRIMARY KEY, device TEXT NOT NULL, will TEXT NOT NULL, credential TEXT NOT NULL, fire_at INTEGER);`;
/** Retained topics one device may hold; a retained publish beyond it is refused with 0x97. */
export const MAX_RETAINED_PER_DEVICE = 100;
/** A CONNECT must arrive this soon after the upgrade. */
export const CONNECT_TIMEOUT_MS = 10_000;
/** Subscribed connections also poll the outbox this often, in case a notification was lost. */
const COMMAND_POLL_MS = 30_000;
/** MQTT 3.1.1 sessions have no expiry of their own; the gateway keeps them this long. */
const V4_SESSION_EXPIRY_S = 7 * 86_400;
const TOPIC_ALIAS_MAXIMUM = 16;

/** mqtt-packet's streaming parser, as the gateway uses it (its typings lean on Node's types). */
interface PacketParser {
  parse(bytes: Uint8Array): number;
  on(event: "packet", listener: (packet: Packet) => void): void;
  on(event: "error", listener: (error: Error) => void): void;
  /** The packet being parsed; its length is known once its fixed header is in. */
  packet: { length: number };
}

/** A parser per connection, with what it produced from the current frame. */
export interface Reader {
  parser: PacketParser;
  packets: Packet[];
  error: Error | undefined;
}

export function newReader(protocolVersion: Version): Reader {
  const parser = mqttParser({ protocolVersion }) as unknown as PacketParser;
  const reader: Reader = { parser, packets: [], error: undefined };
  parser.on("packet", (packet) => reader.packets.push(packet));
  parser.on("error", (error) => {
    reader.error ??= error;
  });
  return reader;
}

/** The QoS commands go out at: the one granted on the exact command topic; a wildcard gets QoS 0. */
function commandsQos(conn: Conn): number | null {
  let qos: number | null = null;
  for (const [filter, sub] of Object.entries(conn.filters)) {
    if (filterMatches(filter, deviceTopics(conn.device).commands)) qos = Math.max(qos ?? 0, sub.qos);
  }
  return qos;
}

function wantsDesired(conn: Conn): boolean {
  return Object.keys(conn.filters).some((filter) => filterMatches(filter, deviceTopics(conn.device).desired));
}

/** Sessions stored before wildcard subscriptions held `{commands, desired}` QoS values. */
function readFilters(device: string, stored: unknown): Record<string, Sub> {
  const value = (stored ?? {}) as Record<string, unknown>;
  if ("commands" in value || "desired" in value) {
    const filters: Record<string, Sub> = {};
    const own = deviceTopics(device);
    if (typeof value.commands === "number") filters[own.commands] = { qos: value.commands, noLocal: false, retainAsPublished: false };
    if (typeof value.desired === "number") filters[own.desired] = { qos: value.desired, noLocal: false, retainAsPublished: false };
    return filters;
  }
  return value as Record<string, Sub>;
}

/** Outbound entries stored before QoS 2 held only the command id (QoS 1). */
function readOutbound(stored: unknown): Record<string, Outbound> {
  const entries = Object.entries((stored ?? {}) as Record<string, string | Outbound>);
  return Object.fromEntries(
    entries.map(([id, value]) => [id, typeof value === "string" ? { command: value, qos: 1 as const, released: false } : value]),
  );
}

function toBase64(bytes: Uint8Array): string {
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary);
}

function fromBase64(text: string): Uint8Array {
  return Uint8Array.from(atob(text), (char) => char.charCodeAt(0));
}

function payloadBytes(payload: Uint8Array | string | undefined): Uint8Array {
  if (payload === undefined) return new Uint8Array();
  return typeof payload === "string" ? new TextEncoder().encode(payload) : new Uint8Array(payload);
}

/** The properties of an incoming v5 PUBLISH (or will) that travel on with it. */
function keptProperties(props: Record<string, unknown> | undefined): RetainedProperties {
  if (!props) return {};
  const kept: RetainedProperties = {};
  if (typeof props.payloadFormatIndicator === "boolean") kept.payloadFormatIndicator = props.payloadFormatIndicator;
  if (typeof props.contentType === "string") kept.contentType = props.contentType;
  if (typeof props.messageExpiryInterval === "number") kept.messageExpiryInterval = props.messageExpiryInterval;
  if (props.userProperties && typeof props.userProperties === "object")
    kept.userProperties = props.userProperties as Record<string, string | string[]>;
  return kept;
}

function toDelivery(command: Command): MqttCommandDelivery {
  return {
    id: command.id,
    command: command.command,
    parameters: command.parameters as MqttCommandDelivery["parameters"],
    correlation_id: command.correlation_id,
    expires_at: command.expires_at,
  };
}

export class MqttSession extends DurableObject<Env> {
  #parsers = new Map<WebSocket, Reader>();
  #chains = new Map<WebSocket, Promise<void>>();
  #schema = false;

  #sql(): SqlStorage {
    if (!this.#schema) this.ctx.storage.sql.exec(SCHEMA);
    this.#schema = true;
    return this.ctx.storage.sql;
  }

  #twin(conn: Conn): TwinApi {
    return twinStub(this.env, conn.device);
  }

  /** The upgrade, forwarded by the Worker with the device id and client address it set. */
  override async fetch(request: Request): Promise<Response> {
    if (request.headers.get("upgrade")?.toLowerCase() !== "websocket") return new Response("expected a WebSocket upgrade", { status: 426 });
    const pair = new WebSocketPair();
    const [client, server] = [pair[0], pair[1]];
    this.ctx.acceptWebSocket(server);
    const now = Date.now();
    const conn: Conn = {
      device: request.headers.get("x-edgemesh-device") ?? "",
      ip: request.headers.get("x-edgemesh-client") ?? "unknown",
      state: "open",
      openedAt: now,
      version: 4,
      clientId: "",
      keepalive: 0,
      lastSeen: now,
      will: false,
      secret: "",
      persistent: false,
      sessionExpiry: 0,
      filters: {},
      awaitingRel: [],
      outbound: {},
      nextId: 1,
      aliases: {},
      clientReceiveMax: 65_535,
      clientMaxPacket: 268_435_455,
      partial: false,
    };
    server.serializeAttachment(conn);
    this.#parsers.set(server, newReader(4));
    await this.#scheduleAt(now + CONNECT_TIMEOUT_MS);
    // [MQTT-6.0.0-4] the server selects the subprotocol "mqtt".
    return new Response(null, { status: 101, webSocket: client, headers: { "sec-websocket-protocol": "mqtt" } });
  }

  // ── Frames ──────────────────────────────────────────────────────────────────────────────

  override async webSocketMessage(ws: WebSocket, data: string | ArrayBuffer): Promise<void> {
    // Packets of one connection are handled strictly in order, even across awaits.
    const previous = this.#chains.get(ws) ?? Promise.resolve();
    const next = previous.then(() => this.#frame(ws, data)).catch((error: unknown) => this.#fail(ws, error));
    this.#chains.set(ws, next);
    await next;
  }

  async #frame(ws: WebSocket, data: string | ArrayBuffer): Promise<void> {
    const conn = ws.deserializeAttachment() as Conn;
    if (conn.state === "closed") return;
    // [MQTT-6.0.0-1] MQTT control packets travel in binary WebSocket frames only.
    if (typeof data === "string") throw new MqttError(REASON.malformedPacket, "text frame; MQTT uses binary frames", "MQTT-6.0.0-1");
    let reader = this.#parsers.get(ws);
    if (!reader) {
      // Woken from hibernation: a packet split across frames before the sleep is lost with the
      // parser's memory, and guessing where the next packet starts would be worse than closing.
      if (conn.partial) throw new MqttError(REASON.malformedPacket, "the rest of a split packet arrived after the gateway restarted");
      reader = newReader(conn.version);
      this.#parsers.set(ws, reader);
    }
    const max = readConfig(this.env).MQTT_MAX_PACKET_BYTES;
    const left = reader.parser.parse(new Uint8Array(data));
    const packets = reader.packets.splice(0);
    const parseError = reader.error;
    // Packets that parsed before a malformed one are still handled, in order.
    for (const packet of packets) {
      const current = ws.deserializeAttachment() as Conn;
      if (current.state === "closed") return;
      // [MQTT-3.1.2-24] any packet counts as activity for the keep alive.
      current.lastSeen = Date.now();
      // v5 §3.2.2.3.6: a packet over the Maximum Packet Size the server announced is 0x95.
      if ((packet.length ?? 0) > max) throw new MqttError(REASON.packetTooLarge, `a packet of ${packet.length} bytes; the limit is ${max}`);
      await this.#packet(ws, current, packet);
    }
    if (parseError) throw new MqttError(REASON.malformedPacket, parseError.message, "MQTT-4.13.1-1");
    // The packet still arriving announced its remaining length already: refuse it before buffering it all.
    const pending = reader.parser.packet.length;
    if (pending > max) throw new MqttError(REASON.packetTooLarge, `a packet of ${pending} bytes; the limit is ${max}`);
    const after = ws.deserializeAttachment() as Conn;
    if (after.state === "closed") return;
    after.partial = left > 0;
    ws.serializeAttachment(after);
  }

  /** One handler per packet type. */
  async #packet(ws: WebSocket, conn: Conn, packet: Packet): Promise<void> {
    if (packet.cmd !== "connect" && conn.state !== "connected") {
      // [MQTT-3.1.0-1] the first packet from the client MUST be CONNECT.
      throw new MqttError(REASON.protocolError, `${packet.cmd} before CONNECT`, "MQTT-3.1.0-1");
    }
    switch (packet.cmd) {
      case "connect":
        return this.#onConnect(ws, conn, packet);
      case "publish":
        return this.#onPublish(ws, conn, packet);
      case "pubrel":
        return this.#onPubrel(ws, conn, packet.messageId ?? 0);
      case "puback":
        return this.#onPuback(ws, conn, packet.messageId ?? 0);
      case "subscribe":
        return this.#onSubscribe(ws, conn, packet);
      case "unsubscribe":
        return this.#onUnsubscribe(ws, conn, packet);
      case "pingreq":
        // [MQTT-3.12.4-1] the server MUST answer PINGREQ with PINGRESP.
        this.#save(ws, conn);
        this.#send(ws, conn, { cmd: "pingresp" });
        return;
      case "disconnect":
        return this.#onDisconnect(ws, conn, packet.reasonCode ?? 0);
      case "pubrec":
        return this.#onPubrec(ws, conn, packet.messageId ?? 0, packet.reasonCode ?? 0);
      case "pubcomp":
        return this.#onPubcomp(ws, conn, packet.messageId ?? 0);
      case "auth":
        throw new MqttError(REASON.protocolError, "enhanced authentication (AUTH) is not supported", "MQTT-3.15.0-1");
      default:
        // CONNACK, SUBACK, UNSUBACK, PINGRESP travel from server to client only.
        throw new MqttError(REASON.protocolError, `${packet.cmd} is a server-to-client packet`);
    }
  }

  // ── CONNECT ─────────────────────────────────────────────────────────────────────────────

  async #onConnect(ws: WebSocket, conn: Conn, packet: IConnectPacket): Promise<void> {
    // [MQTT-3.1.0-2] a second CONNECT is a protocol violation.
    if (conn.state === "connected") throw new MqttError(REASON.protocolError, "a second CONNECT", "MQTT-3.1.0-2");
    const version = (packet.protocolVersion ?? 4) as Version;
    conn.version = version;
    if (version === 3) {
      // [MQTT-3.1.2-2] an unsupported protocol level gets return code 1, then the close.
      return this.#refuseConnect(ws, conn, REASON.unsupportedProtocolVersion, "MQTT 3.1 (MQIsdp) is not supported: use 3.1.1 or 5.0");
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
      return this.#refuseAuth(ws, conn, `username must be the device id "${conn.device}" and password its token`);
    }
    let clientId = packet.clientId;
    let assigned: string | undefined;
    if (clientId === "") {
      // [MQTT-3.1.3-7] a 3.1.1 client with an empty client id must ask for a clean session.
      if (version === 4 && packet.clean === false)
        return this.#refuseConnect(ws, conn, REASON.clientIdentifierNotValid, "an empty client id needs clean session", "MQTT-3.1.3-8");
      // [MQTT-3.1.3-6] the server assigns one: the device id itself.
      clientId = conn.device;
      assigned = clientId;
    }
    if (!clientIdBelongs(clientId, conn.device)) {
      // [MQTT-3.1.3-9] a client id the server will not accept: 0x85 / return code 2.
      return this.#refuseConnect(
        ws,
        conn,
        REASON.clientIdentifierNotValid,
        `client id must be "${conn.device}" or start with "${conn.device}-"`,
        "MQTT-3.1.3-9",
      );
    }
    if (!(await this.#twin(conn).checkSecret(secret))) return this.#refuseAuth(ws, conn, "the device token is not valid");
    // [MQTT-3.1.3-11] the will topic is a topic name: no wildcards, well-formed UTF-8.
    if (packet.will && (mqttTopicProblem(packet.will.topic) || packet.will.topic.includes("\uFFFD")))
      return this.#refuseConnect(ws, conn, REASON.topicNameInvalid, "the will topic is not a valid topic name", "MQTT-3.1.3-11");

    // [MQTT-3.1.4-3] a second connection with the same client id takes over: the first is closed.
    for (const other of this.ctx.getWebSockets()) {
      if (other === ws) continue;
      const existing = other.deserializeAttachment() as Conn;
      if (existing.state !== "connected" || existing.clientId !== clientId) continue;
      await this.#close(other, existing, REASON.sessionTakenOver, "session taken over by a new connection", {
        will: false,
        presence: false,
      });
    }

    const config = readConfig(this.env);
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
    const sql = this.#sql();
    // v5 §3.1.3.2.2: a new connection of the client id before its will delay ends cancels that will.
    sql.exec("DELETE FROM wills WHERE client_id = ?", clientId);
    if (packet.will) {
      const will: StoredWill = {
        topic: packet.will.topic,
        payload: toBase64(payloadBytes(packet.will.payload as Uint8Array | string | undefined)),
        qos: packet.will.qos ?? 0,
        retain: packet.will.retain === true,
        delaySeconds: Number((packet.will.properties as Record<string, unknown> | undefined)?.willDelayInterval ?? 0),
        properties: keptProperties(packet.will.properties as Record<string, unknown> | undefined),
      };
      sql.exec(
        "INSERT INTO wills (client_id, device, will, credential, fire_at) VALUES (?, ?, ?, ?, NULL)",
        clientId,
        conn.device,
        JSON.stringify(will),
        await sha256Hex(secret),
      );
    }
    if (packet.clean !== false) {
      sql.exec("DELETE FROM sessions WHERE client_id = ?", clientId);
      sql.exec("DELETE FROM awaiting_rel WHERE client_id = ?", clientId);
    } else {
      const row = sql
        .exec<{ subs: string; inflight: string; expires: number }>(
          "SELECT subs, inflight, expires FROM sessions WHERE client_id = ?",
          clientId,
        )
        .toArray()[0];
      if (row && row.expires > Date.now()) {
        conn.filters = readFilters(conn.device, JSON.parse(row.subs));
        inflight = readOutbound(JSON.parse(row.inflight));
        sessionPresent = true;
        conn.awaitingRel = sql
          .exec<{ packet_id: number }>("SELECT packet_id FROM awaiting_rel WHERE client_id = ?", clientId)
          .toArray()
          .map((r) => r.packet_id);
      } else {
        sql.exec("DELETE FROM awaiting_rel WHERE client_id = ?", clientId);
      }
    }
    this.#save(ws, conn);
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
            maximumQoS: 2 as const,
            ...(assigned !== undefined && { assignedClientIdentifier: assigned }),
          }
        : undefined;
    // [MQTT-3.2.2-1..3] session present only when a stored session resumes.
    this.#send(ws, conn, { cmd: "connack", sessionPresent, reasonCode: 0, returnCode: 0, ...(properties && { properties }) });
    await this.#twin(conn).signalPresence("online", "mqtt_connect");
    await this.#resend(ws, conn, inflight);
    await this.#schedule();
    await this.#deliverCommands(ws, conn);
  }

  /**
   * [MQTT-4.4.0-1] a resumed session resends its unacknowledged PUBLISH packets, same packet
   * ids, DUP set [MQTT-3.3.1-1], and the PUBRELs of QoS 2 publishes already PUBREC'd — here,
   * commands the twin still has as delivered and unanswered.
   */
  async #resend(ws: WebSocket, conn: Conn, inflight: Record<string, Outbound>): Promise<void> {
    const twin = this.#twin(conn);
    for (const [packetId, entry] of Object.entries(inflight)) {
      if (entry.released) {
        conn.outbound[packetId] = entry;
        this.#send(ws, conn, { cmd: "pubrel", messageId: Number(packetId) });
        continue;
      }
      const command = await twin.command(entry.command);
      if (command?.status !== "delivered") continue;
      conn.outbound[packetId] = entry;
      this.#send(ws, conn, this.#commandPublish(conn, command, entry.qos, Number(packetId), true));
    }
    this.#save(ws, conn);
  }

  async #refuseAuth(ws: WebSocket, conn: Conn, message: string): Promise<void> {
    // Failed attempts count against the client address, as on HTTPS (functions/middleware/auth.ts).
    const { success } = await this.env.AUTH_FAILURES.limit({ key: conn.ip });
    return this.#refuseConnect(ws, conn, success ? REASON.badUserNameOrPassword : REASON.connectionRateExceeded, message);
  }

  /** [MQTT-3.2.2-5] a refused CONNECT gets a CONNACK with a non-zero code, then the close. */
  async #refuseConnect(ws: WebSocket, conn: Conn, reason: number, message: string, rule?: string): Promise<void> {
    const code = conn.version === 5 ? reason : conn.version === 3 ? CONNACK_V4.unacceptableProtocolVersion : connackV4(reason);
    this.#send(ws, conn, {
      cmd: "connack",
      sessionPresent: false,
      reasonCode: code,
      returnCode: code,
      ...(conn.version === 5 && { properties: { reasonString: message.slice(0, 200) } }),
    });
    conn.state = "closed";
    ws.serializeAttachment(conn);
    ws.close(WS_CLOSE.policy, (rule ? `${message} [${rule}]` : message).slice(0, 120));
  }

  // ── PUBLISH ─────────────────────────────────────────────────────────────────────────────

  async #onPublish(ws: WebSocket, conn: Conn, packet: IPublishPacket): Promise<void> {
    const id = packet.messageId ?? 0;
    // [MQTT-2.3.1-1] QoS 1 and 2 publishes carry a non-zero packet identifier.
    if (packet.qos > 0 && id === 0) throw new MqttError(REASON.malformedPacket, "QoS > 0 without a packet identifier", "MQTT-2.3.1-1");
    const topic = this.#resolveAlias(conn, packet);
    const problem = mqttTopicProblem(topic);
    // [MQTT-3.3.2-2] no wildcards in a PUBLISH topic; [MQTT-1.5.4-1] well-formed UTF-8 only.
    if (problem) throw new MqttError(REASON.topicNameInvalid, `topic "${topic.slice(0, 64)}" ${problem}`, "MQTT-3.3.2-2");
    // mqtt-packet decodes invalid UTF-8 to U+FFFD: a topic holding one is refused as invalid.
    if (topic.includes("\uFFFD")) throw new MqttError(REASON.malformedPacket, "topic is not valid UTF-8", "MQTT-1.5.4-1");

    if (packet.qos === 2) {
      // [MQTT-4.3.3-9] a repeat of a QoS 2 publish still awaiting PUBREL is acknowledged, not delivered again.
      if (conn.awaitingRel.includes(id)) {
        this.#send(ws, conn, { cmd: "pubrec", messageId: id, reasonCode: 0 });
        return;
      }
      // [MQTT-3.3.4-9] no more QoS 2 publishes in flight than the Receive Maximum we announced.
      if (conn.awaitingRel.length >= readConfig(this.env).MQTT_RECEIVE_MAXIMUM)
        throw new MqttError(REASON.receiveMaximumExceeded, "more QoS 2 publishes in flight than the receive maximum", "MQTT-3.3.4-9");
    }
    const reason = await this.#accept(conn, {
      topic,
      payload: payloadBytes(packet.payload as Uint8Array | string | undefined),
      qos: packet.qos,
      retain: packet.retain === true,
      properties: keptProperties(packet.properties as Record<string, unknown> | undefined),
    });
    if (reason >= 0x80 && (conn.version === 4 || packet.qos === 0)) {
      // 3.1.1 has no negative acknowledgement: a refused publish ends the connection.
      // (v5 QoS 0 publishes are dropped; the refusal is in the twin's error log.)
      if (conn.version === 4) throw new MqttError(reason, `publish to "${topic.slice(0, 64)}" refused`);
      return this.#save(ws, conn);
    }
    if (packet.qos === 1) this.#send(ws, conn, { cmd: "puback", messageId: id, reasonCode: reason });
    if (packet.qos === 2) {
      // [MQTT-4.3.3-8] after a PUBREC with a failure code the packet id is free again.
      if (reason < 0x80) {
        conn.awaitingRel.push(id);
        if (conn.persistent) this.#sql().exec("INSERT OR IGNORE INTO awaiting_rel (client_id, packet_id) VALUES (?, ?)", conn.clientId, id);
      }
      this.#send(ws, conn, { cmd: "pubrec", messageId: id, reasonCode: reason });
    }
    this.#save(ws, conn);
  }

  /** v5 topic aliases, client to server [MQTT-3.3.2-7..12]. */
  #resolveAlias(conn: Conn, packet: IPublishPacket): string {
    const alias = packet.properties?.topicAlias;
    if (alias === undefined) return packet.topic;
    // [MQTT-3.3.2-8] alias 0 or over our Topic Alias Maximum is a protocol error (0x94).
    if (conn.version !== 5 || alias < 1 || alias > TOPIC_ALIAS_MAXIMUM)
      throw new MqttError(REASON.topicAliasInvalid, `topic alias ${alias} is out of range`, "MQTT-3.3.2-8");
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
  async #accept(from: Publisher, message: Message): Promise<number> {
    const { topic } = message;
    if (serverOwned(topic, from.device)) return REASON.notAuthorized;
    const own = classifyTopic(topic, from.device);
    if (own.kind === "other_device") return REASON.notAuthorized;
    const inNamespace = own.kind !== "not_own";
    if (message.retain && inNamespace) {
      // [MQTT-3.3.1-6/7] a retained publish with no payload removes the topic's retained message.
      if (message.payload.byteLength === 0) {
        this.#sql().exec("DELETE FROM retained WHERE topic = ?", topic);
        return REASON.success;
      }
      if (!this.#retainedRoom(topic)) return REASON.quotaExceeded;
    }
    // Other topics of the namespace are the device's own: kept and handed to its subscribers, not routed.
    const routed = own.kind !== "own_other";
    const reason = routed ? await this.#route(from, own, topic, message.payload) : REASON.success;
    if (reason >= 0x80 || !inNamespace) return reason;
    if (message.retain) this.#storeRetained(message);
    const delivered = this.#forward(from.clientId, message);
    return !routed && !message.retain && delivered === 0 ? REASON.noMatchingSubscribers : reason;
  }

  /** The publish into the ingest path. Returns the PUBACK/PUBREC reason code. */
  async #route(from: Publisher, own: OwnTopic, topic: string, payload: Uint8Array): Promise<number> {
    const twin = twinStub(this.env, from.device);
    let body: unknown;
    try {
      body = JSON.parse(new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(payload));
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
      return done.code === "not_found" ? REASON.packetIdentifierNotFound : REASON.implementationSpecific;
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
      const mapping = mapTopic(topic, readConfig(this.env).TOPIC_RULES);
      if (!mapping) return REASON.topicNameInvalid;
      if (mapping.device !== undefined && mapping.device !== from.device) return REASON.notAuthorized;
      if (item.routing_key !== undefined && item.routing_key !== mapping.routingKey) return REASON.payloadFormatInvalid;
      item = { ...item, routing_key: mapping.routingKey };
    }
    const outcome = await twin.ingest({
      secret: from.secret,
      ...(from.credentialHash !== undefined && { credentialHash: from.credentialHash }),
      items: [item],
      preRejected: [],
      defaultType,
      allowedTypes,
      transport: "mqtt",
    });
    if (!outcome.ok) {
      if (outcome.code === "unauthorized") throw new MqttError(REASON.notAuthorized, "the device token is no longer valid");
      if (outcome.code === "rate_limited") return REASON.quotaExceeded;
      return REASON.implementationSpecific;
    }
    if (outcome.accepted + outcome.duplicates > 0) return REASON.success;
    const code = outcome.rejected[0]?.code;
    if (code === "forbidden" || code === "source_mismatch") return REASON.notAuthorized;
    if (code === "unknown_exchange") return REASON.topicNameInvalid;
    if (code === "message_too_large") return REASON.packetTooLarge;
    return REASON.payloadFormatInvalid;
  }

  // ── Retained messages and the device's own subscribers ──────────────────────────────────

  /** Whether the topic may be stored: it is already, or the device holds fewer than the limit. */
  #retainedRoom(topic: string): boolean {
    const sql = this.#sql();
    sql.exec("DELETE FROM retained WHERE expires_at IS NOT NULL AND expires_at <= ?", Date.now());
    if (sql.exec("SELECT 1 FROM retained WHERE topic = ?", topic).toArray().length > 0) return true;
    const [row] = sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM retained").toArray();
    return (row?.n ?? 0) < MAX_RETAINED_PER_DEVICE;
  }

  /** [MQTT-3.3.1-5] the message replaces the topic's retained one; v5 message expiry bounds its life. */
  #storeRetained(message: Message): void {
    const expiry = message.properties.messageExpiryInterval;
    this.#sql().exec(
      "INSERT OR REPLACE INTO retained (topic, payload, qos, properties, expires_at) VALUES (?, ?, ?, ?, ?)",
      message.topic,
      message.payload,
      message.qos,
      JSON.stringify(message.properties),
      expiry !== undefined ? Date.now() + expiry * 1000 : null,
    );
  }

  /** On subscribe: the retained messages the filter matches, with the retain flag set [MQTT-3.3.1-9]. */
  #sendRetained(ws: WebSocket, conn: Conn, filter: string): void {
    const now = Date.now();
    const rows = this.#sql()
      .exec<{ topic: string; payload: ArrayBuffer; qos: number; properties: string; expires_at: number | null }>(
        "SELECT topic, payload, qos, properties, expires_at FROM retained WHERE expires_at IS NULL OR expires_at > ? ORDER BY topic",
        now,
      )
      .toArray();
    for (const row of rows) {
      if (!filterMatches(filter, row.topic)) continue;
      const properties = JSON.parse(row.properties) as RetainedProperties;
      // [MQTT-3.3.2-6] the expiry handed on is what is left of it.
      if (row.expires_at !== null) properties.messageExpiryInterval = Math.max(1, Math.ceil((row.expires_at - now) / 1000));
      this.#sendMessage(ws, conn, { topic: row.topic, payload: new Uint8Array(row.payload), qos: row.qos, retain: true, properties }, true);
    }
  }

  /**
   * A device's publish to every connection of the device subscribed to it, once per connection
   * [MQTT-3.3.4-2], but not back to its sender when it asked for No Local [MQTT-3.8.3-3].
   * Returns how many connections it went to.
   */
  #forward(fromClientId: string, message: Message): number {
    let delivered = 0;
    for (const ws of this.ctx.getWebSockets()) {
      const conn = ws.deserializeAttachment() as Conn;
      if (conn.state !== "connected") continue;
      const matching = Object.entries(conn.filters).filter(([filter]) => filterMatches(filter, message.topic));
      if (matching.length === 0) continue;
      if (conn.clientId === fromClientId && matching.every(([, sub]) => sub.noLocal)) continue;
      // [MQTT-3.3.1-12/13] live forwarding clears the retain flag unless Retain As Published.
      const retain = message.retain && matching.some(([, sub]) => sub.retainAsPublished);
      if (this.#sendMessage(ws, conn, { ...message, retain }, retain)) delivered++;
    }
    return delivered;
  }

  /**
   * Namespace messages go out at QoS 0 (the QoS the gateway grants those subscriptions), and not
   * at all when larger than the client's Maximum Packet Size [MQTT-3.1.2-24/25].
   */
  #sendMessage(ws: WebSocket, conn: Conn, message: Message, retain: boolean): boolean {
    const properties = conn.version === 5 && Object.keys(message.properties).length > 0 ? message.properties : undefined;
    // mqtt-packet writes only its own Buffer class, which the Worker cannot make. The payload is
    // the last field of a PUBLISH, so it is encoded with a placeholder of the same byte length,
    // which the real bytes then overwrite.
    const bytes = generate(
      {
        cmd: "publish",
        topic: message.topic,
        payload: "\u0000".repeat(message.payload.byteLength),
        qos: 0,
        dup: false,
        retain,
        ...(properties && { properties }),
      },
      { protocolVersion: conn.version === 3 ? 4 : conn.version },
    );
    bytes.set(message.payload, bytes.length - message.payload.byteLength);
    return this.#sendBytes(ws, conn, bytes);
  }

  #onPubrel(ws: WebSocket, conn: Conn, id: number): void {
    const at = conn.awaitingRel.indexOf(id);
    if (at >= 0) conn.awaitingRel.splice(at, 1);
    if (conn.persistent) this.#sql().exec("DELETE FROM awaiting_rel WHERE client_id = ? AND packet_id = ?", conn.clientId, id);
    this.#save(ws, conn);
    // [MQTT-4.3.3-11] PUBREL is answered with PUBCOMP; v5 names an id it does not know (0x92).
    this.#send(ws, conn, { cmd: "pubcomp", messageId: id, reasonCode: at >= 0 ? 0 : REASON.packetIdentifierNotFound });
  }

  /** Our outbound publish of this packet id, which must be at the given QoS stage, else a protocol error (v5 §4.13). */
  #inFlight(conn: Conn, id: number, cmd: string, qos: 1 | 2): Outbound {
    const entry = conn.outbound[String(id)];
    if (entry === undefined || entry.qos !== qos)
      throw new MqttError(REASON.protocolError, `${cmd.toUpperCase()} for packet id ${id}, which is not in flight at QoS ${qos}`);
    return entry;
  }

  async #onPuback(ws: WebSocket, conn: Conn, id: number): Promise<void> {
    this.#inFlight(conn, id, "puback", 1);
    delete conn.outbound[String(id)];
    this.#save(ws, conn);
    await this.#deliverCommands(ws, conn);
  }

  async #onPubrec(ws: WebSocket, conn: Conn, id: number, reasonCode: number): Promise<void> {
    const entry = this.#inFlight(conn, id, "pubrec", 2);
    if (reasonCode >= 0x80) {
      // [MQTT-4.3.3-4] a PUBREC with a failure code ends the exchange; the twin's outbox redelivers.
      delete conn.outbound[String(id)];
      this.#save(ws, conn);
      return this.#deliverCommands(ws, conn);
    }
    entry.released = true;
    this.#persistSession(conn);
    this.#save(ws, conn);
    // [MQTT-4.3.3-4] PUBREC is answered with PUBREL (again, for a repeated PUBREC).
    this.#send(ws, conn, { cmd: "pubrel", messageId: id });
  }

  async #onPubcomp(ws: WebSocket, conn: Conn, id: number): Promise<void> {
    const entry = this.#inFlight(conn, id, "pubcomp", 2);
    if (!entry.released) throw new MqttError(REASON.protocolError, `PUBCOMP for packet id ${id} before our PUBREL`);
    // [MQTT-4.3.3-5] the packet id is free once PUBCOMP arrives.
    delete conn.outbound[String(id)];
    this.#save(ws, conn);
    await this.#deliverCommands(ws, conn);
  }

  // ── SUBSCRIBE ───────────────────────────────────────────────────────────────────────────

  async #onSubscribe(ws: WebSocket, conn: Conn, packet: Extract<Packet, { cmd: "subscribe" }>): Promise<void> {
    const granted: number[] = [];
    const added: { filter: string; isNew: boolean; retainHandling: number; desired: boolean }[] = [];
    for (const sub of packet.subscriptions) {
      // [MQTT-3.8.3-1] filters are UTF-8; [MQTT-4.7.1-*] wildcards must fill whole levels.
      if (sub.topic === "" || sub.topic.includes("\u0000") || sub.topic.includes("\uFFFD") || filterProblem(sub.topic)) {
        granted.push(conn.version === 5 ? REASON.topicFilterInvalid : 0x80);
        continue;
      }
      const own = ownFilter(sub.topic, conn.device);
      if (!own) {
        // [MQTT-3.9.3-2] a refused subscription is 0x80 (3.1.1) or 0x87 Not authorized (v5).
        granted.push(conn.version === 5 ? REASON.notAuthorized : 0x80);
        continue;
      }
      const isNew = conn.filters[sub.topic] === undefined;
      if (isNew && Object.keys(conn.filters).length >= MAX_FILTERS_PER_CONNECTION) {
        granted.push(conn.version === 5 ? REASON.quotaExceeded : 0x80);
        continue;
      }
      // [MQTT-3.8.4-6] the server may grant less than asked: commands go out at up to QoS 2 on
      // their exact topic; everything else (and commands through a wildcard) at QoS 0.
      const qos = own.exactCommands ? Math.min(sub.qos, 2) : 0;
      // [MQTT-3.8.4-3] a subscription to a filter already held replaces it.
      conn.filters[sub.topic] = { qos, noLocal: sub.nl === true, retainAsPublished: sub.rap === true };
      granted.push(qos);
      added.push({ filter: sub.topic, isNew, retainHandling: sub.rh ?? 0, desired: own.desired });
    }
    this.#persistSession(conn);
    this.#save(ws, conn);
    // [MQTT-3.8.4-1] SUBACK with the same packet id, one code per filter [MQTT-3.8.4-5].
    this.#send(ws, conn, { cmd: "suback", messageId: packet.messageId ?? 0, granted });
    for (const { filter, isNew, retainHandling, desired } of added) {
      // v5 Retain Handling: 0 sends retained messages, 1 only for a new subscription, 2 never [MQTT-3.3.1-9..11].
      if (retainHandling === 2 || (retainHandling === 1 && !isNew)) continue;
      if (desired) await this.#sendDesired(ws, conn, true);
      this.#sendRetained(ws, conn, filter);
    }
    await this.#deliverCommands(ws, conn);
    await this.#schedule();
  }

  #onUnsubscribe(ws: WebSocket, conn: Conn, packet: Extract<Packet, { cmd: "unsubscribe" }>): void {
    const codes: number[] = [];
    for (const topic of packet.unsubscriptions) {
      const had = conn.filters[topic] !== undefined;
      delete conn.filters[topic];
      // v5 §3.11.2.1: 0x11 No subscription existed.
      codes.push(had ? 0 : 0x11);
    }
    this.#persistSession(conn);
    this.#save(ws, conn);
    // [MQTT-3.10.4-4] UNSUBACK with the same packet id.
    this.#send(ws, conn, {
      cmd: "unsuback",
      messageId: packet.messageId ?? 0,
      ...(conn.version === 5 && { granted: codes }),
    } as Packet);
  }

  async #onDisconnect(ws: WebSocket, conn: Conn, reasonCode: number): Promise<void> {
    // [MQTT-3.14.4-3] a normal DISCONNECT discards the will; v5 0x04 asks for it.
    const will = conn.version === 5 && reasonCode === REASON.disconnectWithWill;
    await this.#close(ws, conn, null, "client disconnected", { will, presence: true });
  }

  // ── Commands and desired state ──────────────────────────────────────────────────────────

  /** The twin calls this when a command is queued for the device. */
  async commandsWaiting(): Promise<void> {
    for (const ws of this.ctx.getWebSockets()) {
      const conn = ws.deserializeAttachment() as Conn;
      if (conn.state !== "connected" || commandsQos(conn) === null) continue;
      const previous = this.#chains.get(ws) ?? Promise.resolve();
      const next = previous
        .then(() => this.#deliverCommands(ws, ws.deserializeAttachment() as Conn))
        .catch((error: unknown) => this.#fail(ws, error));
      this.#chains.set(ws, next);
      await next;
      return; // one connection takes the device's commands
    }
  }

  /** The twin calls this when the desired state changed: every connection subscribed to it gets it. */
  async desiredChanged(): Promise<void> {
    for (const ws of this.ctx.getWebSockets()) {
      const conn = ws.deserializeAttachment() as Conn;
      if (conn.state !== "connected" || !wantsDesired(conn)) continue;
      const previous = this.#chains.get(ws) ?? Promise.resolve();
      const next = previous
        .then(() => this.#sendDesired(ws, ws.deserializeAttachment() as Conn, false))
        .catch((error: unknown) => this.#fail(ws, error));
      this.#chains.set(ws, next);
      await next;
    }
  }

  async #deliverCommands(ws: WebSocket, conn: Conn): Promise<void> {
    const qos = commandsQos(conn);
    if (conn.state !== "connected" || qos === null) return;
    // [MQTT-4.9.0-2] never more unacknowledged QoS 1 and 2 publishes than the client's Receive Maximum.
    const room = Math.min(conn.clientReceiveMax, 20) - Object.keys(conn.outbound).length;
    if (room <= 0) return;
    // A rotated or deleted token stops deliveries as it stops publishes.
    if (!(await this.#twin(conn).checkSecret(conn.secret)))
      throw new MqttError(REASON.notAuthorized, "the device token is no longer valid");
    const commands: Command[] = await this.#twin(conn).takeCommands(0);
    for (const command of commands) {
      const messageId = qos > 0 ? this.#nextId(conn) : undefined;
      if (messageId !== undefined) conn.outbound[String(messageId)] = { command: command.id, qos: qos as 1 | 2, released: false };
      this.#send(ws, conn, this.#commandPublish(conn, command, qos, messageId, false));
    }
    this.#persistSession(conn);
    this.#save(ws, conn);
  }

  #commandPublish(conn: Conn, command: Command, qos: number, messageId: number | undefined, dup: boolean): Packet {
    // [MQTT-3.3.2-6] v5 clients learn how long the command has left (its outbox TTL).
    const left = Math.ceil((Date.parse(command.expires_at) - Date.now()) / 1000);
    return {
      cmd: "publish",
      topic: deviceTopics(conn.device).commands,
      payload: JSON.stringify(toDelivery(command)),
      qos: qos as 0 | 1 | 2,
      dup,
      retain: false,
      ...(messageId !== undefined && { messageId }),
      ...(conn.version === 5 && left > 0 && { properties: { messageExpiryInterval: left } }),
    };
  }

  /** The desired state: on subscribe as a retained message, and on every change. */
  async #sendDesired(ws: WebSocket, conn: Conn, retain: boolean): Promise<void> {
    const twin = await this.#twin(conn).twin();
    if (!twin) return;
    this.#send(ws, conn, {
      cmd: "publish",
      topic: deviceTopics(conn.device).desired,
      payload: JSON.stringify({ version: twin.version, desired: twin.desired }),
      qos: 0,
      dup: false,
      // [MQTT-3.3.1-8/9] retain is set on what a new subscription receives, not on live forwarding.
      retain,
    });
  }

  #nextId(conn: Conn): number {
    // [MQTT-2.3.1-2] a packet id is not reused while in flight.
    for (let tries = 0; tries < 65_535; tries++) {
      const id = conn.nextId;
      conn.nextId = id >= 65_535 ? 1 : id + 1;
      if (conn.outbound[String(id)] === undefined) return id;
    }
    throw new MqttError(REASON.quotaExceeded, "no packet identifier free");
  }

  #persistSession(conn: Conn): void {
    if (!conn.persistent) return;
    this.#sql().exec(
      "INSERT OR REPLACE INTO sessions (client_id, subs, inflight, expires) VALUES (?, ?, ?, ?)",
      conn.clientId,
      JSON.stringify(conn.filters),
      JSON.stringify(conn.outbound),
      Date.now() + conn.sessionExpiry * 1000,
    );
  }

  // ── Ending connections ──────────────────────────────────────────────────────────────────

  async #fail(ws: WebSocket, error: unknown): Promise<void> {
    const conn = ws.deserializeAttachment() as Conn;
    if (conn.state === "closed") return;
    if (!(error instanceof MqttError)) {
      console.error(JSON.stringify({ level: "error", msg: "mqtt gateway failure", device: conn.device, error: String(error) }));
    }
    const reason = error instanceof MqttError ? error.reason : REASON.unspecified;
    const message = error instanceof Error ? error.message : String(error);
    // [MQTT-3.1.2-8] a connection closed for a protocol error publishes the will.
    await this.#close(ws, conn, reason, message, { will: true, presence: false });
  }

  /**
   * Ends one connection: v5 gets a DISCONNECT with the reason first [MQTT-4.13.2-1]; 3.1.1 only
   * the close [MQTT-4.8.0-1]. Nothing here touches any other connection.
   */
  async #close(
    ws: WebSocket,
    conn: Conn,
    reason: number | null,
    message: string,
    options: { will: boolean; presence: boolean },
  ): Promise<void> {
    if (conn.state === "closed") return;
    const wasConnected = conn.state === "connected";
    if (reason !== null && conn.version === 5 && wasConnected) {
      this.#send(ws, conn, { cmd: "disconnect", reasonCode: reason, properties: { reasonString: message.slice(0, 200) } });
    }
    conn.state = "closed";
    ws.serializeAttachment(conn);
    this.#parsers.delete(ws);
    const code =
      reason === null || reason === REASON.sessionTakenOver
        ? WS_CLOSE.normal
        : reason === REASON.packetTooLarge
          ? WS_CLOSE.tooBig
          : WS_CLOSE.protocolError;
    try {
      ws.close(code, message.slice(0, 120));
    } catch {
      // already closing
    }
    if (wasConnected) await this.#ended(conn, options);
  }

  async #ended(conn: Conn, options: { will: boolean; presence: boolean }): Promise<void> {
    this.#persistSession(conn);
    if (options.will && conn.will) {
      // v5 §3.1.3.2.2: the will waits out its delay, or the end of the session if that comes first.
      const [row] = this.#sql().exec<{ will: string }>("SELECT will FROM wills WHERE client_id = ?", conn.clientId).toArray();
      const delay = row ? Math.min((JSON.parse(row.will) as StoredWill).delaySeconds, conn.sessionExpiry) : 0;
      if (delay > 0) {
        const at = Date.now() + delay * 1000;
        this.#sql().exec("UPDATE wills SET fire_at = ? WHERE client_id = ?", at, conn.clientId);
        await this.#scheduleAt(at);
        return;
      }
      await this.#publishWill(conn.clientId);
      return;
    }
    // [MQTT-3.14.4-3] a DISCONNECT (or a takeover) discards the will.
    if (conn.will) this.#sql().exec("DELETE FROM wills WHERE client_id = ?", conn.clientId);
    if (options.presence && !this.#otherConnected(conn)) await this.#twin(conn).signalPresence("offline", "mqtt_disconnect");
  }

  /**
   * [MQTT-3.1.2-8] the will is published like the device's own publish — routed, retained, handed
   * to its subscribers — and the twin goes offline (`last_will`). It is sent under the credential
   * it was given with; a token rotated since then refuses it.
   */
  async #publishWill(clientId: string): Promise<void> {
    const sql = this.#sql();
    const [row] = sql
      .exec<{ device: string; will: string; credential: string }>(
        "SELECT device, will, credential FROM wills WHERE client_id = ?",
        clientId,
      )
      .toArray();
    if (!row) return;
    sql.exec("DELETE FROM wills WHERE client_id = ?", clientId);
    const will = JSON.parse(row.will) as StoredWill;
    // A token rotated since the CONNECT makes the twin refuse it (an MqttError from #route).
    const reason = await this.#accept(
      { device: row.device, clientId, secret: "", credentialHash: row.credential },
      {
        topic: will.topic,
        payload: fromBase64(will.payload),
        qos: will.qos,
        retain: will.retain,
        properties: will.properties,
      },
    ).catch((error: unknown) => (error instanceof MqttError ? error.reason : REASON.unspecified));
    if (reason >= 0x80) {
      console.warn(JSON.stringify({ level: "warn", msg: "will refused", device: row.device, topic: will.topic, reason }));
    }
    await twinStub(this.env, row.device).signalPresence("offline", "last_will");
  }

  #otherConnected(conn: Conn): boolean {
    return this.ctx.getWebSockets().some((ws) => {
      const other = ws.deserializeAttachment() as Conn;
      return other.state === "connected" && other.clientId !== conn.clientId;
    });
  }

  override async webSocketClose(ws: WebSocket, code: number, reason: string): Promise<void> {
    const conn = ws.deserializeAttachment() as Conn;
    this.#parsers.delete(ws);
    this.#chains.delete(ws);
    if (conn.state === "closed") return;
    const wasConnected = conn.state === "connected";
    conn.state = "closed";
    ws.serializeAttachment(conn);
    try {
      ws.close(code === 1005 || code === 1006 ? WS_CLOSE.normal : code, reason);
    } catch {
      // already closed
    }
    // [MQTT-3.1.2-8] the network connection closed without DISCONNECT: the will fires.
    if (wasConnected) await this.#ended(conn, { will: true, presence: false });
  }

  override async webSocketError(ws: WebSocket): Promise<void> {
    await this.webSocketClose(ws, WS_CLOSE.internal, "error");
  }

  // ── Keep alive (alarm) ──────────────────────────────────────────────────────────────────

  async #scheduleAt(at: number): Promise<void> {
    const current = await this.ctx.storage.getAlarm();
    if (current === null || current > at || current < Date.now()) await this.ctx.storage.setAlarm(at);
  }

  async #schedule(): Promise<void> {
    const deadlines: number[] = [];
    for (const ws of this.ctx.getWebSockets()) {
      const conn = ws.deserializeAttachment() as Conn;
      if (conn.state === "open") deadlines.push(conn.openedAt + CONNECT_TIMEOUT_MS);
      if (conn.state !== "connected") continue;
      // [MQTT-3.1.2-24] one and a half keep alive periods without a packet end the connection.
      if (conn.keepalive > 0) deadlines.push(conn.lastSeen + conn.keepalive * 1500);
      if (commandsQos(conn) !== null) deadlines.push(Date.now() + COMMAND_POLL_MS);
    }
    const [pending] = this.#sql().exec<{ at: number | null }>("SELECT MIN(fire_at) AS at FROM wills").toArray();
    if (pending?.at != null) deadlines.push(pending.at);
    if (deadlines.length > 0) await this.#scheduleAt(Math.min(...deadlines));
  }

  override async alarm(): Promise<void> {
    const now = Date.now();
    const due = this.#sql()
      .exec<{ client_id: string }>("SELECT client_id FROM wills WHERE fire_at IS NOT NULL AND fire_at <= ?", now)
      .toArray();
    for (const { client_id } of due) await this.#publishWill(client_id);
    for (const ws of this.ctx.getWebSockets()) {
      const conn = ws.deserializeAttachment() as Conn;
      if (conn.state === "open" && now - conn.openedAt >= CONNECT_TIMEOUT_MS) {
        await this.#close(ws, conn, REASON.protocolError, "no CONNECT in time", { will: false, presence: false });
      } else if (conn.state === "connected" && conn.keepalive > 0 && now - conn.lastSeen >= conn.keepalive * 1500) {
        await this.#close(ws, conn, REASON.keepAliveTimeout, "keep alive timeout", { will: true, presence: false });
      } else if (conn.state === "connected" && commandsQos(conn) !== null) {
        await this.#deliverCommands(ws, conn).catch((error: unknown) => this.#fail(ws, error));
      }
    }
    await this.#schedule();
  }

  // ── Sending ─────────────────────────────────────────────────────────────────────────────

  #save(ws: WebSocket, conn: Conn): void {
    ws.serializeAttachment(conn);
  }

  /** Sends a packet; false when it is over the client's Maximum Packet Size or the socket is gone. */
  #send(ws: WebSocket, conn: Conn, packet: Packet): boolean {
    return this.#sendBytes(ws, conn, generate(packet, { protocolVersion: conn.version === 3 ? 4 : conn.version }));
  }

  #sendBytes(ws: WebSocket, conn: Conn, bytes: Uint8Array): boolean {
    if (bytes.length > conn.clientMaxPacket) return false;
    try {
      ws.send(bytes);
      return true;
    } catch {
      // The socket is going away; webSocketClose does the bookkeeping.
      return false;
    }
  }
}
