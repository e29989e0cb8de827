/**
 * Every packet from a client is validated here, on its raw bytes, before mqtt-packet parses it
 * and before the gateway acts on it: one function per packet type, the spec rule cited beside
 * each check. mqtt-packet's parser leaves much unchecked — it decodes ill-formed UTF-8 to
 * U+FFFD, reads past the end of a short PUBACK into the next packet, accepts any property in any
 * packet and folds repeats into arrays, lets a User Property run past its packet, takes Will QoS
 * 3, an empty SUBSCRIBE, trailing bytes — so it only parses what passed here.
 *
 * A failure is an MqttError: 0x81 Malformed Packet or 0x82 Protocol Error as the spec names it
 * (or the more precise code the spec gives: 0x90, 0x94, 0xA1, 0x8C, 0x84). The session closes the
 * connection for it (v5: DISCONNECT, or CONNACK for a CONNECT, first) and nothing is acknowledged,
 * stored or routed.
 */
import { MqttError, REASON } from "../../shared/mqtt";
import { DISCONNECT_REASONS, PUBACK_REASONS, PUBREL_REASONS } from "./reasons";
import { TOPIC_ALIAS_MAXIMUM } from "./types";

const strictUtf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

const malformed = (message: string, rule?: string) => new MqttError(REASON.malformedPacket, message, rule);
const protocolError = (message: string, rule?: string) => new MqttError(REASON.protocolError, message, rule);

/** A bounded reader over one packet's bytes: every read past `end` is a Malformed Packet. */
class Cursor {
  constructor(
    readonly bytes: Uint8Array,
    public pos: number,
    readonly end: number,
  ) {}

  get left(): number {
    return this.end - this.pos;
  }

  #need(n: number, what: string): undefined {
    if (this.pos + n > this.end) throw malformed(`the packet ends inside its ${what}`, "MQTT-4.13.1-1");
  }

  byte(what: string): number {
    this.#need(1, what);
    return this.bytes[this.pos++] as number;
  }

  u16(what: string): number {
    this.#need(2, what);
    const value = ((this.bytes[this.pos] as number) << 8) | (this.bytes[this.pos + 1] as number);
    this.pos += 2;
    return value;
  }

  u32(what: string): number {
    this.#need(4, what);
    const view = new DataView(this.bytes.buffer, this.bytes.byteOffset + this.pos, 4);
    this.pos += 4;
    return view.getUint32(0);
  }

  /** Variable Byte Integer: at most four bytes [MQTT-1.5.5-1]. */
  varint(what: string): number {
    let value = 0;
    for (let i = 0; i < 4; i++) {
      const byte = this.byte(what);
      value += (byte & 0x7f) * 128 ** i;
      if ((byte & 0x80) === 0) return value;
    }
    throw malformed(`the ${what} is not a valid variable byte integer`, "MQTT-1.5.5-1");
  }

  binary(what: string): Uint8Array {
    const length = this.u16(what);
    this.#need(length, what);
    const value = this.bytes.subarray(this.pos, this.pos + length);
    this.pos += length;
    return value;
  }

  /** UTF-8 Encoded String: well-formed UTF-8 [MQTT-1.5.4-1], no U+0000 [MQTT-1.5.4-2]. */
  string(what: string): string {
    const raw = this.binary(what);
    let text: string;
    try {
      text = strictUtf8.decode(raw);
    } catch {
      throw malformed(`the ${what} is not well-formed UTF-8`, "MQTT-1.5.4-1");
    }
    if (text.includes("\u0000")) throw malformed(`the ${what} contains U+0000`, "MQTT-1.5.4-2");
    return text;
  }

  /** Nothing may follow the last field of the packet. */
  done(what: string): undefined {
    if (this.pos !== this.end) throw malformed(`${this.end - this.pos} bytes after the end of the ${what}`, "MQTT-4.13.1-1");
  }
}

// ── v5 properties (§2.2.2.2, Table 2-4) ─────────────────────────────────────────────────────

type PropertyKind = "byte" | "u16" | "u32" | "varint" | "string" | "binary" | "pair";
type Where = "connect" | "will" | "publish" | "ack" | "subscribe" | "unsubscribe" | "disconnect" | "auth";
interface PropertySpec {
  name: string;
  kind: PropertyKind;
  in: readonly Where[];
}

