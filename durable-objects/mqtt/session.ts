/**
 * MqttSession: the edge's MQTT gateway, one Durable Object per device (name = device id), so no
 * object ever carries every client. It holds the device's MQTT-over-WebSocket connections as
 * hibernatable WebSockets, parses MQTT 3.1.1 and 5.0 with mqtt-packet, authenticates CONNECT
 * against the device's twin, and hands every PUBLISH to the twin's `ingest` — the same
 * validation, permissions, rate and duplicate handling as HTTPS. Commands from the twin's
 * outbox go out as PUBLISH to `devices/<id>/commands`; results come back on
 * `devices/<id>/commands/<cmd-id>/result`. Protocol notes: docs/mqtt.md.
 *
 * This file is the frame loop, the dispatch to one handler per packet family (connect.ts,
 * publish.ts, subscribe.ts, qos.ts, will.ts, commands.ts), the close, and the alarm. Every
 * refusal and violation is an MqttError carrying its reason code, with the rule of the spec it
 * enforces cited beside the check.
 */
import { DurableObject } from "cloudflare:workers";
import type { Packet } from "mqtt-packet";
import { readConfig } from "../../shared/config";
import { log } from "../../shared/log";
import { MqttError, REASON, WS_CLOSE } from "../../shared/mqtt";
import { TwinBatcher } from "./batch";
import { commandsQos, deliverCommands, sendDesired, wantsDesired } from "./commands";
import { onConnect, refuseConnect } from "./connect";
import { onPublish } from "./publish";
import { onPuback, onPubcomp, onPubrec, onPubrel } from "./qos";
import { allowed, DISCONNECT_REASONS } from "./reasons";
import { dueWills, nextWillAt, SCHEMA } from "./store";
import { onSubscribe, onUnsubscribe } from "./subscribe";
import { type CloseOptions, COMMAND_POLL_MS, CONNECT_TIMEOUT_MS, type Conn, type Gateway, keepAliveDeadline, type Pipeline } from "./types";
import { connectVersionHint, validateConnect, validatePacket } from "./validate";
import { ended, publishWill } from "./will";
import { decode, frame, newReader, type Reader, save, send } from "./wire";

/** How often incoming frames may also sweep the other connections' keep-alive deadlines. */
const SWEEP_MS = 250;

