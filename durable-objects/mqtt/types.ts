/**
 * The MQTT gateway's shared shapes: what each connection carries through hibernation, what the
 * session stores, and the small surface of the Durable Object the packet handlers use (so each
 * packet family lives in its own file without importing the class).
 */

import type { TwinBatcher } from "./batch";

export type Version = 3 | 4 | 5;

/** A subscription: the QoS granted and v5's subscription options [MQTT-3.8.3-3/4]. */
export interface Sub {
  qos: number;
  noLocal: boolean;
  retainAsPublished: boolean;
}

/** One of our publishes awaiting the client: a command at QoS 1 (PUBACK) or 2 (PUBREC, then PUBCOMP). */
export interface Outbound {
  command: string;
  qos: 1 | 2;
  /** QoS 2: PUBREC came and our PUBREL is out [MQTT-4.3.3-4]. */
  released: boolean;
}

/** The v5 PUBLISH properties a stored message keeps and hands on [MQTT-3.3.2-*]. */
export interface RetainedProperties {
  payloadFormatIndicator?: boolean;
  contentType?: string;
  messageExpiryInterval?: number;
  userProperties?: Record<string, string | string[]>;
}

/** The will as the session keeps it (SQL `wills`), published when its connection ends without DISCONNECT. */
export interface StoredWill {
  topic: string;
  /** base64 */
  payload: string;
  qos: number;
  retain: boolean;
  delaySeconds: number;
  properties: RetainedProperties;
}

/** Who a publish comes from: a live connection (its secret) or a will (the secret's hash). */
export interface Publisher {
  device: string;
  clientId: string;
  secret: string;
  credentialHash?: string;
}

/** A publish as the gateway accepts, keeps and hands it on. */
export interface Message {
  topic: string;
  payload: Uint8Array;
  qos: number;
  retain: boolean;
  properties: RetainedProperties;
}

/** What survives hibernation with each socket (serializeAttachment). */
export interface Conn {
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

export interface CloseOptions {
  will: boolean;
  presence: boolean;
}

/** The parts of the MqttSession object the packet handlers use. */
export interface Gateway {
  readonly env: Env;
  readonly ctx: DurableObjectState;
  sql(): SqlStorage;
  /** Ends one connection (v5: DISCONNECT with the reason first); the will and presence as asked. */
  close(ws: WebSocket, conn: Conn, reason: number | null, message: string, options: CloseOptions): Promise<void>;
  /** Ends a connection for an error: an MqttError's reason, else 0x80 and an error log line. */
  fail(ws: WebSocket, error: unknown): Promise<void>;
  scheduleAt(at: number): Promise<void>;
  /** Sets the alarm to the earliest deadline of every connection and delayed will. */
  schedule(): Promise<void>;
  /** The session's one way into the device's twin for publishes (batch.ts). */
  batcher(device: string): TwinBatcher;
}

/** A connection's deferred steps (publish.ts): run in order, each after the ones before it. */
export interface Pipeline {
  /** Runs `step` after every step deferred before it; a failure ends the connection. */
  defer(step: () => Promise<void>): void;
  /** Resolves once every step deferred so far has run. */
  drain(): Promise<void>;
}

/** A CONNECT must arrive this soon after the upgrade. */
export const CONNECT_TIMEOUT_MS = 10_000;
/** Subscribed connections also poll the outbox this often, in case a notification was lost. */
export const COMMAND_POLL_MS = 30_000;
/** MQTT 3.1.1 sessions have no expiry of their own; the gateway keeps them this long. */
export const V4_SESSION_EXPIRY_S = 7 * 86_400;
export const TOPIC_ALIAS_MAXIMUM = 16;
/** Retained topics one device may hold; a retained publish beyond it is refused with 0x97. */
export const MAX_RETAINED_PER_DEVICE = 100;

/**
 * How much earlier than 1.5 × keep alive the alarm is set, at most: alarms fire late under load
 * (measured: docs/mqtt.md, "Keep alive"), and the close must come within 1.5 × keep alive
 * [MQTT-3.1.2-24]. Never more than a quarter of the keep alive, so a client is still given
 * 1.25 × the interval it promised.
 */
export const KEEP_ALIVE_MARGIN_MS = 2_000;

/** When a silent connection is closed: 1.5 × keep alive after its last packet, less the margin. */
export function keepAliveDeadline(conn: Conn): number {
  const interval = conn.keepalive * 1000;
  return conn.lastSeen + interval * 1.5 - Math.min(interval / 4, KEEP_ALIVE_MARGIN_MS);
}