/** The properties a client may send and where; the server-only ones (CONNACK, SUBACK) have nowhere. */
const PROPERTIES: Record<number, PropertySpec> = {
  1: { name: "Payload Format Indicator", kind: "byte", in: ["publish", "will"] },
  2: { name: "Message Expiry Interval", kind: "u32", in: ["publish", "will"] },
  3: { name: "Content Type", kind: "string", in: ["publish", "will"] },
  8: { name: "Response Topic", kind: "string", in: ["publish", "will"] },
  9: { name: "Correlation Data", kind: "binary", in: ["publish", "will"] },
  11: { name: "Subscription Identifier", kind: "varint", in: ["publish", "subscribe"] },
  17: { name: "Session Expiry Interval", kind: "u32", in: ["connect", "disconnect"] },
  18: { name: "Assigned Client Identifier", kind: "string", in: [] },
  19: { name: "Server Keep Alive", kind: "u16", in: [] },
  21: { name: "Authentication Method", kind: "string", in: ["connect", "auth"] },
  22: { name: "Authentication Data", kind: "binary", in: ["connect", "auth"] },
  23: { name: "Request Problem Information", kind: "byte", in: ["connect"] },
  24: { name: "Will Delay Interval", kind: "u32", in: ["will"] },
  25: { name: "Request Response Information", kind: "byte", in: ["connect"] },
  26: { name: "Response Information", kind: "string", in: [] },
  28: { name: "Server Reference", kind: "string", in: ["disconnect"] },
  31: { name: "Reason String", kind: "string", in: ["ack", "disconnect", "auth"] },
  33: { name: "Receive Maximum", kind: "u16", in: ["connect"] },
  34: { name: "Topic Alias Maximum", kind: "u16", in: ["connect"] },
  35: { name: "Topic Alias", kind: "u16", in: ["publish"] },
  36: { name: "Maximum QoS", kind: "byte", in: [] },
  37: { name: "Retain Available", kind: "byte", in: [] },
  38: { name: "User Property", kind: "pair", in: ["connect", "will", "publish", "ack", "subscribe", "unsubscribe", "disconnect", "auth"] },
  39: { name: "Maximum Packet Size", kind: "u32", in: ["connect"] },
  40: { name: "Wildcard Subscription Available", kind: "byte", in: [] },
  41: { name: "Subscription Identifier Available", kind: "byte", in: [] },
  42: { name: "Shared Subscription Available", kind: "byte", in: [] },
};

const USER_PROPERTY = 0x26;
/** Properties whose value must be 0 or 1 (§3.3.2.3.2, §3.1.2.11.7, §3.1.2.11.6). */
const BOOLEAN_PROPERTIES = new Set([0x01, 0x17, 0x19]);

/** The properties of one packet (or will): numbers by identifier, strings and binaries as present. */
type Properties = Map<number, number | string | Uint8Array | true>;

function readProperties(c: Cursor, where: Where): Properties {
  const length = c.varint("property length");
  if (length > c.left) throw malformed("the properties run past the end of the packet", "MQTT-2.2.2-1");
  const props = new Cursor(c.bytes, c.pos, c.pos + length);
  const found: Properties = new Map();
  while (props.left > 0) {
    const id = props.varint("property identifier");
    const spec = PROPERTIES[id];
    // §2.2.2.2: an identifier not valid for the packet is a Malformed Packet.
    if (!spec?.in.includes(where)) throw malformed(`property 0x${id.toString(16)} is not valid in ${where}`, "MQTT-2.2.2-2");
    let value: number | string | Uint8Array | true;
    if (spec.kind === "byte") value = props.byte(spec.name);
    else if (spec.kind === "u16") value = props.u16(spec.name);
    else if (spec.kind === "u32") value = props.u32(spec.name);
    else if (spec.kind === "varint") value = props.varint(spec.name);
    else if (spec.kind === "string") value = props.string(spec.name);
    else if (spec.kind === "binary") value = props.binary(spec.name);
    else {
      props.string(`${spec.name} name`);
      props.string(`${spec.name} value`);
      value = true;
    }
    // Every property but User Property may appear once: "It is a Protocol Error to include the X more than once".
    if (id !== USER_PROPERTY && found.has(id)) throw protocolError(`the ${spec.name} is given more than once`, "MQTT-2.2.2-2");
    if (BOOLEAN_PROPERTIES.has(id) && value !== 0 && value !== 1) throw protocolError(`the ${spec.name} must be 0 or 1`);
    // §3.8.2.1.2: a Subscription Identifier of 0 is a Protocol Error.
    if (id === 0x0b && value === 0) throw protocolError("a Subscription Identifier of 0", "MQTT-3.8.2-1");
    // §3.1.2.11.3 / §3.1.2.11.4: Receive Maximum 0 and Maximum Packet Size 0 are Protocol Errors.
    if ((id === 0x21 || id === 0x27) && value === 0) throw protocolError(`a ${spec.name} of 0`, "MQTT-3.1.2-24");
    found.set(id, value);
  }
  c.pos = props.end;
  return found;
}