export class MqttSession extends DurableObject<Env> {
  #parsers = new Map<WebSocket, Reader>();
  #chains = new Map<WebSocket, Promise<void>>();
  /** Per connection: its deferred publish steps (publish.ts), run in arrival order. */
  #tails = new Map<WebSocket, Promise<void>>();
  #batchers = new Map<string, TwinBatcher>();
  #schema = false;
  #lastSweep = 0;
  // env and ctx are read at each use: the metering subclass (shared/billing-do.ts) sets the
  // metered ones only after the constructor, when this object already exists.
  #gateway: Gateway = ((self: MqttSession) => ({
    get env() {
      return self.env;
    },
    get ctx() {
      return self.ctx;
    },
    sql: () => this.#sql(),
    close: (ws, conn, reason, message, options) => this.#close(ws, conn, reason, message, options),
    fail: (ws, error) => this.#fail(ws, error),
    scheduleAt: (at) => this.#scheduleAt(at),
    schedule: () => this.#schedule(),
    batcher: (device) => {
      let batcher = this.#batchers.get(device);
      if (!batcher) {
        batcher = new TwinBatcher(this.env, device);
        this.#batchers.set(device, batcher);
      }
      return batcher;
    },
  }))(this);

  /** The connection's deferred steps: publishes answered in order while their twin calls are batched. */
  #pipeline(ws: WebSocket): Pipeline {
    return {
      defer: (step) => {
        const previous = this.#tails.get(ws) ?? Promise.resolve();
        const next = previous.then(step).catch((error: unknown) => this.#fail(ws, error));
        this.#tails.set(ws, next);
        // The answers go out even when the event that deferred them has returned.
        this.ctx.waitUntil(next);
      },
      drain: () => this.#tails.get(ws) ?? Promise.resolve(),
    };
  }

  /** twin.ingest calls made by this session's publishes so far (batch.ts; the tests count them). */
  async twinCalls(): Promise<number> {
    let calls = 0;
    for (const batcher of this.#batchers.values()) calls += batcher.calls;
    return calls;
  }

  #sql(): SqlStorage {
    if (!this.#schema) this.ctx.storage.sql.exec(SCHEMA);
    this.#schema = true;
    return this.ctx.storage.sql;
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
    this.#sweepDeadlines(ws);
    // Packets of one connection are handled strictly in order, even across awaits.
    await this.#enqueue(ws, () => this.#frame(ws, data));
  }

  /**
   * The alarm runs late while its object is busy (measured: docs/mqtt.md, "Keep alive"), which is
   * exactly when other connections' packets arrive: each frame also closes the device's other
   * connections whose keep alive [MQTT-3.1.2-24] or CONNECT time ran out, at most every SWEEP_MS.
   */
  #sweepDeadlines(from: WebSocket): void {
    const now = Date.now();
    if (now - this.#lastSweep < SWEEP_MS) return;
    this.#lastSweep = now;
    for (const ws of this.ctx.getWebSockets()) {
      if (ws === from) continue;
      const conn = ws.deserializeAttachment() as Conn;
      const silent = conn.state === "connected" && conn.keepalive > 0 && now >= keepAliveDeadline(conn);
      const noConnect = conn.state === "open" && now - conn.openedAt >= CONNECT_TIMEOUT_MS;
      if (!silent && !noConnect) continue;
      void this.#enqueue(ws, async () => {
        const current = ws.deserializeAttachment() as Conn;
        if (current.state === "open" && Date.now() - current.openedAt >= CONNECT_TIMEOUT_MS)
          await this.#close(ws, current, REASON.protocolError, "no CONNECT in time", { will: false, presence: false });
        else if (current.state === "connected" && current.keepalive > 0 && Date.now() >= keepAliveDeadline(current))
          await this.#close(ws, current, REASON.keepAliveTimeout, "keep alive timeout", { will: true, presence: false });
      });
    }
  }

  /** Runs work on the connection's chain, after everything queued before it; a failure ends that connection. */
  #enqueue(ws: WebSocket, work: () => Promise<void>): Promise<void> {
    const previous = this.#chains.get(ws) ?? Promise.resolve();
    const next = previous.then(work).catch((error: unknown) => this.#fail(ws, error));
    this.#chains.set(ws, next);
    return next;
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
    const { packets, error, left } = frame(reader, new Uint8Array(data), max);
    // Packets that arrived whole before a bad length are still handled, in order.
    for (const bytes of packets) {
      const current = ws.deserializeAttachment() as Conn;
      if (current.state === "closed") return;
      // [MQTT-3.1.2-24] any packet counts as activity for the keep alive.
      current.lastSeen = Date.now();
      // Validated whole before anything acts on it (validate.ts); CONNECT answers its own failures.
      if (current.state === "open") {
        const packet = this.#connectPacket(ws, current, reader, bytes);
        if (packet) await this.#packet(ws, current, packet);
        continue;
      }
      validatePacket(bytes, { version: current.version, sessionExpiry: current.sessionExpiry });
      await this.#packet(ws, current, decode(reader, bytes));
    }
    if (error) throw error;
    const after = ws.deserializeAttachment() as Conn;
    if (after.state === "closed") return;
    after.partial = left > 0;
    ws.serializeAttachment(after);
  }

  /**
   * The first packet: it must be CONNECT [MQTT-3.1.0-1], and a CONNECT that fails validation is
   * answered before the close — return code 1 for an unsupported protocol level [MQTT-3.1.2-2],
   * and in v5 a CONNACK with the reason (0x81, 0x82, 0x8C) [MQTT-3.1.4-1]; 3.1.1 has no code for
   * the rest and only closes.
   */
  #connectPacket(ws: WebSocket, conn: Conn, reader: Reader, bytes: Uint8Array): Packet | undefined {
    if ((bytes[0] as number) >> 4 !== 1) throw new MqttError(REASON.protocolError, "the first packet must be CONNECT", "MQTT-3.1.0-1");
    let version = connectVersionHint(bytes);
    try {
      version = validateConnect(bytes).version;
    } catch (error) {
      if (!(error instanceof MqttError)) throw error;
      if (error.reason === REASON.unsupportedProtocolVersion) {
        // The client's version is unknown: the 3.1.1 CONNACK, return code 1 (what every version reads).
        conn.version = 4;
        refuseConnect(ws, conn, REASON.unsupportedProtocolVersion, error.message);
        return undefined;
      }
      if (version !== 5) throw error;
      conn.version = 5;
      refuseConnect(ws, conn, error.reason, error.message, undefined, WS_CLOSE.protocolError);
      return undefined;
    }
    return decode(reader, bytes);
  }

  /** One handler per packet type. */
  async #packet(ws: WebSocket, conn: Conn, packet: Packet): Promise<void> {
    const g = this.#gateway;
    if (packet.cmd !== "connect" && conn.state !== "connected") {
      // [MQTT-3.1.0-1] the first packet from the client MUST be CONNECT.
      throw new MqttError(REASON.protocolError, `${packet.cmd} before CONNECT`, "MQTT-3.1.0-1");
    }
    if (packet.cmd === "publish") return onPublish(g, ws, conn, packet, this.#pipeline(ws));
    // Every other packet comes after the publishes before it are answered (publish.ts).
    if (this.#tails.has(ws)) {
      await this.#pipeline(ws).drain();
      const current = ws.deserializeAttachment() as Conn;
      if (current.state === "closed") return;
      Object.assign(conn, current);
    }
    switch (packet.cmd) {
      case "connect":
        return onConnect(g, ws, conn, packet);
      case "pubrel":
        return onPubrel(g, ws, conn, packet.messageId ?? 0);
      case "puback":
        return onPuback(g, ws, conn, packet.messageId ?? 0);
      case "subscribe":
        return onSubscribe(g, ws, conn, packet);
      case "unsubscribe":
        return onUnsubscribe(g, ws, conn, packet);
      case "pingreq":
        // [MQTT-3.12.4-1] the server MUST answer PINGREQ with PINGRESP.
        save(ws, conn);
        send(ws, conn, { cmd: "pingresp" });
        return;
      case "disconnect":
        return this.#onDisconnect(ws, conn, packet.reasonCode ?? 0);
      case "pubrec":
        return onPubrec(g, ws, conn, packet.messageId ?? 0, packet.reasonCode ?? 0);
      case "pubcomp":
        return onPubcomp(g, ws, conn, packet.messageId ?? 0);
      case "auth":
        throw new MqttError(REASON.protocolError, "enhanced authentication (AUTH) is not supported", "MQTT-3.15.0-1");
      default:
        // CONNACK, SUBACK, UNSUBACK, PINGRESP travel from server to client only.
        throw new MqttError(REASON.protocolError, `${packet.cmd} is a server-to-client packet`);
    }
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
      await this.#enqueue(ws, () => deliverCommands(this.#gateway, ws, ws.deserializeAttachment() as Conn));
      return; // one connection takes the device's commands
    }
  }

  /** The twin calls this when the desired state changed: every connection subscribed to it gets it. */
  async desiredChanged(): Promise<void> {
    for (const ws of this.ctx.getWebSockets()) {
      const conn = ws.deserializeAttachment() as Conn;
      if (conn.state !== "connected" || !wantsDesired(conn)) continue;
      await this.#enqueue(ws, () => sendDesired(this.#gateway, ws, ws.deserializeAttachment() as Conn, false));
    }
  }

  // ── Ending connections ──────────────────────────────────────────────────────────────────

  async #fail(ws: WebSocket, error: unknown): Promise<void> {
    const conn = ws.deserializeAttachment() as Conn;
    if (conn.state === "closed") return;
    if (!(error instanceof MqttError)) {
      log("error", "mqtt gateway failure", { device: conn.device, error: String(error) });
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
  async #close(ws: WebSocket, conn: Conn, reason: number | null, message: string, options: CloseOptions): Promise<void> {
    if (conn.state === "closed") return;
    const wasConnected = conn.state === "connected";
    if (reason !== null && conn.version === 5 && wasConnected) {
      send(ws, conn, {
        cmd: "disconnect",
        reasonCode: allowed(DISCONNECT_REASONS, reason),
        properties: { reasonString: message.slice(0, 200) },
      });
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
    if (wasConnected) await ended(this.#gateway, conn, options);
  }

  override async webSocketClose(ws: WebSocket, code: number, reason: string): Promise<void> {
    const conn = ws.deserializeAttachment() as Conn;
    this.#parsers.delete(ws);
    this.#chains.delete(ws);
    this.#tails.delete(ws);
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
    if (wasConnected) await ended(this.#gateway, conn, { will: true, presence: false });
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
      if (conn.keepalive > 0) deadlines.push(keepAliveDeadline(conn));
      if (commandsQos(conn) !== null) deadlines.push(Date.now() + COMMAND_POLL_MS);
    }
    const willAt = nextWillAt(this.#sql());
    if (willAt !== null) deadlines.push(willAt);
    if (deadlines.length > 0) await this.#scheduleAt(Math.min(...deadlines));
  }

  override async alarm(): Promise<void> {
    const now = Date.now();
    const g = this.#gateway;
    for (const clientId of dueWills(this.#sql(), now)) await publishWill(g, clientId);
    for (const ws of this.ctx.getWebSockets()) {
      const conn = ws.deserializeAttachment() as Conn;
      if (conn.state === "open" && now - conn.openedAt >= CONNECT_TIMEOUT_MS) {
        await this.#close(ws, conn, REASON.protocolError, "no CONNECT in time", { will: false, presence: false });
      } else if (conn.state === "connected" && conn.keepalive > 0 && now >= keepAliveDeadline(conn)) {
        await this.#close(ws, conn, REASON.keepAliveTimeout, "keep alive timeout", { will: true, presence: false });
      } else if (conn.state === "connected" && commandsQos(conn) !== null) {
        await deliverCommands(g, ws, conn).catch((error: unknown) => this.#fail(ws, error));
      }
    }
    await this.#schedule();
  }
}
