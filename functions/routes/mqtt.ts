/**
 * MQTT over WebSocket into the device's own MqttSession (docs/mqtt.md).
 *
 * `GET /mqtt/<device-id>` (or `/mqtt?device=<id>`): the Worker checks the upgrade and the
 * subprotocol, names the device and the client address, and hands the socket to the session.
 *
 * `GET /mqtt` without a device: the Worker cannot choose the session before the CONNECT packet
 * names the device, so it accepts the socket itself, reads the CONNECT (username, or the device
 * token in the password), then opens the session's socket and relays frames both ways. This keeps
 * unchanged firmware working at the cost of a Worker held for the connection's lifetime.
 */
import type { Context } from "hono";
import { Hono } from "hono";
import type { Packet } from "mqtt-packet";
import { generate } from "mqtt-packet";
import { allowed, CONNACK_REASONS } from "../../durable-objects/mqtt/reasons";
import { CONNECT_TIMEOUT_MS } from "../../durable-objects/mqtt/types";
import { connectVersionHint, validateConnect } from "../../durable-objects/mqtt/validate";
import { decode, frame, newReader } from "../../durable-objects/mqtt/wire";
import { sessionStub } from "../../durable-objects/stubs";
import { readConfig } from "../../shared/config";
import { parseDeviceToken } from "../../shared/credentials";
import { CONNACK_V4, MqttError, REASON, validDeviceId, WS_CLOSE } from "../../shared/mqtt";
import { ApiError } from "../errors";
import { type AppEnv, clientAddress } from "../middleware/auth";

/** Close codes that may not be sent on a close frame (1005, 1006, 1015) become a normal close. */
const sendable = (code: number) => (code === 1005 || code === 1006 || code === 1015 ? WS_CLOSE.normal : code);

function checkUpgrade(c: Context<AppEnv>): void {
  if (c.req.header("upgrade")?.toLowerCase() !== "websocket") {
    throw new ApiError("invalid_query", "/mqtt is MQTT over WebSocket: send Upgrade: websocket", { status: 426 });
  }
  // [MQTT-6.0.0-3] the client offers the "mqtt" subprotocol; the session echoes it [MQTT-6.0.0-4].
  const offered = (c.req.header("sec-websocket-protocol") ?? "").split(",").map((p) => p.trim());
  if (!offered.includes("mqtt")) throw ApiError.field("invalid_query", "Sec-WebSocket-Protocol", 'offer the WebSocket subprotocol "mqtt"');
}

function forward(c: Context<AppEnv>, device: string): Promise<Response> {
  const headers = new Headers(c.req.raw.headers);
  // Set here, never taken from the client: the session trusts them.
  headers.set("x-edgemesh-device", device);
  headers.set("x-edgemesh-client", clientAddress(c));
  headers.set("upgrade", "websocket");
  headers.set("sec-websocket-protocol", "mqtt");
  return sessionStub(c.env, device).fetch(new Request(c.req.url, { headers }));
}

function direct(c: Context<AppEnv>, device: string | undefined): Promise<Response> {
  checkUpgrade(c);
  if (!device || !validDeviceId(device)) throw ApiError.field("invalid_query", "device", "not a device id");
  return forward(c, device);
}

/** Which device a CONNECT is for: its username, else the id half of the token in its password. */
function deviceOf(packet: Packet): string | undefined {
  if (packet.cmd !== "connect") return undefined;
  if (packet.username) return validDeviceId(packet.username) ? packet.username : undefined;
  const password = packet.password ? new TextDecoder().decode(packet.password as unknown as Uint8Array) : "";
  return parseDeviceToken(password)?.deviceId;
}