// ── Topic names ────────────────────────────────────────────────────────────────────────────

/**
 * Why a topic name (PUBLISH, will, Response Topic) cannot be one, or undefined. Any length the
 * protocol can carry (65,535 bytes) is accepted; no wildcards [MQTT-3.3.2-2] and no control
 * characters [MQTT-1.5.4-2 says SHOULD NOT; the gateway refuses them, as it does on HTTPS].
 */
export function topicNameProblem(topic: string): string | undefined {
  if (topic.length === 0) return "is empty";
  if (/[+#]/.test(topic)) return "contains a wildcard";
  // biome-ignore lint/suspicious/noControlCharactersInRegex: refusing control characters is the point
  if (/[\u0000-\u001f\u007f-\u009f]/.test(topic)) return "contains a control character";
  return undefined;
}

// ── Per packet type ────────────────────────────────────────────────────────────────────────

/** The fixed header: type, flags, and where the variable header starts (the framer checked the length). */
function header(bytes: Uint8Array): { type: number; flags: number; start: number } {
  let start = 1;
  while (((bytes[start] as number) & 0x80) !== 0) start++;
  return { type: (bytes[0] as number) >> 4, flags: (bytes[0] as number) & 0x0f, start: start + 1 };
}

/** [MQTT-2.2.2-2] reserved flag bits must be as Table 2.2 lists them. */
function reservedFlags(flags: number, expected: number, name: string, rule: string): undefined {
  if (flags !== expected) throw malformed(`reserved flag bits of ${name} are ${flags.toString(2)}`, rule);
}

/** The protocol level a CONNECT names, read leniently: which version to answer a failed CONNECT in. */
export function connectVersionHint(bytes: Uint8Array): 3 | 4 | 5 {
  const { start } = header(bytes);
  const nameLength = (((bytes[start] ?? 0) << 8) | (bytes[start + 1] ?? 0)) & 0xffff;
  return bytes[start + 2 + nameLength] === 5 ? 5 : 4;
}

export interface ConnectFacts {
  version: 3 | 4 | 5;
}

/**
 * CONNECT [MQTT-3.1.4-1]: the whole packet, including what the gateway does not support: an
 * unsupported protocol level is 0x84 (answered with the 3.1.1 CONNACK return code 1
 * [MQTT-3.1.2-2]); an Authentication Method is 0x8C [MQTT-4.12.0-1].
 */
export function validateConnect(bytes: Uint8Array): ConnectFacts {
  const { flags: fixed, start } = header(bytes);
  reservedFlags(fixed, 0, "CONNECT", "MQTT-2.2.2-2");
  const c = new Cursor(bytes, start, bytes.length);
  const name = c.string("protocol name");
  const level = c.byte("protocol level");
  if (name !== "MQTT" && name !== "MQIsdp") throw malformed(`protocol name "${name.slice(0, 16)}"`, "MQTT-3.1.2-1");
  const version = name === "MQIsdp" && level === 3 ? 3 : name === "MQTT" && (level === 4 || level === 5) ? level : undefined;
  if (version === undefined)
    throw new MqttError(REASON.unsupportedProtocolVersion, `protocol ${name} level ${level} is not supported`, "MQTT-3.1.2-2");
  const flags = c.byte("connect flags");
  // [MQTT-3.1.2-3] the reserved flag is 0.
  if ((flags & 0x01) !== 0) throw malformed("the reserved connect flag is set", "MQTT-3.1.2-3");
  const will = (flags & 0x04) !== 0;
  const willQos = (flags >> 3) & 0x03;
  const willRetain = (flags & 0x20) !== 0;
  const hasPassword = (flags & 0x40) !== 0;
  const hasUsername = (flags & 0x80) !== 0;
  // [MQTT-3.1.2-11] / [MQTT-3.1.2-13] no will: Will QoS and Will Retain are 0; [MQTT-3.1.2-12] never QoS 3.
  if (!will && (willQos !== 0 || willRetain)) throw malformed("will QoS or retain without a will", "MQTT-3.1.2-11");
  if (willQos === 3) throw malformed("will QoS 3", "MQTT-3.1.2-12");
  // [MQTT-3.1.2-22] 3.1.1: a password needs a user name (v5 allows one alone).
  if (version !== 5 && hasPassword && !hasUsername) throw malformed("a password without a user name", "MQTT-3.1.2-22");
  c.u16("keep alive");
  if (version === 5) {
    const props = readProperties(c, "connect");
    // §3.1.2.11.10: Authentication Data without a method is a Protocol Error.
    if (props.has(0x16) && !props.has(0x15)) throw protocolError("Authentication Data without an Authentication Method");
    // [MQTT-4.12.0-1] an Authentication Method the server does not support: CONNACK 0x8C, then close.
    if (props.has(0x15)) throw new MqttError(REASON.badAuthenticationMethod, "enhanced authentication is not supported", "MQTT-4.12.0-1");
  }
  // [MQTT-3.1.3-4] the client id is a UTF-8 Encoded String.
  c.string("client identifier");
  if (will) {
    if (version === 5) readProperties(c, "will");
    // [MQTT-3.1.3-10] the will topic is a UTF-8 Encoded String (its topic-name rules: connect.ts, 0x90).
    c.string("will topic");
    c.binary("will payload");
  }
  // [MQTT-3.1.3-11] user name UTF-8; the password is binary.
  if (hasUsername) c.string("user name");
  if (hasPassword) c.binary("password");
  c.done("CONNECT");
  return { version };
}

/** What a connected client's packets are checked against. */
export interface Context {
  version: 3 | 4 | 5;
  /** The session expiry the CONNECT set (v5 DISCONNECT may not raise it from 0). */
  sessionExpiry: number;
}

/** Any packet after CONNECT (a second CONNECT is 0x82 [MQTT-3.1.0-2]). */
export function validatePacket(bytes: Uint8Array, context: Context): undefined {
  const { type, flags, start } = header(bytes);
  const c = new Cursor(bytes, start, bytes.length);
  const v5 = context.version === 5;
  switch (type) {
    case 1:
      throw protocolError("a second CONNECT", "MQTT-3.1.0-2");
    case 3:
      return validatePublish(c, flags, v5);
    case 4:
    case 5:
    case 7:
      reservedFlags(flags, 0, "an acknowledgement", "MQTT-2.2.2-2");
      return validateAck(c, v5, PUBACK_REASONS_FOR[type] ?? PUBACK_REASONS);
    case 6:
      // [MQTT-3.6.1-1] PUBREL's flags are 0010.
      reservedFlags(flags, 0b0010, "PUBREL", "MQTT-3.6.1-1");
      return validateAck(c, v5, PUBREL_REASONS);
    case 8:
      // [MQTT-3.8.1-1] SUBSCRIBE's flags are 0010.
      reservedFlags(flags, 0b0010, "SUBSCRIBE", "MQTT-3.8.1-1");
      return validateSubscribe(c, v5);
    case 10:
      // [MQTT-3.10.1-1] UNSUBSCRIBE's flags are 0010.
      reservedFlags(flags, 0b0010, "UNSUBSCRIBE", "MQTT-3.10.1-1");
      return validateUnsubscribe(c, v5);
    case 12:
      reservedFlags(flags, 0, "PINGREQ", "MQTT-2.2.2-2");
      return c.done("PINGREQ");
    case 14:
      // [MQTT-3.14.1-1] DISCONNECT's flags are 0.
      reservedFlags(flags, 0, "DISCONNECT", "MQTT-3.14.1-1");
      return validateDisconnect(c, context);
    case 15:
      if (!v5) throw malformed("packet type 15 does not exist in MQTT 3.1.1", "MQTT-2.2.2-2");
      // Enhanced authentication is not offered: an AUTH is a Protocol Error whatever it holds [MQTT-3.15.0-1].
      throw protocolError("enhanced authentication (AUTH) is not supported", "MQTT-3.15.0-1");
    case 2:
    case 9:
    case 11:
    case 13:
      // CONNACK, SUBACK, UNSUBACK, PINGRESP travel from server to client only.
      throw protocolError(`packet type ${type} is a server-to-client packet`);
    default:
      throw malformed(`packet type ${type} is reserved`, "MQTT-2.2.2-2");
  }
}

const PUBACK_REASONS_FOR: Record<number, ReadonlySet<number>> = { 4: PUBACK_REASONS, 5: PUBACK_REASONS, 7: PUBREL_REASONS };

function validatePublish(c: Cursor, flags: number, v5: boolean): undefined {
  const qos = (flags >> 1) & 0x03;
  const dup = (flags & 0x08) !== 0;
  // [MQTT-3.3.1-4] QoS 3 is malformed; [MQTT-3.3.1-2] DUP is 0 on QoS 0.
  if (qos === 3) throw malformed("QoS 3", "MQTT-3.3.1-4");
  if (dup && qos === 0) throw malformed("DUP set on a QoS 0 publish", "MQTT-3.3.1-2");
  // [MQTT-3.3.2-1] the topic name is a UTF-8 Encoded String.
  const topic = c.string("topic name");
  if (qos > 0) {
    // [MQTT-2.3.1-1] QoS 1 and 2 publishes carry a non-zero packet identifier.
    if (c.u16("packet identifier") === 0) throw malformed("QoS > 0 without a packet identifier", "MQTT-2.3.1-1");
  }
  let alias: number | undefined;
  if (v5) {
    const props = readProperties(c, "publish");
    // [MQTT-3.3.4-6] a client's PUBLISH carries no Subscription Identifier.
    if (props.has(0x0b)) throw protocolError("a Subscription Identifier in a client's PUBLISH", "MQTT-3.3.4-6");
    alias = props.get(0x23) as number | undefined;
    // [MQTT-3.3.2-8] alias 0 or over our Topic Alias Maximum is 0x94.
    if (alias !== undefined && (alias < 1 || alias > TOPIC_ALIAS_MAXIMUM))
      throw new MqttError(REASON.topicAliasInvalid, `topic alias ${alias} is out of range`, "MQTT-3.3.2-8");
    const response = props.get(0x08) as string | undefined;
    // [MQTT-3.3.2-14] the Response Topic is a topic name.
    if (response !== undefined && topicNameProblem(response))
      throw protocolError("the Response Topic is not a topic name", "MQTT-3.3.2-14");
  }
  if (topic === "") {
    // v5 §3.3.2.1: an empty topic needs a Topic Alias (Protocol Error); 3.1.1: at least one character [MQTT-4.7.3-1].
    if (!v5) throw malformed("an empty topic name", "MQTT-4.7.3-1");
    if (alias === undefined) throw protocolError("an empty topic name without a Topic Alias", "MQTT-3.3.2-1");
    return;
  }
  const problem = topicNameProblem(topic);
  // [MQTT-3.3.2-2] no wildcards in a PUBLISH topic.
  if (problem) throw new MqttError(REASON.topicNameInvalid, `topic "${topic.slice(0, 64)}" ${problem}`, "MQTT-3.3.2-2");
  // The rest is payload (any bytes, length implied) [MQTT-3.3.3].
}

/** PUBACK, PUBREC, PUBREL, PUBCOMP: a packet id, and in v5 a reason from the packet's table and properties. */
function validateAck(c: Cursor, v5: boolean, reasons: ReadonlySet<number>): undefined {
  // [MQTT-2.3.1-1] a non-zero packet identifier; a shorter packet is malformed, never answered.
  if (c.u16("packet identifier") === 0) throw malformed("packet identifier 0", "MQTT-2.3.1-1");
  if (!v5) return c.done("acknowledgement");
  if (c.left === 0) return;
  const reason = c.byte("reason code");
  if (!reasons.has(reason)) throw malformed(`reason code 0x${reason.toString(16)} is not one this packet may carry`, "MQTT-3.4.2-1");
  if (c.left === 0) return;
  readProperties(c, "ack");
  c.done("acknowledgement");
}

function validateSubscribe(c: Cursor, v5: boolean): undefined {
  if (c.u16("packet identifier") === 0) throw malformed("packet identifier 0", "MQTT-2.3.1-1");
  if (v5) {
    const props = readProperties(c, "subscribe");
    // §3.2.2.3.12: the server announced no Subscription Identifiers: 0xA1.
    if (props.has(0x0b))
      throw new MqttError(REASON.subscriptionIdentifiersNotSupported, "Subscription Identifiers are not supported", "MQTT-3.8.2-1");
  }
  // 3.1.1 [MQTT-3.8.3-3], 5.0 [MQTT-3.8.3-2]: at least one topic filter.
  if (c.left === 0) {
    if (v5) throw protocolError("a SUBSCRIBE without topic filters", "MQTT-3.8.3-2");
    throw malformed("a SUBSCRIBE without topic filters", "MQTT-3.8.3-3");
  }
  while (c.left > 0) {
    // [MQTT-3.8.3-1] topic filters are UTF-8 Encoded Strings.
    const filter = c.string("topic filter");
    const options = c.byte("subscription options");
    // 3.1.1 [MQTT-3.8.3-4]: bits 7-2 reserved; 5.0 [MQTT-3.8.3-5]: bits 7-6 reserved.
    if ((options & (v5 ? 0xc0 : 0xfc)) !== 0)
      throw malformed("reserved subscription option bits are set", v5 ? "MQTT-3.8.3-5" : "MQTT-3.8.3-4");
    if ((options & 0x03) === 3) throw malformed("QoS 3 in a subscription", "MQTT-3.8.3-4");
    if (v5 && ((options >> 4) & 0x03) === 3) throw protocolError("Retain Handling 3", "MQTT-3.8.3-5");
    // [MQTT-3.8.3-4] (v5) No Local on a shared subscription is a Protocol Error.
    if (v5 && (options & 0x04) !== 0 && filter.startsWith("$share/"))
      throw protocolError("No Local on a shared subscription", "MQTT-3.8.3-4");
  }
}

function validateUnsubscribe(c: Cursor, v5: boolean): undefined {
  if (c.u16("packet identifier") === 0) throw malformed("packet identifier 0", "MQTT-2.3.1-1");
  if (v5) readProperties(c, "unsubscribe");
  // [MQTT-3.10.3-2] at least one topic filter (v5: "An UNSUBSCRIBE packet with no Payload is a Protocol Error").
  if (c.left === 0) {
    if (v5) throw protocolError("an UNSUBSCRIBE without topic filters", "MQTT-3.10.3-2");
    throw malformed("an UNSUBSCRIBE without topic filters", "MQTT-3.10.3-2");
  }
  // [MQTT-3.10.3-1] topic filters are UTF-8 Encoded Strings.
  while (c.left > 0) c.string("topic filter");
}

function validateDisconnect(c: Cursor, context: Context): undefined {
  if (context.version !== 5 || c.left === 0) return c.done("DISCONNECT");
  const reason = c.byte("reason code");
  if (!DISCONNECT_REASONS.has(reason)) throw malformed(`DISCONNECT reason 0x${reason.toString(16)}`, "MQTT-3.14.2-1");
  if (c.left === 0) return;
  const props = readProperties(c, "disconnect");
  c.done("DISCONNECT");
  // [MQTT-3.14.2-2] a session that expires at once (0) may not be given an expiry at DISCONNECT.
  if (context.sessionExpiry === 0 && (props.get(0x11) ?? 0) !== 0)
    throw protocolError("a Session Expiry Interval at DISCONNECT after 0 at CONNECT", "MQTT-3.14.2-2");
}
