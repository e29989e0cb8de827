/**
 * GET /mqtt/<device-id> (or /mqtt?device=<id>): MQTT over WebSocket into the device's own
 * MqttSession (docs/mqtt.md). The Worker checks the upgrade and the subprotocol and names the
 * device and client address; the session does everything MQTT, CONNECT's credentials included.
 */
import type { Context } from "hono";
import { Hono } from "hono";
import { sessionStub } from "../../durable-objects/mqtt-session";
import { validDeviceId } from "../../shared/mqtt";
import { ApiError } from "../errors";
import { type AppEnv, clientAddress } from "../middleware/auth";

function upgrade(c: Context<AppEnv>, device: string | undefined): Promise<Response> {
  if (c.req.header("upgrade")?.toLowerCase() !== "websocket") {
    throw new ApiError("invalid_query", "/mqtt is MQTT over WebSocket: send Upgrade: websocket", { status: 426 });
  }
  // [MQTT-6.0.0-3] the client offers the "mqtt" subprotocol; the session echoes it [MQTT-6.0.0-4].
  const offered = (c.req.header("sec-websocket-protocol") ?? "").split(",").map((p) => p.trim());
  if (!offered.includes("mqtt")) throw ApiError.field("invalid_query", "Sec-WebSocket-Protocol", 'offer the WebSocket subprotocol "mqtt"');
  if (!device || !validDeviceId(device)) {
    throw ApiError.field("invalid_query", "device", "name the device in the path: wss://<edge>/mqtt/<device-id>");
  }
  const headers = new Headers(c.req.raw.headers);
  // Set here, never taken from the client: the session trusts them.
  headers.set("x-edgemesh-device", device);
  headers.set("x-edgemesh-client", clientAddress(c));
  return sessionStub(c.env, device).fetch(new Request(c.req.url, { headers }));
}

export const mqttRoutes = new Hono<AppEnv>()
  .get("/", (c) => upgrade(c, c.req.query("device")))
  .get("/:device", (c) => upgrade(c, c.req.param("device")));