function relay(c: Context<AppEnv>): Response {
  checkUpgrade(c);
  const pair = new WebSocketPair();
  const [client, server] = [pair[0], pair[1]];
  server.accept();
  const reader = newReader(4);
  const buffered: ArrayBuffer[] = [];
  let upstream: WebSocket | undefined;
  let chain = Promise.resolve();
  const refuse = async (version: number, reason: string) => {
    // Counted against the client address like every failed authentication.
    const { success } = await c.env.AUTH_FAILURES.limit({ key: clientAddress(c) });
    const code =
      version === 5
        ? success
          ? REASON.badUserNameOrPassword
          : REASON.connectionRateExceeded
        : success
          ? CONNACK_V4.badUserNameOrPassword
          : CONNACK_V4.notAuthorized;
    server.send(
      generate({ cmd: "connack", sessionPresent: false, returnCode: code, reasonCode: code } as Packet, {
        protocolVersion: version === 5 ? 5 : 4,
      }) as unknown as Uint8Array,
    );
    server.close(WS_CLOSE.policy, reason);
  };
  // The CONNECT must come soon and small: a relay never waits on a half-sent one for ever.
  const max = readConfig(c.env).MQTT_MAX_PACKET_BYTES;
  let bufferedBytes = 0;
  const timer = setTimeout(() => {
    if (!upstream) server.close(WS_CLOSE.protocolError, "no CONNECT in time");
  }, CONNECT_TIMEOUT_MS);
  const onFrame = async (raw: ArrayBuffer | Blob | string) => {
    // Binary frames arrive as Blobs under the standard binaryType.
    const data = raw instanceof Blob ? await raw.arrayBuffer() : raw;
    if (upstream) return upstream.send(data);
    // [MQTT-6.0.0-1] binary frames only.
    if (typeof data === "string") return server.close(WS_CLOSE.protocolError, "MQTT uses binary frames [MQTT-6.0.0-1]");
    buffered.push(data);
    bufferedBytes += data.byteLength;
    if (bufferedBytes > max) return server.close(WS_CLOSE.tooBig, "CONNECT over the maximum packet size");
    const { packets, error } = frame(reader, new Uint8Array(data), max);
    const bytes = packets[0];
    if (error || (bytes && (bytes[0] as number) >> 4 !== 1)) {
      // [MQTT-3.1.0-1] the first packet must be a well-formed CONNECT.
      return server.close(WS_CLOSE.protocolError, "the first packet must be CONNECT [MQTT-3.1.0-1]");
    }
    if (!bytes) return; // the CONNECT is still arriving
    let first: Packet;
    try {
      // The same validation as the session's (durable-objects/mqtt/validate.ts), answered the same way.
      validateConnect(bytes);
      first = decode(reader, bytes);
    } catch (failure) {
      const reason = failure instanceof MqttError ? failure.reason : REASON.malformedPacket;
      if (reason === REASON.unsupportedProtocolVersion) {
        // [MQTT-3.1.2-2] return code 1, in the 3.1.1 CONNACK every version reads.
        server.send(new Uint8Array([0x20, 0x02, 0x00, CONNACK_V4.unacceptableProtocolVersion]));
      } else if (connectVersionHint(bytes) === 5) {
        // [MQTT-3.1.4-1] v5 may be told why before the close.
        const code = allowed(CONNACK_REASONS, reason);
        server.send(
          generate({ cmd: "connack", sessionPresent: false, reasonCode: code } as Packet, { protocolVersion: 5 }) as unknown as Uint8Array,
        );
      }
      return server.close(WS_CLOSE.protocolError, "the first packet must be a well-formed CONNECT [MQTT-3.1.4-1]");
    }
    const version = (first as { protocolVersion?: number }).protocolVersion ?? 4;
    const device = deviceOf(first);
    if (!device) return refuse(version, "username must be the device id, or the password its token");
    const res = await forward(c, device);
    if (!res.webSocket) return server.close(WS_CLOSE.internal, "the session did not accept the connection");
    const socket = res.webSocket;
    socket.accept();
    let down = Promise.resolve();
    socket.addEventListener("message", (event) => {
      const frame = event.data as ArrayBuffer | Blob | string;
      down = down.then(async () => server.send(frame instanceof Blob ? await frame.arrayBuffer() : frame)).catch(() => undefined);
    });
    socket.addEventListener("close", (event) => {
      down = down.then(() => server.close(sendable(event.code), event.reason));
    });
    upstream = socket;
    clearTimeout(timer);
    for (const frame of buffered.splice(0)) socket.send(frame);
  };
  server.addEventListener("message", (event) => {
    const data = event.data as ArrayBuffer | Blob | string;
    chain = chain.then(() => onFrame(data)).catch(() => server.close(WS_CLOSE.internal, "relay failed"));
  });
  server.addEventListener("close", (event) => {
    clearTimeout(timer);
    chain = chain.then(() => upstream?.close(sendable(event.code), event.reason));
  });
  return new Response(null, { status: 101, webSocket: client, headers: { "sec-websocket-protocol": "mqtt" } });
}

export const mqttRoutes = new Hono<AppEnv>()
  .get("/", (c) => {
    const device = c.req.query("device");
    return device === undefined ? relay(c) : direct(c, device);
  })
  .get("/:device", (c) => direct(c, c.req.param("device")));
